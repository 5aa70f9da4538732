//! Prompt/response records in the cluster, so that every Quarry node sees
//! the same history: one Qdrant collection without vectors, a point per
//! record whose id is the record id, with `id` and `session` indexed for
//! the History service's order and filters, and the record itself in
//! `body`: Quarry's JSON, or sealed with the records key (hex) as on the
//! embedded backend.
//!
//! The collection's metadata holds the page-token secret (so page tokens
//! signed by one node are accepted by another) and, when records are
//! sealed, the key's check value (so a node with a wrong key or none
//! refuses to start instead of reading garbage). Both are written once,
//! by whichever node creates the collection.

use std::collections::{HashMap, VecDeque};

use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::{
    CountPoints, CreateCollection, Direction, FieldType, GetPoints, OrderBy, PointStruct,
    PointsSelector, Range, RetrievedPoint, ScrollPoints, UpsertPoints, Value, VectorsConfig,
};
use quarry_core::{Record, RecordId};
use quarry_engine::storage::{RecordIter, RecordStorage};
use quarry_engine::{EngineError, Result};
use quarry_store::{RecordKey, StoreError};
use serde::{Deserialize, Serialize};

use crate::client::SharedNodes;
use crate::collection::create_index;
use crate::error::{tonic_code::Code, QdrantBackendError};
use crate::ids::RecordIds;
use crate::wire::{self, hex};

/// A records collection's page-token secret and records-key check value.
type Secrets = (Vec<u8>, Option<Vec<u8>>);

/// Copies of each shard of the records collection.
const RECORDS_REPLICATION: u32 = 2;

/// Records read per request while iterating.
const PAGE: u32 = 128;

#[derive(Debug, Serialize, Deserialize)]
struct RecordPayload {
    id: u64,
    #[serde(default)]
    session: String,
    body: String,
    /// Random, per write: tells an insert whether the point it finds is
    /// its own.
    #[serde(default)]
    nonce: u64,
}

/// The records of one deployment.
pub struct QdrantRecords {
    nodes: SharedNodes,
    qname: String,
    key: Option<RecordKey>,
    ids: RecordIds,
    secret: Vec<u8>,
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn text_of(meta: &HashMap<String, Value>, key: &str) -> Option<String> {
    meta.get(key)
        .and_then(|v| v.clone().into_json().as_str().map(str::to_owned))
}

impl QdrantRecords {
    /// Opens the records collection `qname`, creating it (with a new
    /// page-token secret, and the key's check value when records are
    /// sealed) when no node has yet, and checks the records key against
    /// it.
    pub fn open(nodes: SharedNodes, qname: String, key: Option<RecordKey>) -> Result<Self> {
        let (secret, check) = match Self::metadata(&nodes, &qname)? {
            Some(meta) => meta,
            None => {
                Self::create(&nodes, &qname, key.as_ref())?;
                Self::metadata(&nodes, &qname)?.ok_or_else(|| {
                    EngineError::Internal(format!("{qname}: created but not found"))
                })?
            }
        };
        let records = Self {
            nodes,
            qname,
            key,
            ids: RecordIds::default(),
            secret,
        };
        records.check_key(check)?;
        Ok(records)
    }

    /// The secret and the key check of an existing collection.
    fn metadata(nodes: &SharedNodes, qname: &str) -> Result<Option<Secrets>> {
        let name = qname.to_owned();
        let info = nodes.run("a read of the records collection", |c| {
            let n = name.clone();
            async move { c.collection_info(n).await }
        });
        let info = match info {
            Ok(info) => info,
            Err(QdrantBackendError::Refused {
                code: Code::NotFound,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let meta = info
            .result
            .and_then(|r| r.config)
            .map(|c| c.metadata)
            .unwrap_or_default();
        let secret = text_of(&meta, "page_token_secret")
            .and_then(|s| unhex(&s))
            .ok_or_else(|| QdrantBackendError::Corrupt {
                what: "records collection",
                detail: format!("{qname} has no page_token_secret in its metadata"),
            })?;
        let check = text_of(&meta, "records_key_check").and_then(|s| unhex(&s));
        Ok(Some((secret, check)))
    }

    fn create(nodes: &SharedNodes, qname: &str, key: Option<&RecordKey>) -> Result<()> {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret)
            .map_err(|e| EngineError::Internal(format!("no random page-token secret: {e}")))?;
        let mut metadata =
            HashMap::from([("page_token_secret".to_owned(), Value::from(hex(&secret)))]);
        if let Some(key) = key {
            metadata.insert(
                "records_key_check".into(),
                Value::from(hex(&key.check_value()?)),
            );
        }
        let request = CreateCollection {
            collection_name: qname.to_owned(),
            // No vectors: records are found by id and session.
            vectors_config: Some(VectorsConfig { config: None }),
            // Every node's history must survive a node: two copies of each
            // shard where the cluster has two nodes (Qdrant keeps fewer
            // on a smaller cluster), one acknowledgement.
            replication_factor: Some(RECORDS_REPLICATION),
            write_consistency_factor: Some(1),
            metadata,
            ..Default::default()
        };
        match nodes.run("creating the records collection", |c| {
            let r = request.clone();
            async move { c.create_collection(r).await }
        }) {
            Ok(_) => {}
            // Another node created it first: its secret wins.
            Err(QdrantBackendError::Refused {
                code: Code::AlreadyExists,
                ..
            }) => return Ok(()),
            Err(QdrantBackendError::Refused { message, .. })
                if message.contains("already exists") =>
            {
                return Ok(())
            }
            Err(e) => return Err(e.into()),
        }
        create_index(nodes, qname, "id", FieldType::Integer)?;
        create_index(nodes, qname, "session", FieldType::Keyword)?;
        Ok(())
    }

    /// The same rules as the embedded store's: a wrong key, a missing key
    /// for sealed records, or a key over plaintext records refuse to start.
    fn check_key(&self, check: Option<Vec<u8>>) -> Result<()> {
        let refuse = |why: &str| {
            Err(EngineError::from(StoreError::RecordKey(format!(
                "Qdrant collection {}: {why}",
                self.qname
            ))))
        };
        match (&self.key, check) {
            (None, None) => Ok(()),
            (None, Some(_)) => refuse("the records are encrypted; start with the records key"),
            (Some(key), Some(check)) if key.matches(&check) => Ok(()),
            (Some(_), Some(_)) => {
                refuse("the records key is wrong (it does not open these records)")
            }
            (Some(_), None) => {
                refuse("the records are stored in plain text; a key cannot be added to them")
            }
        }
    }

    fn encode(&self, record: &Record) -> Result<String> {
        let plain = serde_json::to_vec(record).expect("records serialise");
        Ok(match &self.key {
            Some(key) => hex(&key.seal(&plain)?),
            None => String::from_utf8(plain).expect("JSON is UTF-8"),
        })
    }

    fn decode(&self, body: &str) -> Result<Record> {
        let corrupt = |detail: String| QdrantBackendError::Corrupt {
            what: "record",
            detail,
        };
        let plain = match &self.key {
            Some(key) => key.open(&unhex(body).ok_or_else(|| corrupt("not hex".into()))?)?,
            None => body.as_bytes().to_vec(),
        };
        Ok(serde_json::from_slice(&plain).map_err(|e| corrupt(e.to_string()))?)
    }

    /// Writes `record`; with `insert_only`, a point that exists keeps its
    /// content. Returns the write's nonce.
    fn write_record(&self, record: &Record, insert_only: bool) -> Result<u64> {
        let mut random = [0u8; 8];
        getrandom::getrandom(&mut random)
            .map_err(|e| EngineError::Internal(format!("no random nonce: {e}")))?;
        let nonce = u64::from_be_bytes(random) >> 12;
        let body = RecordPayload {
            id: record.id.0,
            session: record.session_id.clone(),
            body: self.encode(record)?,
            nonce,
        };
        let payload = wire::payload(serde_json::to_value(body).expect("payloads serialise"))?;
        let request = UpsertPoints {
            collection_name: self.qname.clone(),
            wait: Some(true),
            update_mode: insert_only
                .then_some(qdrant_client::qdrant::UpdateMode::InsertOnly as i32),
            points: vec![PointStruct::new(
                wire::point(record.id.0),
                // No vectors (an empty set of named ones; `None` is refused).
                qdrant_client::qdrant::Vectors {
                    vectors_options: Some(qdrant_client::qdrant::vectors::VectorsOptions::Vectors(
                        qdrant_client::qdrant::NamedVectors::default(),
                    )),
                },
                payload,
            )],
            ..Default::default()
        };
        self.nodes.write("a write of a record", |c, ordering| {
            let r = UpsertPoints {
                ordering: Some(ordering),
                ..request.clone()
            };
            async move { c.upsert_points(r).await }
        })?;
        Ok(nonce)
    }

    /// Writes `record` over any point with its id (a rating, a restore).
    fn put(&self, record: &Record) -> Result<()> {
        self.write_record(record, false).map(|_| ())
    }

    /// Stores `record` under its own id (a migration: idempotent, so an
    /// interrupted one can run again).
    pub fn restore(&self, record: &Record) -> Result<()> {
        self.put(record)
    }

    /// How many records there are.
    pub fn count_all(&self) -> Result<u64> {
        self.count(wire::all(Vec::new()))
    }

    fn read(&self, ids: &[u64]) -> Result<Vec<RetrievedPoint>> {
        let request = GetPoints {
            collection_name: self.qname.clone(),
            ids: ids.iter().map(|&i| wire::point(i)).collect(),
            with_payload: Some(wire::fields(&["id", "session", "body", "nonce"])),
            with_vectors: Some(wire::vectors(None)),
            ..Default::default()
        };
        Ok(self
            .nodes
            .run("a read of records", |c| {
                let r = request.clone();
                async move { c.get_points(r).await }
            })?
            .result)
    }

    /// One page of records (or only their ids), ordered by id, after
    /// `cursor` in that order, of `session` when given.
    fn page(
        &self,
        newest_first: bool,
        cursor: Option<u64>,
        session: Option<&str>,
        ids_only: bool,
    ) -> Result<Vec<RecordPayload>> {
        // Qdrant's ranges (and order_by's start_from) are doubles: exact
        // for record ids, which stay below 2^53 (crate::ids).
        let mut must = Vec::new();
        if let Some(c) = cursor {
            let mut range = Range::default();
            if newest_first {
                range.lt = Some(c as f64);
            } else {
                range.gt = Some(c as f64);
            }
            must.push(wire::range("id", range));
        }
        if let Some(s) = session {
            must.push(wire::keyword("session", s));
        }
        let request = ScrollPoints {
            collection_name: self.qname.clone(),
            filter: (!must.is_empty()).then(|| wire::all(must)),
            limit: Some(PAGE),
            with_payload: Some(if ids_only {
                wire::fields(&["id", "session"])
            } else {
                wire::fields(&["id", "session", "body"])
            }),
            with_vectors: Some(wire::vectors(None)),
            order_by: Some(OrderBy {
                key: "id".into(),
                direction: Some(if newest_first {
                    Direction::Desc as i32
                } else {
                    Direction::Asc as i32
                }),
                start_from: None,
            }),
            ..Default::default()
        };
        let points = self
            .nodes
            .run("a read of records", |c| {
                let r = request.clone();
                async move { c.scroll(r).await }
            })?
            .result;
        points
            .into_iter()
            .map(|p| {
                let mut payload = p.payload;
                if ids_only {
                    payload.insert("body".into(), Value::from(String::new()));
                }
                Ok(wire::from_payload("record payload", payload)?)
            })
            .collect()
    }

    fn iter(&self, newest_first: bool, start: Option<u64>) -> RecordIter<'_> {
        let mut pages = Pages {
            records: self,
            newest_first,
            cursor: start,
            session: None,
            buffer: VecDeque::new(),
            done: false,
        };
        Box::new(std::iter::from_fn(move || {
            let p = pages.next_payload(false)?;
            Some(p.and_then(|p| self.decode(&p.body)))
        }))
    }

    fn count(&self, filter: qdrant_client::qdrant::Filter) -> Result<u64> {
        let request = CountPoints {
            collection_name: self.qname.clone(),
            filter: Some(filter),
            exact: Some(true),
            ..Default::default()
        };
        Ok(self
            .nodes
            .run("a count of records", |c| {
                let r = request.clone();
                async move { c.count(r).await }
            })?
            .result
            .map_or(0, |r| r.count))
    }

    fn delete_selected(&self, selector: PointsSelector) -> Result<()> {
        let request = qdrant_client::qdrant::DeletePoints {
            collection_name: self.qname.clone(),
            wait: Some(true),
            points: Some(selector),
            ..Default::default()
        };
        self.nodes.write("a delete of records", |c, ordering| {
            let r = qdrant_client::qdrant::DeletePoints {
                ordering: Some(ordering),
                ..request.clone()
            };
            async move { c.delete_points(r).await }
        })?;
        Ok(())
    }
}

/// Pages through records in id order.
struct Pages<'a> {
    records: &'a QdrantRecords,
    newest_first: bool,
    cursor: Option<u64>,
    session: Option<String>,
    buffer: VecDeque<RecordPayload>,
    done: bool,
}

impl Pages<'_> {
    fn next_payload(&mut self, ids_only: bool) -> Option<Result<RecordPayload>> {
        if self.buffer.is_empty() && !self.done {
            match self.records.page(
                self.newest_first,
                self.cursor,
                self.session.as_deref(),
                ids_only,
            ) {
                Ok(page) => {
                    self.done = page.len() < PAGE as usize;
                    self.cursor = page.last().map(|p| p.id).or(self.cursor);
                    self.buffer.extend(page);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}

impl RecordStorage for QdrantRecords {
    /// A new id, inserted only if no record has it (two nodes may draw
    /// the same id in the same millisecond: 12 random bits), checked by
    /// reading the point back; another id on a clash.
    fn insert(&self, mut record: Record) -> Result<Record> {
        for _ in 0..8 {
            record.id = RecordId(self.ids.next());
            let nonce = self.write_record(&record, true)?;
            let stored = self.read(&[record.id.0])?;
            let mine = stored.into_iter().next().is_some_and(|p| {
                wire::from_payload::<RecordPayload>("record payload", p.payload)
                    .is_ok_and(|p| p.nonce == nonce)
            });
            if mine {
                return Ok(record);
            }
            tracing::info!(
                id = record.id.0,
                "record id taken by another node; drawing another"
            );
        }
        Err(EngineError::Internal(
            "no free record id after 8 draws".into(),
        ))
    }

    fn get(&self, id: RecordId) -> Result<Record> {
        let point = self
            .read(&[id.0])?
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::from(StoreError::RecordNotFound(id.0.to_string())))?;
        let p: RecordPayload = wire::from_payload("record payload", point.payload)?;
        self.decode(&p.body)
    }

    /// Read, change, write: two nodes rating one record at the same moment
    /// keep the later write.
    fn update(&self, id: RecordId, change: &dyn Fn(&mut Record)) -> Result<Record> {
        let mut record = self.get(id)?;
        change(&mut record);
        record.id = id;
        self.put(&record)?;
        Ok(record)
    }

    fn newest_first(&self, before: Option<RecordId>) -> RecordIter<'_> {
        self.iter(true, before.map(|b| b.0))
    }

    fn oldest_first(&self) -> RecordIter<'_> {
        self.iter(false, None)
    }

    fn session_ids(&self, session_id: &str) -> Box<dyn Iterator<Item = Result<RecordId>> + '_> {
        let mut pages = Pages {
            records: self,
            newest_first: true,
            cursor: None,
            session: Some(session_id.to_owned()),
            buffer: VecDeque::new(),
            done: false,
        };
        Box::new(std::iter::from_fn(move || {
            Some(pages.next_payload(true)?.map(|p| RecordId(p.id)))
        }))
    }

    fn delete(&self, ids: &[RecordId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let raw: Vec<u64> = ids.iter().map(|i| i.0).collect();
        let existing = self.read(&raw)?.len() as u64;
        if existing > 0 {
            self.delete_selected(wire::ids_selector(&raw))?;
        }
        Ok(existing)
    }

    fn delete_session(&self, session_id: &str) -> Result<u64> {
        let filter = wire::all(vec![wire::keyword("session", session_id)]);
        let n = self.count(filter.clone())?;
        if n > 0 {
            self.delete_selected(PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Filter(filter)),
            })?;
        }
        Ok(n)
    }

    fn page_token_secret(&self) -> Result<Vec<u8>> {
        Ok(self.secret.clone())
    }
}
