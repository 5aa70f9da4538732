//! The operation log: one entry per change to a collection's contents, with
//! a sequence number that only grows. Indexes record the last sequence number
//! they contain and replay the entries after it on start.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::{decode, encode, keys, Result, Store, StoreError};

const NEXT_SEQ_KEY: &[u8] = b"next_seq";

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A collection was created.
    CreateCollection {
        /// Its name.
        name: String,
    },
    /// A collection was dropped with all its data.
    DropCollection {
        /// Its name.
        name: String,
    },
    /// A document was added or replaced.
    UpsertDocument {
        /// The document's id.
        document_id: String,
        /// Chunks that were added.
        added: Vec<u64>,
        /// Chunks of the previous version that were removed.
        removed: Vec<u64>,
    },
    /// A document was deleted.
    DeleteDocument {
        /// The document's id.
        document_id: String,
        /// Its chunks, now removed.
        removed: Vec<u64>,
    },
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The sequence number, from 1, strictly increasing.
    pub seq: u64,
    /// The numeric id of the collection it changed.
    pub collection_id: u64,
    /// What it did.
    pub kind: OpKind,
}

/// Appends an op inside a transaction over `meta` and `oplog`; returns its
/// sequence number.
pub(crate) fn append(
    meta: &TransactionalTree,
    oplog: &TransactionalTree,
    collection_id: u64,
    kind: OpKind,
) -> std::result::Result<u64, ConflictableTransactionError<StoreError>> {
    let seq = match meta.get(NEXT_SEQ_KEY)? {
        Some(raw) => keys::decode_u64(&raw).ok_or_else(|| {
            ConflictableTransactionError::Abort(StoreError::Corrupt("next_seq is not a u64".into()))
        })?,
        None => 1,
    };
    meta.insert(NEXT_SEQ_KEY, &(seq + 1).to_be_bytes())?;
    let op = Op {
        seq,
        collection_id,
        kind,
    };
    oplog.insert(&seq.to_be_bytes(), encode(&op))?;
    Ok(seq)
}

/// Op-log entries removed per sled batch when the log is truncated.
const TRUNCATE_BATCH: usize = 4096;

impl Store {
    /// The sequence number of the newest operation (0 when none was ever
    /// written). Survives truncation of the log.
    pub fn last_seq(&self) -> Result<u64> {
        Ok(match self.meta.get(NEXT_SEQ_KEY)? {
            Some(raw) => {
                keys::decode_u64(&raw)
                    .ok_or_else(|| StoreError::Corrupt("next_seq is not a u64".into()))?
                    - 1
            }
            None => 0,
        })
    }

    /// The operations with a sequence number greater than `seq`, oldest first.
    pub fn ops_after(&self, seq: u64) -> impl Iterator<Item = Result<Op>> + '_ {
        let start = seq.saturating_add(1).to_be_bytes();
        self.oplog.range(start..).map(|item| {
            let (_, raw) = item?;
            decode("oplog entry", &raw)
        })
    }

    /// Drops operations up to and including `seq`, once every index has a
    /// checkpoint past them. Returns how many were removed.
    pub fn truncate_ops_through(&self, seq: u64) -> Result<usize> {
        self.truncate_ops_in_batches(seq, TRUNCATE_BATCH)
    }

    /// [`Self::truncate_ops_through`], `batch` entries per sled batch: a
    /// sled batch holds a lock that every read waits for, and one batch
    /// of the million entries a bulk load leaves stalled searches for
    /// 30 s. Dropping a prefix of the log piecewise is safe: every entry
    /// removed is already in every index.
    pub(crate) fn truncate_ops_in_batches(&self, seq: u64, batch: usize) -> Result<usize> {
        let end = seq.saturating_add(1).to_be_bytes();
        let mut n = 0;
        loop {
            let keys: Vec<sled::IVec> = self
                .oplog
                .range(..end)
                .keys()
                .take(batch.max(1))
                .collect::<std::result::Result<_, _>>()?;
            if keys.is_empty() {
                break;
            }
            let mut b = sled::Batch::default();
            n += keys.len();
            for key in keys {
                b.remove(key);
            }
            self.oplog.apply_batch(b)?;
        }
        self.flush()?;
        Ok(n)
    }
}
