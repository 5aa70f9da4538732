//! Identifiers the backend derives instead of storing counters, so that
//! every node computes the same ones and writes can be repeated:
//!
//! - a chunk's point id from its document id and position (re-ingesting
//!   a document overwrites its points; its replacement reuses them);
//! - a keyword term's sparse dimension from the term;
//! - a record id from the clock and randomness: growing with time, so
//!   that "newest first" is an order by id as on the embedded backend, and
//!   below 2^53, because Qdrant compares payload numbers in ranges as
//!   doubles (an insert checks that no other node took the same id).

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// The point id of chunk `index` of document `doc`.
pub fn chunk_point(doc: &str, index: u32) -> u64 {
    let mut h = Sha256::new();
    h.update(doc.as_bytes());
    h.update([0]);
    h.update(index.to_be_bytes());
    let d = h.finalize();
    // Below 2^63: Qdrant's payload integers (and JSON readers) are signed.
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes")) >> 1
}

/// The sparse-vector dimension of a keyword term.
pub fn term_dimension(term: &str) -> u32 {
    let d = Sha256::digest(term.as_bytes());
    u32::from_be_bytes(d[..4].try_into().expect("4 bytes"))
}

/// Bits of randomness below the millisecond clock in a record id.
const RANDOM_BITS: u32 = 12;

/// The clock's origin for record ids: 2024-01-01T00:00:00Z. 41 bits of
/// milliseconds from it last until 2093; with the 12 random bits, ids stay
/// below 2^53 (exact as doubles).
const EPOCH_MS: u64 = 1_704_067_200_000;

/// Hands out record ids: milliseconds since [`EPOCH_MS`] in the high bits,
/// random low bits, and never less than the last id this process gave.
#[derive(Debug, Default)]
pub struct RecordIds {
    last: AtomicU64,
}

impl RecordIds {
    /// The next id.
    pub fn next(&self) -> u64 {
        let ms = (quarry_core::now_ms().max(0) as u64).saturating_sub(EPOCH_MS);
        let mut random = [0u8; 4];
        // A failing OS random source leaves 0: ids stay unique within this
        // process through `last`.
        let _ = getrandom::getrandom(&mut random);
        let low = u32::from_be_bytes(random) as u64 & ((1 << RANDOM_BITS) - 1);
        let candidate = (ms << RANDOM_BITS) | low;
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let id = candidate.max(prev + 1);
            match self
                .last
                .compare_exchange(prev, id, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return id,
                Err(now) => prev = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_points_are_stable_and_distinct() {
        assert_eq!(chunk_point("a", 0), chunk_point("a", 0));
        assert_ne!(chunk_point("a", 0), chunk_point("a", 1));
        // The separator keeps ("a", 1xx) apart from ("a\x00", ..).
        assert_ne!(chunk_point("ab", 0), chunk_point("a", 0));
        assert!(chunk_point("x", 7) < 1 << 63);
    }

    #[test]
    fn record_ids_grow_and_fit_a_signed_integer() {
        let ids = RecordIds::default();
        let mut prev = 0;
        for _ in 0..10_000 {
            let id = ids.next();
            assert!(id > prev && id < 1 << 53, "{id}");
            assert_eq!(id as f64 as u64, id, "exact as a double");
            prev = id;
        }
    }
}
