//! One Quarry collection in Qdrant: a Qdrant collection of chunks, each a
//! point with a named dense vector (`dense`, cosine, the collection's HNSW
//! settings), a sparse BM25 vector (`bm25`, IDF modifier; see
//! [`crate::sparse`]) and a payload (see [`ChunkPayload`], with the
//! metadata under `m` as [`crate::payload`] lays it out and the chunk's
//! distinct keyword terms under `w`).
//!
//! A document is its chunks: chunk 0 also carries the document's text.
//! Writes are one `update_batch` request per group of documents, each
//! document's upsert followed by the delete of its chunks past its new
//! length, so that a replacement never leaves old chunks behind, applied
//! in order with `wait=true` and strong ordering before Quarry
//! acknowledges.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::points_update_operation::{self, Operation};
use qdrant_client::qdrant::{
    CountPoints, FieldType, GetPoints, NamedVectors, PointStruct, PointsSelector,
    PointsUpdateOperation, QuantizationSearchParams, Query, QueryBatchPoints, QueryPoints, Range,
    SearchParams, UpdateBatchPoints, Vector, VectorInput,
};
use quarry_core::{
    CollectionInfo, CollectionName, CollectionSettings, Document, IndexedCounts, MetaValue,
    Metadata, NewDocument, Placement, Quantization, StoredDocument, UpsertStatus,
};
use quarry_engine::storage::{CollectionStorage, Doomed, Removed, Written};
use quarry_engine::{Mode, Result, SearchHit};
use quarry_index::{combine, Ranked, SearchQuery};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::SharedNodes;
use crate::error::QdrantBackendError;
use crate::filter::filter_of;
use crate::ids::chunk_point;
use crate::payload::{field, metadata_payload};
use crate::sparse::{idf, Averages, Keywords};
use crate::wire;

/// The dense vector's name.
pub const DENSE: &str = "dense";
/// The sparse (BM25) vector's name.
pub const SPARSE: &str = "bm25";

/// The BM25 average field lengths assumed before a collection's first
/// write has measured its own (terms).
const DEFAULT_AVG_LEN: Averages = Averages {
    text: 64.0,
    title: 4.0,
};

/// Payload fields with a payload index from creation.
pub(crate) const DOC: &str = "doc";
pub(crate) const INDEX: &str = "ci";
pub(crate) const TERMS: &str = "w";

/// Points per write request (documents are never split across two).
const POINTS_PER_REQUEST: usize = 512;
/// Metadata fields given a payload index, at most, per collection: filters
/// on further fields still work, by scanning.
const MAX_INDEXED_FIELDS: usize = 128;

/// What a chunk's point holds besides vectors, metadata and terms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChunkPayload {
    /// Document id.
    pub doc: String,
    /// Position in the document.
    pub ci: u32,
    /// Chunks in the document.
    pub n: u32,
    /// The chunk's text.
    pub x: String,
    /// The document's title.
    pub t: String,
    /// The document's content hash.
    pub hash: String,
    /// The document's metadata, as Quarry's JSON.
    pub md: String,
    /// When the document was written (ms since the epoch).
    pub ts: i64,
    /// The document's whole text (chunk 0 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dt: Option<String>,
}

/// The payload fields a search reads back.
const HIT_FIELDS: [&str; 8] = ["doc", "ci", "n", "x", "t", "hash", "md", "ts"];

/// Quarry's description of a collection, kept in the Qdrant collection's
/// own metadata (written once, with the collection).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CollectionMeta {
    pub settings: CollectionSettings,
    pub created_at_ms: i64,
    /// The BM25 average field lengths (terms) its sparse vectors assume:
    /// measured on the collection's first write and fixed from then on
    /// (`None` until then).
    #[serde(default)]
    pub avg_len: Option<Averages>,
}

/// The metadata key holding [`CollectionMeta`].
pub(crate) const META_KEY: &str = "quarry";

/// A handle on one collection.
pub struct QdrantCollection {
    pub(crate) nodes: SharedNodes,
    pub(crate) name: CollectionName,
    pub(crate) qname: String,
    pub(crate) meta: CollectionMeta,
    pub(crate) placement: Placement,
    /// Payload fields with an index (shared by the storage's handles).
    pub(crate) indexed: Arc<Mutex<HashSet<String>>>,
    /// The average chunk length once known (read at open, or measured by
    /// a write; shared with the storage's cached description).
    pub(crate) avg_len: Arc<Mutex<Option<Averages>>>,
}

fn metadata_json(m: &Metadata) -> String {
    serde_json::to_string(m).expect("metadata always serialises")
}

/// The payload-index type of a metadata field path (`m.s_...`).
fn field_type(path: &str) -> FieldType {
    match path.as_bytes().get(2) {
        Some(b'i') => FieldType::Integer,
        Some(b'd') => FieldType::Float,
        Some(b'b') => FieldType::Bool,
        _ => FieldType::Keyword,
    }
}

/// The payload field paths a document's metadata fills.
fn metadata_fields(m: &Metadata) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in m {
        match value {
            MetaValue::String(_) => out.push(field('s', key)),
            MetaValue::StringList(_) => {
                out.push(field('s', key));
                out.push(field('l', key));
            }
            // A number filter asks both number fields (see crate::filter):
            // both need an index, or Qdrant scans every payload for the
            // one no point holds.
            MetaValue::Int(_) | MetaValue::Double(_) => {
                out.push(field('i', key));
                out.push(field('d', key));
            }
            MetaValue::Bool(_) => out.push(field('b', key)),
        }
    }
    out
}

impl QdrantCollection {
    pub(crate) fn new(
        nodes: SharedNodes,
        name: CollectionName,
        qname: String,
        meta: CollectionMeta,
        placement: Placement,
        indexed: Arc<Mutex<HashSet<String>>>,
        avg_len: Arc<Mutex<Option<Averages>>>,
    ) -> Self {
        Self {
            nodes,
            name,
            qname,
            placement,
            indexed,
            avg_len,
            meta,
        }
    }

    fn keywords(&self) -> Keywords {
        let avg = *self.avg_len.lock().expect("not poisoned");
        Keywords::new(self.meta.settings.language, avg.unwrap_or(DEFAULT_AVG_LEN))
    }

    /// The average chunk length of this collection's sparse vectors: the
    /// stored one, or, on the first write, the one `docs` have (saved in
    /// the collection's metadata, so that every later vector, from any
    /// node, assumes the same). Two nodes writing first at once each save
    /// theirs and the last one stays: their averages differ by little.
    fn average_length(&self, docs: &[NewDocument]) -> Result<Averages> {
        let mut known = self.avg_len.lock().expect("not poisoned");
        if let Some(a) = *known {
            return Ok(a);
        }
        let mut keywords = Keywords::new(self.meta.settings.language, DEFAULT_AVG_LEN);
        let (mut text, mut title, mut chunks) = (0usize, 0usize, 0usize);
        for d in docs {
            for c in &d.chunks {
                let (x, t) = keywords.count(&d.document.title, &c.text);
                text += x;
                title += t;
                chunks += 1;
            }
        }
        if chunks == 0 {
            return Ok(DEFAULT_AVG_LEN);
        }
        let avg = Averages {
            text: (text as f32 / chunks as f32).max(1.0),
            title: (title as f32 / chunks as f32).max(1.0),
        };
        let meta = CollectionMeta {
            avg_len: Some(avg),
            ..self.meta.clone()
        };
        // (Saved before it is used: every later handle, on any node,
        // reads it.)
        let request = qdrant_client::qdrant::UpdateCollection {
            collection_name: self.qname.clone(),
            metadata: HashMap::from([(
                META_KEY.to_owned(),
                qdrant_client::qdrant::Value::from(
                    serde_json::to_string(&meta).expect("settings serialise"),
                ),
            )]),
            ..Default::default()
        };
        self.nodes
            .run("saving the collection's average chunk length", |c| {
                let r = request.clone();
                async move { c.update_collection(r).await }
            })?;
        tracing::info!(collection = %self.name, text = avg.text, title = avg.title, "BM25 average field lengths fixed");
        *known = Some(avg);
        Ok(avg)
    }

    fn count(&self, filter: Option<qdrant_client::qdrant::Filter>) -> Result<u64> {
        let request = CountPoints {
            collection_name: self.qname.clone(),
            filter,
            exact: Some(true),
            ..Default::default()
        };
        let counted = self.nodes.run("a count", |c| {
            let r = request.clone();
            async move { c.count(r).await }
        })?;
        Ok(counted.result.map_or(0, |r| r.count))
    }

    /// Chunk 0 of each document (`None` where it has none), with `fields`.
    fn heads(&self, ids: &[&str], fields: &[&str]) -> Result<HashMap<String, ChunkPayload>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let request = GetPoints {
            collection_name: self.qname.clone(),
            ids: ids.iter().map(|d| wire::point(chunk_point(d, 0))).collect(),
            with_payload: Some(wire::fields(fields)),
            with_vectors: Some(wire::vectors(None)),
            ..Default::default()
        };
        let got = self.nodes.run("a read of documents", |c| {
            let r = request.clone();
            async move { c.get_points(r).await }
        })?;
        let mut out = HashMap::new();
        for p in got.result {
            let head: ChunkPayload = wire::from_payload("chunk payload", p.payload)?;
            out.insert(head.doc.clone(), head);
        }
        Ok(out)
    }

    /// Gives the metadata fields `docs` fill a payload index, once each.
    fn index_fields(&self, docs: &[NewDocument]) -> Result<()> {
        let mut wanted: Vec<String> = Vec::new();
        {
            let known = self.indexed.lock().expect("not poisoned");
            for d in docs {
                for f in metadata_fields(&d.document.metadata) {
                    if !known.contains(&f) && !wanted.contains(&f) {
                        wanted.push(f);
                    }
                }
            }
            let room = MAX_INDEXED_FIELDS.saturating_sub(known.len());
            wanted.truncate(room);
        }
        for f in wanted {
            create_index(&self.nodes, &self.qname, &f, field_type(&f))?;
            self.indexed.lock().expect("not poisoned").insert(f);
        }
        Ok(())
    }

    fn send(&self, operations: Vec<PointsUpdateOperation>) -> Result<()> {
        if operations.is_empty() {
            return Ok(());
        }
        let request = UpdateBatchPoints {
            collection_name: self.qname.clone(),
            wait: Some(true),
            operations,
            ordering: None,
            timeout: None,
        };
        self.nodes.write("a write", |c, ordering| {
            let r = UpdateBatchPoints {
                ordering: Some(ordering),
                ..request.clone()
            };
            async move { c.update_points_batch(r).await }
        })?;
        Ok(())
    }

    fn delete_where(&self, filter: qdrant_client::qdrant::Filter) -> Result<()> {
        self.send(vec![delete_op(filter)])
    }
}

/// A delete-by-filter operation.
fn delete_op(filter: qdrant_client::qdrant::Filter) -> PointsUpdateOperation {
    PointsUpdateOperation {
        operation: Some(Operation::DeletePoints(
            points_update_operation::DeletePoints {
                points: Some(PointsSelector {
                    points_selector_one_of: Some(PointsSelectorOneOf::Filter(filter)),
                }),
                shard_key_selector: None,
            },
        )),
    }
}

/// Creates a payload index (idempotent: an existing one is kept).
pub(crate) fn create_index(
    nodes: &SharedNodes,
    qname: &str,
    field: &str,
    kind: FieldType,
) -> Result<()> {
    let request = qdrant_client::qdrant::CreateFieldIndexCollection {
        collection_name: qname.to_owned(),
        wait: Some(true),
        field_name: field.to_owned(),
        field_type: Some(kind as i32),
        field_index_params: None,
        ..Default::default()
    };
    nodes.write("a payload index", |c, ordering| {
        let r = qdrant_client::qdrant::CreateFieldIndexCollection {
            ordering: Some(ordering),
            ..request.clone()
        };
        async move { c.create_field_index(r).await }
    })?;
    Ok(())
}

impl CollectionStorage for QdrantCollection {
    fn name(&self) -> &CollectionName {
        &self.name
    }

    fn settings(&self) -> &CollectionSettings {
        &self.meta.settings
    }

    fn info(&self) -> Result<CollectionInfo> {
        let chunks = self.count(None)?;
        let documents = self.count(Some(wire::all(vec![wire::integer(INDEX, 0)])))?;
        Ok(CollectionInfo {
            name: self.name.clone(),
            settings: self.meta.settings,
            created_at_ms: self.meta.created_at_ms,
            document_count: documents,
            chunk_count: chunks,
            // Qdrant indexes every point it acknowledged, dense and sparse.
            indexed: IndexedCounts {
                dense: chunks,
                keyword: chunks,
            },
            placement: Some(self.placement),
            note: String::new(),
        })
    }

    fn document(&self, id: &str) -> Result<StoredDocument> {
        let mut fields = HIT_FIELDS.to_vec();
        fields.push("dt");
        let head = self.heads(&[id], &fields)?.remove(id).ok_or_else(|| {
            quarry_engine::EngineError::from(quarry_store::StoreError::DocumentNotFound {
                collection: self.name.to_string(),
                id: id.to_owned(),
            })
        })?;
        let metadata: Metadata =
            serde_json::from_str(&head.md).map_err(|e| QdrantBackendError::Corrupt {
                what: "document metadata",
                detail: e.to_string(),
            })?;
        Ok(StoredDocument {
            document: Document {
                id: head.doc.clone(),
                title: head.t,
                text: head.dt.unwrap_or_default(),
                metadata,
            },
            content_hash: head.hash,
            chunk_ids: (0..head.n).map(|i| chunk_point(id, i)).collect(),
            updated_seq: head.ts.max(0) as u64,
        })
    }

    fn content_hash(&self, id: &str) -> Result<Option<String>> {
        Ok(self.heads(&[id], &HIT_FIELDS)?.remove(id).map(|h| h.hash))
    }

    fn write(&self, docs: Vec<NewDocument>) -> Result<Written> {
        let ids: Vec<&str> = docs.iter().map(|d| d.document.id.as_str()).collect();
        let stored = self.heads(&ids, &HIT_FIELDS)?;
        self.index_fields(&docs)?;
        let mut keywords = Keywords::new(self.meta.settings.language, self.average_length(&docs)?);
        let now = quarry_core::now_ms();
        let mut statuses = Vec::with_capacity(docs.len());
        let mut chunks_written = 0u64;
        let mut operations = Vec::new();
        let mut points_in_request = 0usize;
        for doc in docs {
            let old = stored.get(&doc.document.id);
            let status = match old {
                Some(h) if h.hash == doc.content_hash => UpsertStatus::Unchanged,
                Some(_) => UpsertStatus::Updated,
                None => UpsertStatus::Added,
            };
            statuses.push(status);
            if status == UpsertStatus::Unchanged {
                continue;
            }
            let n = doc.chunks.len() as u32;
            let md = metadata_json(&doc.document.metadata);
            let m = metadata_payload(&doc.document.metadata);
            let mut points = Vec::with_capacity(doc.chunks.len());
            for (i, chunk) in doc.chunks.into_iter().enumerate() {
                let (sparse, terms) = keywords.chunk(&doc.document.title, &chunk.text);
                let head = ChunkPayload {
                    doc: doc.document.id.clone(),
                    ci: i as u32,
                    n,
                    x: chunk.text,
                    t: doc.document.title.clone(),
                    hash: doc.content_hash.clone(),
                    md: md.clone(),
                    ts: now,
                    dt: (i == 0).then(|| doc.document.text.clone()),
                };
                let mut body = serde_json::to_value(head).expect("payloads serialise");
                body["m"] = m.clone();
                body[TERMS] = json!(terms);
                let vectors = NamedVectors::default()
                    .add_vector(DENSE, Vector::new_dense(chunk.vector))
                    .add_vector(SPARSE, Vector::new_sparse(sparse.indices, sparse.values));
                points.push(PointStruct::new(
                    chunk_point(&doc.document.id, i as u32),
                    vectors,
                    wire::payload(body)?,
                ));
            }
            chunks_written += points.len() as u64;
            points_in_request += points.len();
            operations.push(PointsUpdateOperation {
                operation: Some(Operation::Upsert(
                    points_update_operation::PointStructList {
                        points,
                        shard_key_selector: None,
                        update_filter: None,
                        update_mode: None,
                    },
                )),
            });
            if old.is_some() {
                // The old version's chunks past the new length.
                operations.push(delete_op(wire::all(vec![
                    wire::keyword(DOC, &doc.document.id),
                    wire::range(
                        INDEX,
                        Range {
                            gte: Some(n as f64),
                            ..Default::default()
                        },
                    ),
                ])));
            }
            if points_in_request >= POINTS_PER_REQUEST {
                self.send(std::mem::take(&mut operations))?;
                points_in_request = 0;
            }
        }
        self.send(operations)?;
        Ok(Written {
            statuses,
            chunks: chunks_written,
        })
    }

    fn delete(&self, which: Doomed<'_>) -> Result<Removed> {
        let selected = match which {
            Doomed::Ids([]) => return Ok(Removed::default()),
            Doomed::Ids(ids) => wire::any_keyword(DOC, ids),
            Doomed::Matching(filter) => wire::nested(filter_of(filter)),
        };
        let chunks = self.count(Some(wire::all(vec![selected.clone()])))?;
        if chunks == 0 {
            return Ok(Removed::default());
        }
        let documents = self.count(Some(wire::all(vec![
            selected.clone(),
            wire::integer(INDEX, 0),
        ])))?;
        self.delete_where(wire::all(vec![selected]))?;
        Ok(Removed { documents, chunks })
    }

    fn search(&self, query: &SearchQuery<'_>) -> Result<Vec<SearchHit>> {
        let filter = query.filter.map(filter_of);
        let depth = query.depth.max(query.top_k) as u64;
        if query.top_k == 0 {
            return Ok(Vec::new());
        }
        let base = QueryPoints {
            collection_name: self.qname.clone(),
            filter,
            limit: Some(depth),
            with_payload: Some(wire::fields(&HIT_FIELDS)),
            // No vectors: a search needs none, and Ask asks for the few it
            // needs (CollectionStorage::vector).
            with_vectors: Some(wire::vectors(None)),
            ..Default::default()
        };
        let mut batch = Vec::new();
        let mut which = Vec::new();
        if let (Mode::Hybrid | Mode::Dense, Some(v)) = (query.mode, query.vector) {
            batch.push(QueryPoints {
                query: Some(Query::new_nearest(v.to_vec())),
                using: Some(DENSE.into()),
                params: Some(SearchParams {
                    hnsw_ef: Some(self.meta.settings.hnsw_ef_search as u64),
                    quantization: (self.meta.settings.quantization == Quantization::Int8)
                        .then_some(QuantizationSearchParams {
                            rescore: Some(true),
                            ..Default::default()
                        }),
                    ..Default::default()
                }),
                ..base.clone()
            });
            which.push(DENSE);
        }
        if matches!(query.mode, Mode::Hybrid | Mode::Keyword) {
            if let Some(sparse) = self.keywords().query(query.text) {
                batch.push(QueryPoints {
                    query: Some(Query::new_nearest(VectorInput::new_sparse(
                        sparse.indices,
                        sparse.values,
                    ))),
                    using: Some(SPARSE.into()),
                    ..base.clone()
                });
                which.push(SPARSE);
            }
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let request = QueryBatchPoints {
            collection_name: self.qname.clone(),
            query_points: batch,
            ..Default::default()
        };
        let answered = self.nodes.run("a search", |c| {
            let r = request.clone();
            async move { c.query_batch(r).await }
        })?;
        let mut dense = Vec::new();
        let mut keyword = Vec::new();
        let mut payloads: HashMap<u64, ChunkPayload> = HashMap::new();
        for (list, result) in which.iter().zip(answered.result) {
            let ranked = if *list == DENSE {
                &mut dense
            } else {
                &mut keyword
            };
            for p in result.result {
                let Some(id) = wire::point_num(&p.id) else {
                    continue;
                };
                ranked.push(Ranked { id, score: p.score });
                if let std::collections::hash_map::Entry::Vacant(e) = payloads.entry(id) {
                    e.insert(wire::from_payload("chunk payload", p.payload)?);
                }
            }
        }
        let fused = combine(query.mode, &dense, &keyword, query.fusion, query.top_k);
        let mut metadata: HashMap<String, Metadata> = HashMap::new();
        let mut hits = Vec::with_capacity(fused.len());
        for f in fused {
            let Some(p) = payloads.remove(&f.id) else {
                continue;
            };
            if !metadata.contains_key(&p.doc) {
                let m = serde_json::from_str(&p.md).map_err(|e| QdrantBackendError::Corrupt {
                    what: "document metadata",
                    detail: e.to_string(),
                })?;
                metadata.insert(p.doc.clone(), m);
            }
            hits.push(SearchHit {
                chunk_id: f.id,
                metadata: metadata[&p.doc].clone(),
                document_id: p.doc,
                title: p.t,
                text: p.x,
                score: f.score,
                dense: f.dense,
                keyword: f.keyword,
                chunk_index: p.ci,
            });
        }
        Ok(hits)
    }

    fn vector(&self, chunk_id: u64) -> Result<Option<Vec<f32>>> {
        let request = GetPoints {
            collection_name: self.qname.clone(),
            ids: vec![wire::point(chunk_id)],
            with_payload: Some(wire::no_payload()),
            with_vectors: Some(wire::vectors(Some(DENSE))),
            ..Default::default()
        };
        let got = self.nodes.run("a read of a vector", |c| {
            let r = request.clone();
            async move { c.get_points(r).await }
        })?;
        Ok(got
            .result
            .into_iter()
            .next()
            .and_then(|p| wire::dense_of(p.vectors, DENSE)))
    }

    fn word_weights(&self, words: &[&str]) -> Result<Vec<Option<f32>>> {
        let mut keywords = self.keywords();
        let terms: Vec<Option<String>> = words.iter().map(|w| keywords.term(w)).collect();
        let total = self.count(None)?;
        // One count per distinct term, sent together.
        let distinct: Vec<String> = {
            let mut d: Vec<String> = terms.iter().flatten().cloned().collect();
            d.sort();
            d.dedup();
            d
        };
        let mut pending = Vec::with_capacity(distinct.len());
        for term in &distinct {
            let nodes = Arc::clone(&self.nodes);
            let request = CountPoints {
                collection_name: self.qname.clone(),
                filter: Some(wire::all(vec![wire::keyword(TERMS, term)])),
                exact: Some(true),
                ..Default::default()
            };
            pending.push(self.nodes.spawn(async move {
                nodes
                    .call("a term count", |c| {
                        let r = request.clone();
                        async move { c.count(r).await }
                    })
                    .await
            }));
        }
        let mut df = HashMap::new();
        for (term, task) in distinct.into_iter().zip(pending) {
            let counted = self.nodes.block_on(task).map_err(|e| {
                quarry_engine::EngineError::Internal(format!("a count failed: {e}"))
            })??;
            df.insert(term, counted.result.map_or(0, |r| r.count));
        }
        Ok(terms
            .into_iter()
            .map(|t| t.map(|t| idf(total, df.get(&t).copied().unwrap_or(0))))
            .collect())
    }
}
