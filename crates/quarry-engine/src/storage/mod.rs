//! The storage seam: everything the engine needs from "collections,
//! documents, chunks, vectors, the dense and keyword indexes, and Ask
//! records", as three traits. The engine's pipeline (validation,
//! chunking, embedding, fusion weights, prompts, verification) is written
//! against them only, so a second backend (a Qdrant cluster) is a new
//! module beside [`local`], not a fork of the engine.
//!
//! - [`Storage`]: the backend as a whole. It creates, lists and drops
//!   collections, hands out a [`CollectionStorage`] handle by name (looked
//!   up once per request and passed down), owns the records, and says
//!   whether writes may proceed (disk reserve, a latched failure).
//! - [`CollectionStorage`]: one collection. Reads, the durable write of
//!   embedded documents (durable *and searchable* when it returns: the
//!   engine acknowledges right after), deletes, and the search that runs
//!   the collection's retrievers and returns hydrated hits.
//! - [`RecordStorage`]: the prompt/response records of Ask.
//!
//! Every method blocks (disk, network): the engine calls them from its
//! blocking pool, never from an async worker. Errors are [`EngineError`]s,
//! so a backend decides how its failures classify (`NotFound`,
//! `Unavailable`, `ResourceExhausted`, ...).
//!
//! [`local`] is the first implementation: sled for the truth, Quarry's HNSW graph and
//! tantivy as indexes derived from it, with their checkpoints, op-log
//! replay and rebuilds.

pub mod local;

use std::sync::Arc;

use quarry_core::{
    CollectionInfo, CollectionName, CollectionSettings, Filter, NewDocument, Placement, Record,
    RecordId, StoredDocument, UpsertStatus,
};
use quarry_index::SearchQuery;

use crate::{DeletedCollection, Result, SearchHit};

/// A storage backend: collections, their documents and indexes, and the
/// records of Ask.
pub trait Storage: Send + Sync {
    /// Creates an empty collection (its indexes included), spread over
    /// the backend's nodes as `placement` asks where the backend has
    /// nodes; a backend without them says in the returned note that it
    /// ignored a placement that was set.
    fn create_collection(
        &self,
        name: &CollectionName,
        settings: CollectionSettings,
        placement: Placement,
    ) -> Result<CollectionInfo>;

    /// Whether the backend can serve now (a clustered backend asks its
    /// nodes); health checks report it. The default: always.
    fn health(&self) -> Result<()> {
        Ok(())
    }

    /// The collection called `name`; `NotFound` when there is none.
    fn collection(&self, name: &CollectionName) -> Result<Arc<dyn CollectionStorage>>;

    /// Every collection's name, ordered by name.
    fn collection_names(&self) -> Result<Vec<CollectionName>>;

    /// Removes a collection with all its data.
    fn drop_collection(&self, name: &CollectionName) -> Result<DeletedCollection>;

    /// The records of Ask.
    fn records(&self) -> &dyn RecordStorage;

    /// Refuses a write that adds data (documents, collections) while the
    /// backend is short of room or has latched writes off.
    fn check_room(&self) -> Result<()>;

    /// Refuses any write (deletes and ratings included) once writes are
    /// latched off after a failure.
    fn check_writable(&self) -> Result<()>;

    /// Whether writes are latched off (a gauge).
    fn writes_failed(&self) -> bool;

    /// Makes everything durable and, where the backend has any, saves
    /// index checkpoints so that the next start replays nothing. Called on
    /// shutdown.
    fn flush(&self) -> Result<()>;
}

/// What a write of documents did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Written {
    /// One status per input document, in input order.
    pub statuses: Vec<UpsertStatus>,
    /// Chunks written.
    pub chunks: u64,
}

/// What a delete removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Removed {
    /// Documents deleted (ids that did not exist are not counted).
    pub documents: u64,
    /// Their chunks.
    pub chunks: u64,
}

/// Which documents a delete removes.
#[derive(Debug, Clone, Copy)]
pub enum Doomed<'a> {
    /// These ids.
    Ids(&'a [String]),
    /// Every document whose metadata matches, decided by the backend at
    /// the moment of the delete (so no write slips in between).
    Matching(&'a Filter),
}

/// One collection of a [`Storage`]. A handle stays valid while the
/// collection exists; once it is dropped, calls answer `NotFound`.
pub trait CollectionStorage: Send + Sync {
    /// The collection's name.
    fn name(&self) -> &CollectionName;

    /// Its settings (fixed at creation).
    fn settings(&self) -> &CollectionSettings;

    /// Its counts, stored and indexed.
    fn info(&self) -> Result<CollectionInfo>;

    /// One document; `NotFound` naming it when absent.
    fn document(&self, id: &str) -> Result<StoredDocument>;

    /// The content hash stored for a document, if it exists (to skip
    /// unchanged documents before chunking and embedding them).
    fn content_hash(&self, id: &str) -> Result<Option<String>>;

    /// Writes documents, each replacing any stored one with its id (one
    /// whose content hash is unchanged is left alone). When this returns
    /// the write is durable and visible to [`CollectionStorage::search`].
    fn write(&self, docs: Vec<NewDocument>) -> Result<Written>;

    /// Deletes documents; durable and invisible to search on return.
    fn delete(&self, which: Doomed<'_>) -> Result<Removed>;

    /// Runs the query's retrievers and fuses them, then hydrates each hit
    /// (chunk text, document title and metadata). Hits deleted meanwhile
    /// are left out.
    fn search(&self, query: &SearchQuery<'_>) -> Result<Vec<SearchHit>>;

    /// A chunk's stored embedding, if the chunk exists.
    fn vector(&self, chunk_id: u64) -> Result<Option<Vec<f32>>>;

    /// The keyword retriever's inverse document frequency of each word
    /// (analysed as the collection's language does), `None` for a word no
    /// chunk holds. The grounded-answer verifier weighs words by it.
    fn word_weights(&self, words: &[&str]) -> Result<Vec<Option<f32>>>;
}

/// Records, newest or oldest first, as an iterator over the backend.
pub type RecordIter<'a> = Box<dyn Iterator<Item = Result<Record>> + 'a>;

/// The records of Ask (prompt, answer, verification, rating).
pub trait RecordStorage: Send + Sync {
    /// Stores a new record, giving it its id; durable on return.
    fn insert(&self, record: Record) -> Result<Record>;

    /// One record; `NotFound` when absent.
    fn get(&self, id: RecordId) -> Result<Record>;

    /// Changes a record in place (a rating); durable on return.
    fn update(&self, id: RecordId, change: &dyn Fn(&mut Record)) -> Result<Record>;

    /// Records with ids below `before` (all when `None`), newest first.
    fn newest_first(&self, before: Option<RecordId>) -> RecordIter<'_>;

    /// Every record, oldest first.
    fn oldest_first(&self) -> RecordIter<'_>;

    /// The ids of a session's records, newest first.
    fn session_ids(&self, session_id: &str) -> Box<dyn Iterator<Item = Result<RecordId>> + '_>;

    /// Deletes records by id; returns how many existed.
    fn delete(&self, ids: &[RecordId]) -> Result<u64>;

    /// Deletes a session's records; returns how many.
    fn delete_session(&self, session_id: &str) -> Result<u64>;

    /// The secret that signs page tokens (stable across restarts).
    fn page_token_secret(&self) -> Result<Vec<u8>>;
}
