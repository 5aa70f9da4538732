//! A frozen, flat copy of an hnsw_rs graph, for searching.
//!
//! hnsw_rs builds and persists the graph; its own search walks `Arc`'d
//! points behind locks, hashes every visited id into a `HashMap` and
//! allocates a heap entry per candidate, which measured here at less than
//! half of hnswlib's queries per second on the same graph parameters. This
//! copy holds the vectors in one contiguous array, layer 0's links in CSR
//! form and the few upper-layer points in small maps, and searches with
//! plain heaps and a generation-stamped visited array taken from a pool:
//! the same algorithm (greedy descent, then a beam of width ef on layer 0)
//! without the overheads, prefetching each neighbour's vector as hnswlib
//! does. Distances come from [`crate::distance`].
//!
//! The copy is immutable: [`crate::DenseIndex`] re-freezes it after enough
//! inserts and searches the few points added since exactly.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use hnsw_rs::prelude::{Distance, Hnsw};

use crate::distance::{Kernel, Metric};

/// A distance with a total order, for the heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Dist(f32);

impl Eq for Dist {}

impl PartialOrd for Dist {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Dist {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Visited marks: `marks[i] == stamp` means visited in the current search.
struct Visited {
    marks: Vec<u32>,
    stamp: u32,
}

impl Visited {
    fn new(n: usize) -> Self {
        Self {
            marks: vec![0; n],
            stamp: 0,
        }
    }

    /// Starts a new search (clearing only when the stamp wraps).
    fn reset(&mut self) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.fill(0);
            self.stamp = 1;
        }
    }

    /// Marks `i`; returns whether it was already marked.
    fn check_and_mark(&mut self, i: u32) -> bool {
        let m = &mut self.marks[i as usize];
        let seen = *m == self.stamp;
        *m = self.stamp;
        seen
    }
}

/// The frozen graph.
pub struct FlatGraph {
    dim: usize,
    /// Row `i` is point `i`'s vector.
    data: Vec<f32>,
    /// Point `i`'s id (the chunk id).
    ids: Vec<u64>,
    /// Layer 0 links of point `i`: `links[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    links: Vec<u32>,
    /// Links of layers 1 and up: `upper[l - 1][point]`.
    upper: Vec<HashMap<u32, Vec<u32>>>,
    entry: u32,
    distance: Kernel,
    pool: Mutex<Vec<Visited>>,
}

/// Asks the CPU to start loading a vector that is about to be read.
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl FlatGraph {
    /// Copies `hnsw`'s points and links, to be searched with `metric`
    /// (the one the graph was built with); `None` when it is empty.
    pub fn freeze<D: Distance<f32> + Send + Sync>(
        hnsw: &Hnsw<'_, f32, D>,
        metric: Metric,
    ) -> Option<Self> {
        // hnsw_rs's point iterator panics on a graph without an entry point.
        if hnsw.get_nb_point() == 0 {
            return None;
        }
        let points: Vec<_> = hnsw.get_point_indexation().into_iter().collect();
        let first = points.first()?;
        let dim = first.get_v().len();
        let index: HashMap<usize, u32> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (p.get_origin_id(), i as u32))
            .collect();
        let top = hnsw.get_max_level_observed() as usize;
        let mut data = Vec::with_capacity(points.len() * dim);
        let mut ids = Vec::with_capacity(points.len());
        let mut layer0: Vec<Vec<u32>> = Vec::with_capacity(points.len());
        let mut upper: Vec<HashMap<u32, Vec<u32>>> = vec![HashMap::new(); top];
        let mut entry = 0;
        for (i, p) in points.iter().enumerate() {
            data.extend_from_slice(p.get_v());
            ids.push(p.get_origin_id() as u64);
            let level = p.get_point_id().0 as usize;
            if level == top {
                entry = i as u32;
            }
            let mut own = Vec::new();
            for (layer, neighbours) in p.get_neighborhood_id().iter().enumerate() {
                let targets = neighbours
                    .iter()
                    .filter_map(|n| index.get(&n.d_id).copied());
                if layer == 0 {
                    own.extend(targets);
                } else if layer <= top && !neighbours.is_empty() {
                    upper[layer - 1].insert(i as u32, targets.collect());
                }
            }
            layer0.push(own);
        }
        link_unreachable(&mut layer0, entry);
        let mut offsets = Vec::with_capacity(layer0.len() + 1);
        let mut links = Vec::with_capacity(layer0.iter().map(Vec::len).sum());
        offsets.push(0);
        for own in layer0 {
            links.extend(own);
            offsets.push(links.len() as u32);
        }
        Some(Self {
            dim,
            data,
            ids,
            offsets,
            links,
            upper,
            entry,
            distance: metric.kernel(),
            pool: Mutex::new(Vec::new()),
        })
    }
    /// Points in the copy.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the copy is empty (never: empty graphs are not frozen).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn vector(&self, i: u32) -> &[f32] {
        let start = i as usize * self.dim;
        &self.data[start..start + self.dim]
    }

    fn distance(&self, q: &[f32], i: u32) -> f32 {
        (self.distance)(q, self.vector(i))
    }

    /// The `k` nearest points whose id `keep` accepts, as (id, distance),
    /// nearest first. The beam is `ef` wide (at least `k`); points that
    /// `keep` rejects are walked through but never returned.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        keep: impl Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        if k == 0 || self.ids.is_empty() {
            return Vec::new();
        }
        let ef = ef.max(k);
        // Greedy descent through the upper layers.
        let mut ep = self.entry;
        let mut ep_dist = self.distance(q, ep);
        for layer in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                for &n in layer.get(&ep).map_or(&[][..], Vec::as_slice) {
                    let d = self.distance(q, n);
                    if d < ep_dist {
                        ep = n;
                        ep_dist = d;
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }

        let mut visited = self
            .pool
            .lock()
            .map(|mut p| p.pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| Visited::new(self.ids.len()));
        visited.reset();
        // Candidates to expand, nearest first; results, farthest first.
        let mut candidates = BinaryHeap::with_capacity(ef * 4);
        let mut results: BinaryHeap<(Dist, u32)> = BinaryHeap::with_capacity(ef + 1);
        visited.check_and_mark(ep);
        candidates.push(Reverse((Dist(ep_dist), ep)));
        if keep(self.ids[ep as usize]) {
            results.push((Dist(ep_dist), ep));
        }
        while let Some(Reverse((Dist(d), c))) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|(w, _)| d > w.0) {
                break;
            }
            let (start, end) = (
                self.offsets[c as usize] as usize,
                self.offsets[c as usize + 1] as usize,
            );
            let links = &self.links[start..end];
            if let Some(&first) = links.first() {
                prefetch(self.vector(first).as_ptr());
            }
            for (j, &n) in links.iter().enumerate() {
                if let Some(&next) = links.get(j + 1) {
                    prefetch(self.vector(next).as_ptr());
                }
                if visited.check_and_mark(n) {
                    continue;
                }
                let dn = self.distance(q, n);
                let full = results.len() >= ef;
                if !full || results.peek().is_some_and(|(w, _)| dn < w.0) {
                    candidates.push(Reverse((Dist(dn), n)));
                    if keep(self.ids[n as usize]) {
                        results.push((Dist(dn), n));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(visited);
        }
        let mut out: Vec<(u64, f32)> = results
            .into_sorted_vec()
            .into_iter()
            .map(|(d, i)| (self.ids[i as usize], d.0))
            .collect();
        out.truncate(k);
        out
    }
}

/// Points reachable from `entry` through layer-0 links.
fn reachable(layer0: &[Vec<u32>], entry: u32) -> Vec<bool> {
    let mut seen = vec![false; layer0.len()];
    let mut stack = vec![entry];
    seen[entry as usize] = true;
    while let Some(p) = stack.pop() {
        for &n in &layer0[p as usize] {
            if !seen[n as usize] {
                seen[n as usize] = true;
                stack.push(n);
            }
        }
    }
    seen
}

/// Makes every point reachable from `entry` on layer 0, returning the
/// links added.
///
/// HNSW's neighbour selection prunes links, and on clustered data (real
/// embeddings: all of a corpus's texts sit in one cone) a few points end up
/// with no incoming link at all: no query, not even the point's own vector,
/// can find them (a one-off check here, not kept: 1,500 of the crash
/// test's texts embedded with the default model, each vector searched
/// for itself, 2 not found at ef = 512). Such a point is linked from those of its own neighbours that
/// are reachable; those are the points nearest to it, which a search for
/// it passes through. A group reachable from nowhere is linked from the
/// entry point, one point at a time, until everything is reachable.
fn link_unreachable(layer0: &mut [Vec<u32>], entry: u32) -> usize {
    let mut added = 0;
    loop {
        let seen = reachable(layer0, entry);
        let lost: Vec<u32> = (0..layer0.len() as u32)
            .filter(|&p| !seen[p as usize])
            .collect();
        let Some(&first) = lost.first() else {
            return added;
        };
        let mut progress = false;
        for &p in &lost {
            let from: Vec<u32> = layer0[p as usize]
                .iter()
                .copied()
                .filter(|&n| seen[n as usize])
                .collect();
            for n in from {
                layer0[n as usize].push(p);
                added += 1;
                progress = true;
            }
        }
        if !progress {
            layer0[entry as usize].push(first);
            added += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense::tests::vectors;
    use hnsw_rs::prelude::DistDot;

    type Items = Vec<(u64, Vec<f32>)>;

    fn graph(n: usize) -> (Hnsw<'static, f32, DistDot>, Items) {
        let items = vectors(n, 24, 11);
        let hnsw = Hnsw::new(16, n, 16, 200, DistDot {});
        let refs: Vec<(&Vec<f32>, usize)> = items.iter().map(|(i, v)| (v, *i as usize)).collect();
        hnsw.parallel_insert(&refs);
        (hnsw, items)
    }

    #[test]
    fn the_copy_finds_what_exact_search_finds() {
        let (hnsw, items) = graph(3000);
        let flat = FlatGraph::freeze(&hnsw, Metric::Dot).unwrap();
        assert_eq!(flat.len(), 3000);
        let mut found = 0;
        for (_, q) in items.iter().step_by(60) {
            let mut exact: Vec<(u64, f32)> = items
                .iter()
                .map(|(id, v)| (*id, DistDot {}.eval(q, v)))
                .collect();
            exact.sort_by(|a, b| a.1.total_cmp(&b.1));
            let hits = flat.search(q, 10, 64, |_| true);
            assert_eq!(hits.len(), 10);
            assert!(hits.windows(2).all(|w| w[0].1 <= w[1].1));
            found += hits
                .iter()
                .filter(|h| exact[..10].iter().any(|e| e.0 == h.0))
                .count();
        }
        // 50 queries x 10: recall@10 of at least 0.95.
        assert!(found >= 475, "recall {found}/500");
    }

    #[test]
    fn rejected_points_are_walked_through_but_never_returned() {
        let (hnsw, items) = graph(2000);
        let flat = FlatGraph::freeze(&hnsw, Metric::Dot).unwrap();
        let hits = flat.search(&items[7].1, 10, 100, |id| id % 2 == 0);
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|(id, _)| id % 2 == 0));
        let empty: Hnsw<'static, f32, DistDot> = Hnsw::new(16, 10, 16, 200, DistDot {});
        assert!(FlatGraph::freeze(&empty, Metric::Dot).is_none());
    }

    #[test]
    fn points_nothing_links_to_get_linked() {
        // 0 -> 1 -> 2 -> 0 is the reachable ring; 3 links out to 1 but
        // nothing links to it; 4 and 5 link only to each other.
        let mut layer0 = vec![vec![1], vec![2], vec![0], vec![1], vec![5], vec![4]];
        let added = link_unreachable(&mut layer0, 0);
        assert!(reachable(&layer0, 0).iter().all(|&r| r), "{layer0:?}");
        // 3 from its neighbour 1; the closed pair through the entry once.
        assert!(layer0[1].contains(&3));
        assert_eq!(added, 2, "{layer0:?}");
        // A connected graph is left as it is.
        let before = layer0.clone();
        assert_eq!(link_unreachable(&mut layer0, 0), 0);
        assert_eq!(layer0, before);
    }
}
