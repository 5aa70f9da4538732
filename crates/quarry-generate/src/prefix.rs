//! Prompt prefixes whose cache is kept between requests.
//!
//! Every Ask of one answer mode opens with the same system prompt and
//! worked example (a third of a grounded prompt), so the generation thread
//! keeps the cache of prefixes that recent prompts shared and starts a new
//! prompt that begins with one of them from a copy, reading only the rest.
//! A sequence's logits do not depend on how its prompt was sliced, so an
//! answer from a copied prefix is the answer read whole, bit for bit.
//!
//! Kept: up to [`ENTRIES`] prefixes of at least [`MIN_TOKENS`] tokens,
//! the least recently used one leaving first; each reserves its cache from
//! the [`KvBudget`](crate::kv_budget::KvBudget) like a sequence, and none
//! is kept when the budget has no room.

use crate::decoder::Sequence;
use crate::kv_budget::Reservation;

/// Prefixes kept.
pub const ENTRIES: usize = 4;

/// The shortest prefix worth keeping.
pub const MIN_TOKENS: usize = 32;

/// Recent prompts compared with each new one to find shared prefixes.
const RECENT: usize = 8;

struct Entry {
    tokens: Vec<u32>,
    sequence: Box<dyn Sequence>,
    used: u64,
    _kv: Reservation,
}

/// The kept prefixes and the prompts they are found in.
#[derive(Default)]
pub(crate) struct Prefixes {
    entries: Vec<Entry>,
    recent: Vec<Vec<u32>>,
    clock: u64,
}

/// Tokens `a` and `b` share at their start.
fn common(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Prefixes {
    /// The longest kept prefix of `prompt` that leaves at least one of its
    /// tokens to read (whose logits start the answer): its sequence and
    /// length.
    pub(crate) fn lookup(&mut self, prompt: &[u32]) -> Option<(&mut dyn Sequence, usize)> {
        self.clock += 1;
        let clock = self.clock;
        let best = self
            .entries
            .iter_mut()
            .filter(|e| e.tokens.len() < prompt.len() && prompt.starts_with(&e.tokens))
            .max_by_key(|e| e.tokens.len())?;
        best.used = clock;
        Some((best.sequence.as_mut(), best.tokens.len()))
    }

    /// How long a prefix of `prompt` (just read whole) recent prompts
    /// share with it, if it is worth keeping and not kept already; then
    /// remembers the prompt.
    pub(crate) fn worth_keeping(&mut self, prompt: &[u32]) -> Option<usize> {
        let shared = self
            .recent
            .iter()
            .map(|p| common(p, prompt))
            .max()
            .unwrap_or(0)
            // A prefix leaves at least one token of a prompt to read.
            .min(prompt.len().saturating_sub(1));
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        self.recent.push(prompt.to_vec());
        let kept = self
            .entries
            .iter()
            .any(|e| e.tokens.len() >= shared && prompt.starts_with(&e.tokens[..shared]));
        (shared >= MIN_TOKENS && !kept).then_some(shared)
    }

    /// Keeps `sequence`, the cache of `tokens`, in place of the least
    /// recently used prefix when all places are taken.
    pub(crate) fn keep(&mut self, tokens: Vec<u32>, sequence: Box<dyn Sequence>, kv: Reservation) {
        if self.entries.len() == ENTRIES {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i)
                .expect("full");
            self.entries.swap_remove(oldest);
        }
        self.clock += 1;
        self.entries.push(Entry {
            tokens,
            sequence,
            used: self.clock,
            _kv: kv,
        });
    }

    /// Gives up the least recently used prefix (to make room in the cache
    /// budget for a request); `false` when none is kept.
    pub(crate) fn evict(&mut self) -> bool {
        let Some(oldest) = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.used)
            .map(|(i, _)| i)
        else {
            return false;
        };
        self.entries.swap_remove(oldest);
        true
    }

    /// Prefixes kept.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_budget::KvBudget;

    struct Fake(usize);

    impl Sequence for Fake {
        fn len(&self) -> usize {
            self.0
        }

        fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
            self
        }
    }

    fn prompt(shared: usize, tail: u32) -> Vec<u32> {
        (0..shared as u32)
            .chain([1000 + tail, 2000 + tail])
            .collect()
    }

    #[test]
    fn a_shared_prefix_is_found_kept_and_reused() {
        let budget = KvBudget::new(1 << 20);
        let mut p = Prefixes::default();
        assert_eq!(
            p.worth_keeping(&prompt(40, 1)),
            None,
            "nothing to share yet"
        );
        let shared = p.worth_keeping(&prompt(40, 2)).unwrap();
        assert_eq!(shared, 40);
        let tokens = prompt(40, 2)[..shared].to_vec();
        p.keep(
            tokens,
            Box::new(Fake(shared)),
            budget.try_reserve(10).unwrap(),
        );
        assert_eq!(p.worth_keeping(&prompt(40, 3)), None, "kept already");
        let (seq, len) = p.lookup(&prompt(40, 4)).unwrap();
        assert_eq!((seq.len(), len), (40, 40));
        // Not a prefix of a prompt that differs early, nor of itself whole.
        assert!(p.lookup(&prompt(10, 5)).is_none());
        assert!(p.lookup(&(0..40).collect::<Vec<u32>>()).is_none());
        // Too short to keep.
        let mut q = Prefixes::default();
        q.worth_keeping(&prompt(20, 1));
        assert_eq!(q.worth_keeping(&prompt(20, 2)), None);
    }

    #[test]
    fn the_least_recently_used_prefix_leaves_and_frees_its_budget() {
        let budget = KvBudget::new(1 << 20);
        let mut p = Prefixes::default();
        for i in 0..ENTRIES as u32 {
            let tokens: Vec<u32> = (0..40).map(|t| t + 100 * i).collect();
            p.keep(tokens, Box::new(Fake(40)), budget.try_reserve(10).unwrap());
        }
        // Entry 0 is used, so entry 1 is the oldest.
        let probe: Vec<u32> = (0..41).collect();
        assert!(p.lookup(&probe).is_some());
        p.keep(
            (500..540).collect(),
            Box::new(Fake(40)),
            budget.try_reserve(10).unwrap(),
        );
        assert_eq!(p.len(), ENTRIES);
        assert_eq!(budget.used(), 10 * ENTRIES);
        assert!(p.lookup(&(100..141).collect::<Vec<u32>>()).is_none());
        assert!(p.lookup(&probe).is_some());
        while p.evict() {}
        assert_eq!((p.len(), budget.used()), (0, 0));
    }
}
