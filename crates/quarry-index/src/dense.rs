//! The dense retriever: an hnsw_rs graph over L2-normalised vectors (dot
//! product = cosine similarity), searched through a flat copy
//! ([`crate::flat`]) plus an exact pass over the points inserted since the
//! copy, with tombstones for deletes (hnsw_rs has none) and exact search
//! when a filter is selective.
//!
//! hnsw_rs's filter only drops candidates while it walks the graph, so a
//! filter that matches few chunks could return fewer than `k` hits even
//! when enough exist. When the allowed set is small (at most
//! [`EXACT_SEARCH_MAX`] chunks) the search is therefore exact over that
//! set, which is both complete and, at that size, fast.

use std::collections::{HashMap, HashSet};

use hnsw_rs::prelude::{DistDot, Hnsw};
use quarry_core::CollectionSettings;

#[cfg(test)]
use crate::distance::dot_portable;
use crate::distance::Metric;
use crate::flat::FlatGraph;
use crate::fusion::Ranked;

/// Allowed sets at most this large are searched exactly.
pub const EXACT_SEARCH_MAX: usize = 4096;
/// hnsw_rs needs a layer count up front; 16 is also what `file_dump`
/// requires.
const MAX_LAYERS: usize = 16;
/// Batches at least this large are inserted in parallel.
const PARALLEL_INSERT_MIN: usize = 64;

/// Points inserted since the flat copy was made that trigger a new copy:
/// at least this many, and at least 1/[`REFREEZE_FRACTION`] of the graph.
const REFREEZE_MIN: usize = 1024;
const REFREEZE_FRACTION: usize = 20;

/// One collection's dense index.
pub struct DenseIndex {
    /// Built by hnsw_rs (insertion and checkpoints)...
    hnsw: Hnsw<'static, f32, DistDot>,
    /// ...searched through a flat copy of it ([`FlatGraph`])...
    flat: Option<FlatGraph>,
    /// ...plus, exactly, the points inserted since the copy was made.
    recent: Vec<u64>,
    /// Live vectors by chunk id: exact search and rebuilds read them.
    vectors: HashMap<u64, Vec<f32>>,
    /// Chunk ids still in the graph but deleted.
    tombstones: HashSet<u64>,
    settings: CollectionSettings,
}

fn new_graph(settings: &CollectionSettings, capacity: usize) -> Hnsw<'static, f32, DistDot> {
    Hnsw::new(
        settings.hnsw_m as usize,
        capacity.max(1024),
        MAX_LAYERS,
        settings.hnsw_ef_construction as usize,
        DistDot {},
    )
}

#[cfg(test)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_portable(a, b)
}

impl DenseIndex {
    /// An empty index with the collection's HNSW settings.
    pub fn new(settings: CollectionSettings, capacity: usize) -> Self {
        Self {
            hnsw: new_graph(&settings, capacity),
            flat: None,
            recent: Vec::new(),
            vectors: HashMap::with_capacity(capacity),
            tombstones: HashSet::new(),
            settings,
        }
    }

    /// A new graph over `items` (parallel insertion).
    pub fn build(settings: CollectionSettings, items: Vec<(u64, Vec<f32>)>) -> Self {
        let mut index = Self::new(settings, items.len());
        index.insert(items);
        index.freeze();
        index
    }

    /// An index from a loaded graph: `vectors` are its live points.
    pub(crate) fn from_parts(
        hnsw: Hnsw<'static, f32, DistDot>,
        vectors: HashMap<u64, Vec<f32>>,
        tombstones: HashSet<u64>,
        settings: CollectionSettings,
    ) -> Self {
        let mut index = Self {
            hnsw,
            flat: None,
            recent: Vec::new(),
            vectors,
            tombstones,
            settings,
        };
        index.freeze();
        index
    }

    /// Makes a new flat copy of the graph for searching.
    fn freeze(&mut self) {
        self.flat = FlatGraph::freeze(&self.hnsw, Metric::Dot);
        self.recent.clear();
    }

    pub(crate) fn graph(&self) -> &Hnsw<'static, f32, DistDot> {
        &self.hnsw
    }

    /// The vectors' dimension (0 while empty).
    pub fn dimension(&self) -> usize {
        self.vectors.values().next().map_or(0, Vec::len)
    }

    /// Chunk ids deleted but still in the graph.
    pub fn tombstones(&self) -> impl Iterator<Item = u64> + '_ {
        self.tombstones.iter().copied()
    }

    /// Live chunk ids.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.vectors.keys().copied()
    }

    /// Whether a chunk is live.
    pub fn contains(&self, id: u64) -> bool {
        self.vectors.contains_key(&id)
    }

    /// A copy of the live vectors, to build a new graph from while this one
    /// keeps serving.
    pub fn snapshot(&self) -> Vec<(u64, Vec<f32>)> {
        self.vectors
            .iter()
            .map(|(id, v)| (*id, v.clone()))
            .collect()
    }

    /// Swaps in `fresh`, a graph built from an earlier [`Self::snapshot`],
    /// after bringing it up to date with what changed here since: chunks
    /// deleted since become its tombstones, chunks added since are inserted.
    pub fn replace_with(&mut self, mut fresh: DenseIndex) {
        let gone: Vec<u64> = fresh
            .vectors
            .keys()
            .filter(|id| !self.vectors.contains_key(id))
            .copied()
            .collect();
        fresh.remove(&gone);
        let added: Vec<(u64, Vec<f32>)> = self
            .vectors
            .iter()
            .filter(|(id, _)| !fresh.vectors.contains_key(id) && !fresh.tombstones.contains(id))
            .map(|(id, v)| (*id, v.clone()))
            .collect();
        fresh.insert(added);
        fresh.settings = self.settings;
        fresh.freeze();
        *self = fresh;
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// Whether no vector is live.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Deleted vectors still in the graph, as a share of the graph.
    pub fn tombstone_share(&self) -> f64 {
        let total = self.vectors.len() + self.tombstones.len();
        if total == 0 {
            0.0
        } else {
            self.tombstones.len() as f64 / total as f64
        }
    }

    /// Adds vectors. Chunk ids are never reused, so an id already in the
    /// graph (live or deleted) is skipped: replaying an operation twice
    /// changes nothing.
    pub fn insert(&mut self, items: Vec<(u64, Vec<f32>)>) {
        let mut items = items;
        items.retain(|(id, _)| !self.vectors.contains_key(id) && !self.tombstones.contains(id));
        if items.len() >= PARALLEL_INSERT_MIN {
            let refs: Vec<(&Vec<f32>, usize)> =
                items.iter().map(|(id, v)| (v, *id as usize)).collect();
            self.hnsw.parallel_insert(&refs);
        } else {
            for (id, v) in &items {
                self.hnsw.insert((v.as_slice(), *id as usize));
            }
        }
        self.recent.extend(items.iter().map(|(id, _)| *id));
        self.vectors.extend(items);
        let graph = self.vectors.len() + self.tombstones.len();
        if self.recent.len() >= REFREEZE_MIN.max(graph / REFREEZE_FRACTION) {
            self.freeze();
        }
    }

    /// Marks chunks deleted.
    pub fn remove(&mut self, ids: &[u64]) {
        for id in ids {
            if self.vectors.remove(id).is_some() {
                self.tombstones.insert(*id);
            }
        }
    }

    /// Rebuilds the graph from the live vectors in place, dropping
    /// tombstones (blocking; servers use [`Self::snapshot`] and
    /// [`Self::replace_with`] instead).
    pub fn rebuild(&mut self) {
        let items: Vec<(u64, Vec<f32>)> = self.vectors.drain().collect();
        *self = Self::build(self.settings, items);
    }

    /// The `k` nearest live chunks to `query`, restricted to `allowed`
    /// when given; scores are cosine similarities, best first.
    pub fn search(&self, query: &[f32], k: usize, allowed: Option<&HashSet<u64>>) -> Vec<Ranked> {
        if k == 0 || self.vectors.is_empty() {
            return Vec::new();
        }
        if let Some(allowed) = allowed {
            if allowed.len() <= EXACT_SEARCH_MAX {
                return self.exact(query, k, allowed.iter().copied());
            }
        }
        let ef = (self.settings.hnsw_ef_search as usize).max(k);
        let keep =
            |id: u64| !self.tombstones.contains(&id) && allowed.is_none_or(|a| a.contains(&id));
        let mut hits: Vec<Ranked> = self
            .flat
            .as_ref()
            .map(|flat| flat.search(query, k, ef, keep))
            .unwrap_or_default()
            .into_iter()
            .map(|(id, distance)| Ranked {
                id,
                score: 1.0 - distance,
            })
            .collect();
        if !self.recent.is_empty() {
            // Points newer than the flat copy, exactly; none is in it.
            hits.extend(self.exact(query, k, self.recent.iter().copied().filter(|id| keep(*id))));
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
            hits.truncate(k);
        }
        hits
    }

    fn exact(&self, query: &[f32], k: usize, ids: impl Iterator<Item = u64>) -> Vec<Ranked> {
        let distance = Metric::Dot.kernel();
        let mut scored: Vec<Ranked> = ids
            .filter_map(|id| {
                self.vectors.get(&id).map(|v| Ranked {
                    id,
                    score: 1.0 - distance(query, v),
                })
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
    fn points_are_found_before_and_after_the_flat_copy_is_remade() {
        let items = vectors(2600, 32, 5);
        let mut idx = DenseIndex::new(CollectionSettings::default(), 0);
        for batch in items.chunks(100) {
            idx.insert(batch.to_vec());
            let (id, v) = batch.last().unwrap();
            assert_eq!(idx.search(v, 1, None)[0].id, *id);
        }
        // Remade once 1024 points are new (after 1100 and 2200 points); the
        // rest are searched exactly.
        assert_eq!(idx.flat.as_ref().map(FlatGraph::len), Some(2200));
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
        assert_eq!(idx.graph().get_nb_point(), 100);
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
                dot(&items[5].1, &idx.vectors[a]).total_cmp(&dot(&items[5].1, &idx.vectors[b]))
            })
            .unwrap();
        assert_eq!(hits[0].id, *best);
    }
}
