//! Prompt/response records, keyed by a growing id so that iteration order is
//! creation order (newest first when reversed).

use quarry_core::{Record, RecordId};

use crate::{decode, encode, Result, Store, StoreError};

impl Store {
    /// Assigns the next record id, stores the record and flushes. The id in
    /// `record` is overwritten; the stored record is returned.
    pub fn insert_record(&self, mut record: Record) -> Result<Record> {
        // generate_id is monotonic across restarts (sled reserves ranges
        // durably), so ids sort by creation.
        record.id = RecordId(self.db.generate_id()?);
        self.records
            .insert(record.id.0.to_be_bytes(), encode(&record))?;
        self.flush()?;
        Ok(record)
    }

    /// Reads one record.
    pub fn record(&self, id: RecordId) -> Result<Record> {
        match self.records.get(id.0.to_be_bytes())? {
            Some(raw) => decode("record", &raw),
            None => Err(StoreError::RecordNotFound(id.to_string())),
        }
    }

    /// Changes a record in place (rating, comment) and flushes.
    pub fn update_record(&self, id: RecordId, change: impl Fn(&mut Record)) -> Result<Record> {
        let _guard = self.lock();
        let mut record = self.record(id)?;
        change(&mut record);
        record.id = id;
        self.records.insert(id.0.to_be_bytes(), encode(&record))?;
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
        iter.rev().map(|item| decode("record", &item?.1))
    }

    /// Records oldest first.
    pub fn records_oldest_first(&self) -> impl Iterator<Item = Result<Record>> + '_ {
        self.records.iter().map(|item| decode("record", &item?.1))
    }

    /// Deletes records by id; unknown ids are skipped. Returns how many were
    /// deleted.
    pub fn delete_records(&self, ids: &[RecordId]) -> Result<u64> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for id in ids {
            if self.records.contains_key(id.0.to_be_bytes())? {
                batch.remove(&id.0.to_be_bytes());
                n += 1;
            }
        }
        self.records.apply_batch(batch)?;
        self.flush()?;
        Ok(n)
    }

    /// Deletes every record of a session (erasure). Returns how many.
    pub fn delete_session_records(&self, session_id: &str) -> Result<u64> {
        let mut ids = Vec::new();
        for record in self.records_oldest_first() {
            let record = record?;
            if record.session_id == session_id {
                ids.push(record.id);
            }
        }
        self.delete_records(&ids)
    }

    /// Number of stored records.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }
}
