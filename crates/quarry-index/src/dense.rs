//! The dense retriever: Quarry's HNSW graph ([`crate::hnsw`]) over
//! L2-normalised vectors (dot product = cosine similarity), with tombstones
//! for deletes, an exact pass over the points added since the graph was
//! last repaired, and exact search when a filter is selective.
//!
//! Each vector is held once, in the graph; a live chunk id maps to its
//! slot. A filter only drops candidates while the search walks the graph,
//! so a filter that matches few chunks could return fewer than `k` hits
//! even when enough exist: when the allowed set is small (at most
//! [`EXACT_SEARCH_MAX`] chunks) the search is exact over that set, which is
//! both complete and, at that size, fast.
//!
//! A collection with `quantization: int8` gets a quantised graph: searched
//! with int8 codes, its candidates rescored with the floats (exact passes
//! use the floats).

use std::collections::HashSet;

use quarry_core::{CollectionSettings, Quantization};

#[cfg(test)]
use crate::distance::dot_portable;
use crate::distance::Metric;
use crate::fusion::Ranked;
use crate::hnsw::Graph;

/// Allowed sets at most this large are searched exactly.
pub const EXACT_SEARCH_MAX: usize = 4096;

/// Points added since the last [`Graph::repair`] that trigger the next one
/// (a walk over the whole graph: about 0.1 s a million points). Until then
/// they are also searched exactly, so that a new point is found even if
/// pruning has cut it off.
const REPAIR_AFTER: usize = 1024;

/// Threads that link a large batch of new points.
fn build_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One collection's dense index.
pub struct DenseIndex {
    graph: Graph,
    /// Live chunk ids and their slots in the graph (foldhash: a restart
    /// fills this with every id, and every filtered search looks ids up).
    slots: foldhash::HashMap<u64, u32>,
    /// Chunk ids still in the graph but deleted.
    tombstones: HashSet<u64>,
    /// Slots added since the last repair.
    recent: Vec<u32>,
    /// Points the first insert reserves room for (a build's size).
    capacity: usize,
    settings: CollectionSettings,
}

#[cfg(test)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_portable(a, b)
}

impl DenseIndex {
    /// An empty index with the collection's HNSW settings.
    pub fn new(settings: CollectionSettings, capacity: usize) -> Self {
        let graph = Graph::new(
            Metric::Dot,
            settings.hnsw_m as usize,
            settings.hnsw_ef_construction as usize,
        );
        let graph = match settings.quantization {
            Quantization::None => graph,
            Quantization::Int8 => graph.quantized(),
        };
        Self {
            graph,
            slots: foldhash::HashMapExt::with_capacity(capacity),
            tombstones: HashSet::new(),
            recent: Vec::new(),
            capacity,
            settings,
        }
    }

    /// A new graph over `items` (parallel insertion).
    pub fn build(settings: CollectionSettings, items: Vec<(u64, Vec<f32>)>) -> Self {
        let mut index = Self::new(settings, items.len());
        index.insert(items);
        index.finish();
        index
    }

    /// Ends a build made of several inserts: links back the points that
    /// pruning cut off, so that recent points need no exact pass.
    pub fn finish(&mut self) {
        self.graph.repair();
        self.recent.clear();
    }

    /// An index from a loaded graph: `tombstones` are the deleted ids in
    /// it, `recent` the slots added since its last repair.
    pub(crate) fn from_parts(
        graph: Graph,
        tombstones: HashSet<u64>,
        recent: Vec<u32>,
        settings: CollectionSettings,
    ) -> Self {
        let slots = (0..graph.len() as u32)
            .map(|s| (graph.id(s), s))
            .filter(|(id, _)| !tombstones.contains(id))
            .collect();
        let recent = recent
            .into_iter()
            .filter(|&s| (s as usize) < graph.len())
            .collect();
        Self {
            graph,
            slots,
            tombstones,
            recent,
            capacity: 0,
            settings,
        }
    }

    pub(crate) fn graph(&self) -> &Graph {
        &self.graph
    }

    pub(crate) fn graph_mut(&mut self) -> &mut Graph {
        &mut self.graph
    }

    /// Slots added since the last repair.
    pub(crate) fn recent(&self) -> &[u32] {
        &self.recent
    }

    /// The vectors' dimension (0 while empty).
    pub fn dimension(&self) -> usize {
        self.graph.shape().dim
    }

    /// Chunk ids deleted but still in the graph.
    pub fn tombstones(&self) -> impl Iterator<Item = u64> + '_ {
        self.tombstones.iter().copied()
    }

    /// Live chunk ids.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.keys().copied()
    }

    /// Whether a chunk is live.
    pub fn contains(&self, id: u64) -> bool {
        self.slots.contains_key(&id)
    }

    /// A live chunk's vector.
    pub fn vector(&self, id: u64) -> Option<&[f32]> {
        self.slots.get(&id).map(|&s| self.graph.vector(s))
    }

    /// A copy of the live vectors, to build a new graph from while this one
    /// keeps serving.
    pub fn snapshot(&self) -> Vec<(u64, Vec<f32>)> {
        let mut live: Vec<(u64, u32)> = self.slots.iter().map(|(&id, &s)| (id, s)).collect();
        // In slot order: the order they were first inserted in.
        live.sort_unstable_by_key(|&(_, s)| s);
        live.into_iter()
            .map(|(id, s)| (id, self.graph.vector(s).to_vec()))
            .collect()
    }

    /// Swaps in `fresh`, a graph built from an earlier [`Self::snapshot`],
    /// after bringing it up to date with what changed here since: chunks
    /// deleted since become its tombstones, chunks added since are inserted.
    pub fn replace_with(&mut self, mut fresh: DenseIndex) {
        let gone: Vec<u64> = fresh
            .slots
            .keys()
            .filter(|id| !self.slots.contains_key(id))
            .copied()
            .collect();
        fresh.remove(&gone);
        let mut added: Vec<(u64, u32)> = self
            .slots
            .iter()
            .filter(|(id, _)| !fresh.slots.contains_key(id) && !fresh.tombstones.contains(id))
            .map(|(&id, &s)| (id, s))
            .collect();
        added.sort_unstable_by_key(|&(_, s)| s);
        let added = added
            .into_iter()
            .map(|(id, s)| (id, self.graph.vector(s).to_vec()))
            .collect();
        fresh.insert(added);
        fresh.settings = self.settings;
        *self = fresh;
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no vector is live.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Deleted vectors still in the graph, as a share of the graph.
    pub fn tombstone_share(&self) -> f64 {
        let total = self.graph.len();
        if total == 0 {
            0.0
        } else {
            self.tombstones.len() as f64 / total as f64
        }
    }

    /// Adds vectors. Chunk ids are never reused, so an id already in the
    /// graph (live or deleted) is skipped: replaying an operation twice
    /// changes nothing. A vector whose dimension differs from the graph's
    /// is skipped with a warning (the engine refuses them before).
    pub fn insert(&mut self, items: Vec<(u64, Vec<f32>)>) {
        let dim = self.dimension();
        let mut seen = HashSet::new();
        let items: Vec<(u64, &[f32])> = items
            .iter()
            .filter(|(id, v)| {
                if dim != 0 && v.len() != dim || v.is_empty() {
                    tracing::warn!(id, dimension = v.len(), expected = dim, "vector skipped");
                    return false;
                }
                !self.slots.contains_key(id) && !self.tombstones.contains(id) && seen.insert(*id)
            })
            .map(|(id, v)| (*id, v.as_slice()))
            .collect();
        let items: Vec<(u64, &[f32])> = match items.first() {
            Some((_, v)) if dim == 0 => {
                let d = v.len();
                items.into_iter().filter(|(_, v)| v.len() == d).collect()
            }
            _ => items,
        };
        if items.is_empty() {
            return;
        }
        if self.graph.is_empty() && self.capacity > items.len() {
            self.graph.reserve_points(self.capacity, items[0].1.len());
        }
        self.capacity = 0;
        let first = self.graph.insert(&items, build_threads());
        for (i, (id, _)) in items.iter().enumerate() {
            self.slots.insert(*id, first + i as u32);
            self.recent.push(first + i as u32);
        }
        if self.recent.len() >= REPAIR_AFTER {
            self.finish();
        }
    }

    /// Marks chunks deleted.
    pub fn remove(&mut self, ids: &[u64]) {
        for id in ids {
            if self.slots.remove(id).is_some() {
                self.tombstones.insert(*id);
            }
        }
    }

    /// Rebuilds the graph from the live vectors in place, dropping
    /// tombstones (blocking; servers use [`Self::snapshot`] and
    /// [`Self::replace_with`] instead).
    pub fn rebuild(&mut self) {
        let items = self.snapshot();
        *self = Self::build(self.settings, items);
    }

    /// The `k` nearest live chunks to `query`, restricted to `allowed`
    /// when given; scores are cosine similarities, best first.
    pub fn search(&self, query: &[f32], k: usize, allowed: Option<&HashSet<u64>>) -> Vec<Ranked> {
        if k == 0 || self.slots.is_empty() || query.len() != self.dimension() {
            return Vec::new();
        }
        if let Some(allowed) = allowed {
            if allowed.len() <= EXACT_SEARCH_MAX {
                return self.exact(
                    query,
                    k,
                    allowed.iter().filter_map(|id| self.slots.get(id).copied()),
                );
            }
        }
        let ef = (self.settings.hnsw_ef_search as usize).max(k);
        let keep = |slot: u32| {
            let id = self.graph.id(slot);
            (self.tombstones.is_empty() || !self.tombstones.contains(&id))
                && allowed.is_none_or(|a| a.contains(&id))
        };
        let mut hits: Vec<Ranked> = self
            .graph
            .search(query, k, ef, keep)
            .into_iter()
            .map(|(slot, distance)| Ranked {
                id: self.graph.id(slot),
                score: 1.0 - distance,
            })
            .collect();
        if !self.recent.is_empty() {
            // Points newer than the last repair, exactly, in case pruning
            // cut one off.
            let found: HashSet<u64> = hits.iter().map(|h| h.id).collect();
            let extra = self.exact(
                query,
                k,
                self.recent
                    .iter()
                    .copied()
                    .filter(|&s| keep(s) && !found.contains(&self.graph.id(s))),
            );
            hits.extend(extra);
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
            hits.truncate(k);
        }
        hits
    }

    fn exact(&self, query: &[f32], k: usize, slots: impl Iterator<Item = u32>) -> Vec<Ranked> {
        let distance = Metric::Dot.kernel();
        let mut scored: Vec<Ranked> = slots
            .map(|s| Ranked {
                id: self.graph.id(s),
                score: 1.0 - distance(query, self.graph.vector(s)),
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        scored.truncate(k);
        scored
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random unit vectors.
    pub(crate) fn vectors(n: usize, dim: usize, seed: u64) -> Vec<(u64, Vec<f32>)> {
        let mut state = seed;
        (0..n as u64)
            .map(|id| {
                let mut v: Vec<f32> = (0..dim)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= n);
                (id + 1, v)
            })
            .collect()
    }

    fn index(n: usize) -> (DenseIndex, Vec<(u64, Vec<f32>)>) {
        let items = vectors(n, 32, 7);
        let mut idx = DenseIndex::new(CollectionSettings::default(), n);
        idx.insert(items.clone());
        (idx, items)
    }

    #[test]
    fn finds_each_vector_as_its_own_nearest() {
        let (idx, items) = index(500);
        for (id, v) in items.iter().step_by(25) {
            let hits = idx.search(v, 5, None);
            assert_eq!(hits[0].id, *id);
            assert!((hits[0].score - 1.0).abs() < 1e-4);
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        }
    }

    #[test]
    fn deleted_vectors_never_come_back_and_rebuild_keeps_the_rest() {
        let (mut idx, items) = index(400);
        let gone: Vec<u64> = items.iter().take(150).map(|(id, _)| *id).collect();
        idx.remove(&gone);
        assert!((idx.tombstone_share() - 150.0 / 400.0).abs() < 1e-9);
        for (_, v) in items.iter().take(20) {
            for h in idx.search(v, 10, None) {
                assert!(!gone.contains(&h.id), "tombstoned {} returned", h.id);
            }
        }
        idx.rebuild();
        assert_eq!(idx.tombstone_share(), 0.0);
        assert_eq!(idx.len(), 250);
        let (id, v) = &items[300];
        assert_eq!(idx.search(v, 1, None)[0].id, *id);
    }

    #[test]
    fn a_graph_rebuilt_aside_catches_up_with_changes_made_meanwhile() {
        let (mut idx, items) = index(600);
        let first: Vec<u64> = items.iter().take(200).map(|(id, _)| *id).collect();
        idx.remove(&first);
        let fresh = DenseIndex::build(idx.settings, idx.snapshot());
        // While the new graph was being built, the old one kept changing.
        idx.remove(&[300, 301]);
        let more = vectors(10, 32, 99)
            .into_iter()
            .map(|(id, v)| (id + 10_000, v))
            .collect::<Vec<_>>();
        idx.insert(more.clone());
        idx.replace_with(fresh);
        assert_eq!(idx.len(), 600 - 200 - 2 + 10);
        assert_eq!(idx.tombstones().collect::<Vec<_>>().len(), 2);
        assert_eq!(idx.search(&more[3].1, 1, None)[0].id, more[3].0);
        for h in idx.search(&items[299].1, 20, None) {
            assert!(h.id != 300 && h.id != 301 && h.id > 200);
        }
    }

    #[test]
    fn points_are_found_before_and_after_the_graph_is_repaired() {
        let items = vectors(2600, 32, 5);
        let mut idx = DenseIndex::new(CollectionSettings::default(), 0);
        for batch in items.chunks(100) {
            idx.insert(batch.to_vec());
            let (id, v) = batch.last().unwrap();
            assert_eq!(idx.search(v, 1, None)[0].id, *id);
        }
        // Repaired once 1024 points are new (after 1100 and 2200 points);
        // the rest are also searched exactly.
        assert_eq!(idx.recent.len(), 400);
        let gone: Vec<u64> = items[2000..2100].iter().map(|(id, _)| *id).collect();
        idx.remove(&gone);
        for (id, v) in items.iter().step_by(50) {
            let hits = idx.search(v, 3, None);
            if gone.contains(id) {
                assert!(hits.iter().all(|h| h.id != *id));
            } else {
                assert_eq!(hits[0].id, *id);
            }
        }
    }

    #[test]
    fn an_empty_build_searches_empty() {
        let idx = DenseIndex::build(CollectionSettings::default(), Vec::new());
        assert!(idx.search(&[1.0; 32], 5, None).is_empty());
    }

    #[test]
    fn inserting_an_id_twice_keeps_one_point() {
        let (mut idx, items) = index(100);
        idx.insert(items[..10].to_vec());
        idx.remove(&[1]);
        idx.insert(items[..1].to_vec());
        assert_eq!(idx.len(), 99);
        assert_eq!(idx.graph().len(), 100);
        // A vector of another dimension is skipped, not a panic.
        idx.insert(vec![(5000, vec![0.5; 7])]);
        assert!(!idx.contains(5000));
        assert!(idx.search(&[0.5; 7], 3, None).is_empty());
    }

    #[test]
    fn a_filter_matching_one_percent_still_returns_k_hits() {
        let (idx, items) = index(2000);
        let allowed: HashSet<u64> = items
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| id % 100 == 0)
            .collect();
        assert_eq!(allowed.len(), 20);
        let hits = idx.search(&items[5].1, 10, Some(&allowed));
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| allowed.contains(&h.id)));
        // Exact over the allowed set: the best allowed vector is first.
        let best = allowed
            .iter()
            .max_by(|a, b| {
                dot(&items[5].1, idx.vector(**a).unwrap())
                    .total_cmp(&dot(&items[5].1, idx.vector(**b).unwrap()))
            })
            .unwrap();
        assert_eq!(hits[0].id, *best);
    }
}
