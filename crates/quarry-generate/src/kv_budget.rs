//! The memory budget of the sequences in flight: each one reserves the
//! key/value cache it can grow to (its prompt plus its `max_new_tokens`,
//! never the whole context window) before it joins the batch, and gives
//! it back when it leaves. A reservation guarantees that a sequence never
//! runs out of cache half-way through its answer; the cache itself grows
//! only as tokens arrive.
//!
//! The model thread is the only one that reserves, so the ledger is a
//! plain counter shared with the reservations (which may be dropped on
//! that thread only, as slots are).

use std::cell::Cell;
use std::rc::Rc;

/// Bytes a sequence may hold, shared by its reservations.
#[derive(Debug)]
pub struct KvBudget {
    capacity: usize,
    used: Rc<Cell<usize>>,
}

/// Bytes reserved for one sequence; released on drop.
#[derive(Debug)]
pub struct Reservation {
    bytes: usize,
    used: Rc<Cell<usize>>,
}

impl KvBudget {
    /// A budget of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            used: Rc::new(Cell::new(0)),
        }
    }

    /// Bytes the budget holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// Reserves `bytes`, or `None` when they do not fit beside what is
    /// reserved (a request larger than the whole budget never fits; the
    /// queue refuses those before they wait).
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let used = self.used.get();
        let after = used.checked_add(bytes)?;
        if after > self.capacity {
            return None;
        }
        self.used.set(after);
        Some(Reservation {
            bytes,
            used: Rc::clone(&self.used),
        })
    }
}

impl Reservation {
    /// Bytes it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.used.set(self.used.get() - self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Reserve(usize),
        /// Releases the live reservation at this index (mod their count).
        Release(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..400).prop_map(Op::Reserve),
            (0usize..64).prop_map(Op::Release),
        ]
    }

    proptest! {
        /// Whatever the order of reservations and releases: the budget is
        /// never exceeded, what is used is exactly what the live
        /// reservations hold, a reservation is refused only when it would
        /// not fit, and releasing everything gives the whole budget back.
        #[test]
        fn the_ledger_matches_the_live_reservations(
            capacity in 0usize..1000,
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let budget = KvBudget::new(capacity);
            let mut live: Vec<Reservation> = Vec::new();
            for op in ops {
                match op {
                    Op::Reserve(bytes) => {
                        let before = budget.used();
                        match budget.try_reserve(bytes) {
                            Some(r) => {
                                prop_assert!(before + bytes <= capacity);
                                prop_assert_eq!(r.bytes(), bytes);
                                live.push(r);
                            }
                            None => {
                                prop_assert!(before + bytes > capacity);
                                prop_assert_eq!(budget.used(), before);
                            }
                        }
                    }
                    Op::Release(i) if !live.is_empty() => {
                        let i = i % live.len();
                        drop(live.swap_remove(i));
                    }
                    Op::Release(_) => {}
                }
                prop_assert!(budget.used() <= budget.capacity());
                prop_assert_eq!(budget.used(), live.iter().map(Reservation::bytes).sum::<usize>());
            }
            live.clear();
            prop_assert_eq!(budget.used(), 0);
            prop_assert!(budget.try_reserve(capacity).is_some());
        }
    }

    #[test]
    fn a_full_budget_refuses_until_a_reservation_leaves() {
        let budget = KvBudget::new(100);
        let a = budget.try_reserve(60).unwrap();
        assert!(budget.try_reserve(50).is_none());
        let b = budget.try_reserve(40).unwrap();
        assert!(budget.try_reserve(1).is_none());
        drop(a);
        assert!(budget.try_reserve(50).is_some());
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(budget.try_reserve(usize::MAX).is_none());
    }
}
