//! Prompt/response records, keyed by a growing id so that iteration order is
//! creation order (newest first when reversed), with an index of each
//! conversation's records.

use quarry_core::{Record, RecordId};
use sled::Transactional;

use crate::{decode, encode, Result, Store, StoreError};

/// What the record transactions return.
type Tx = sled::transaction::ConflictableTransactionResult<(), StoreError>;

/// Key of the sealed check value in `meta` (present when records are
/// sealed).
const KEY_CHECK: &[u8] = b"records_key_check";

/// Key of the page-token secret in `meta`.
const SECRET_KEY: &[u8] = b"page_token_secret";

fn session_key(session_id: &str, id: RecordId) -> Vec<u8> {
    let mut key = Vec::with_capacity(session_id.len() + 9);
    key.extend_from_slice(session_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&id.0.to_be_bytes());
    key
}

fn session_prefix(session_id: &str) -> Vec<u8> {
    let mut key = session_id.as_bytes().to_vec();
    key.push(0);
    key
}

impl Store {
    /// Refuses a key that is not this directory's, a missing key for
    /// sealed records, and a key over plaintext records.
    pub(crate) fn check_record_key(&self) -> Result<()> {
        let check = self.meta.get(KEY_CHECK)?;
        match (&self.record_key, check) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(StoreError::RecordKey(format!(
                "{}: the records are encrypted; start with the records key",
                self.path.display()
            ))),
            (Some(key), Some(check)) if key.matches(&check) => Ok(()),
            (Some(_), Some(_)) => Err(StoreError::RecordKey(format!(
                "{}: the records key is wrong (it does not open this data directory's records)",
                self.path.display()
            ))),
            (Some(key), None) => {
                if !self.records.is_empty() {
                    return Err(StoreError::RecordKey(format!(
                        "{}: the records are stored in plain text; a key cannot be added to them",
                        self.path.display()
                    )));
                }
                self.meta.insert(KEY_CHECK, key.check_value()?)?;
                self.flush()
            }
        }
    }

    fn encode_record(&self, record: &Record) -> Result<Vec<u8>> {
        let plain = encode(record);
        match &self.record_key {
            Some(key) => key.seal(&plain),
            None => Ok(plain),
        }
    }

    fn decode_record(&self, raw: &[u8]) -> Result<Record> {
        match &self.record_key {
            Some(key) => decode("record", &key.open(raw)?),
            None => decode("record", raw),
        }
    }

    /// Assigns the next record id, stores the record (and its place in its
    /// session) and flushes. The id in `record` is overwritten; the stored
    /// record is returned.
    pub fn insert_record(&self, mut record: Record) -> Result<Record> {
        // generate_id is monotonic across restarts (sled reserves ranges
        // durably), so ids sort by creation.
        record.id = RecordId(self.db.generate_id()?);
        let value = self.encode_record(&record)?;
        {
            let _guard = self.lock();
            (&self.records, &self.sessions).transaction(|(records, sessions)| -> Tx {
                records.insert(&record.id.0.to_be_bytes(), value.as_slice())?;
                if !record.session_id.is_empty() {
                    sessions.insert(session_key(&record.session_id, record.id), &[])?;
                }
                Ok(())
            })?;
        }
        self.flush()?;
        Ok(record)
    }

    /// Reads one record.
    pub fn record(&self, id: RecordId) -> Result<Record> {
        match self.records.get(id.0.to_be_bytes())? {
            Some(raw) => self.decode_record(&raw),
            None => Err(StoreError::RecordNotFound(id.to_string())),
        }
    }

    /// Changes a record in place (rating, comment) and flushes. The id and
    /// session cannot change.
    pub fn update_record(&self, id: RecordId, change: impl Fn(&mut Record)) -> Result<Record> {
        let _guard = self.lock();
        let mut record = self.record(id)?;
        let session = record.session_id.clone();
        change(&mut record);
        record.id = id;
        record.session_id = session;
        self.records
            .insert(id.0.to_be_bytes(), self.encode_record(&record)?)?;
        self.flush()?;
        Ok(record)
    }

    /// Records newest first, starting strictly before `before` when given.
    pub fn records_newest_first(
        &self,
        before: Option<RecordId>,
    ) -> impl Iterator<Item = Result<Record>> + '_ {
        let iter = match before {
            Some(id) => self.records.range(..id.0.to_be_bytes()),
            None => self.records.iter(),
        };
        iter.rev().map(|item| self.decode_record(&item?.1))
    }

    /// Records oldest first.
    pub fn records_oldest_first(&self) -> impl Iterator<Item = Result<Record>> + '_ {
        self.records.iter().map(|item| self.decode_record(&item?.1))
    }

    /// The ids of a session's records, newest first.
    pub fn session_record_ids(
        &self,
        session_id: &str,
    ) -> impl Iterator<Item = Result<RecordId>> + '_ {
        self.sessions
            .scan_prefix(session_prefix(session_id))
            .keys()
            .rev()
            .map(|key| {
                let key = key?;
                let raw = &key[key.len().saturating_sub(8)..];
                crate::keys::decode_u64(raw)
                    .map(RecordId)
                    .ok_or_else(|| StoreError::Corrupt("session key without a record id".into()))
            })
    }

    /// Deletes records by id; unknown ids are skipped. Returns how many were
    /// deleted.
    pub fn delete_records(&self, ids: &[RecordId]) -> Result<u64> {
        let mut records = sled::Batch::default();
        let mut sessions = sled::Batch::default();
        let mut n = 0;
        let _guard = self.lock();
        for id in ids {
            if let Some(raw) = self.records.get(id.0.to_be_bytes())? {
                let record: Record = self.decode_record(&raw)?;
                records.remove(&id.0.to_be_bytes());
                if !record.session_id.is_empty() {
                    sessions.remove(session_key(&record.session_id, *id));
                }
                n += 1;
            }
        }
        (&self.records, &self.sessions).transaction(|(r, s)| -> Tx {
            r.apply_batch(&records)?;
            s.apply_batch(&sessions)?;
            Ok(())
        })?;
        drop(_guard);
        self.flush()?;
        Ok(n)
    }

    /// Deletes every record of a session (erasure). Returns how many.
    pub fn delete_session_records(&self, session_id: &str) -> Result<u64> {
        let ids: Vec<RecordId> = self.session_record_ids(session_id).collect::<Result<_>>()?;
        self.delete_records(&ids)
    }

    /// Number of stored records.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// A secret of this data directory (32 random bytes, made on first
    /// use), for signing page tokens.
    pub fn page_token_secret(&self) -> Result<Vec<u8>> {
        let _guard = self.lock();
        if let Some(secret) = self.meta.get(SECRET_KEY)? {
            return Ok(secret.to_vec());
        }
        let secret = random_bytes();
        self.meta.insert(SECRET_KEY, secret.as_slice())?;
        self.flush()?;
        Ok(secret)
    }

    /// Builds the session index when records exist without it (a data
    /// directory written before the index existed).
    pub(crate) fn index_sessions(&self) -> Result<()> {
        if !self.sessions.is_empty() || self.records.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for record in self.records_oldest_first() {
            let record = record?;
            if !record.session_id.is_empty() {
                batch.insert(session_key(&record.session_id, record.id), &[]);
            }
        }
        self.sessions.apply_batch(batch)?;
        self.flush()
    }
}

/// 32 bytes from the operating system's random source, by way of the
/// standard library's randomly keyed hasher (no extra dependency for one
/// secret).
fn random_bytes() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    (0..4)
        .flat_map(|i: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            h.finish().to_le_bytes()
        })
        .collect()
}
