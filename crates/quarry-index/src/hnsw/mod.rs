//! Quarry's HNSW graph: built, searched and saved here, with each vector
//! held once.
//!
//! It replaces hnsw_rs, which held every vector behind an `Arc`'d point
//! with per-layer locked neighbour lists (so Quarry kept a flat copy to
//! search and a map of live vectors besides: three copies), inserted at
//! less than half of hnswlib's speed, and could only be reloaded point by
//! point. Here:
//!
//! - the vectors are one contiguous array, row `slot` for each point;
//! - layer 0's links are a fixed-size block of `1 + 2M` words per point
//!   (a count, then the links), the few upper layers' `1 + M` words per
//!   layer in a second array, all atomics, so that threads insert in
//!   parallel while others read ([`Graph::insert`]);
//! - a neighbour list is rewritten under its point's lock; a reader may
//!   see a list half-rewritten, which costs a search a little quality but
//!   never safety: every word it can read is a slot that exists;
//! - neighbours are chosen by hnswlib's heuristic (a candidate is kept
//!   unless an already kept one is nearer to it than the new point is),
//!   distances come from [`crate::distance`]'s kernels, and levels from a
//!   hash of the chunk id, so a rebuild of the same points draws the same
//!   levels;
//! - the arrays are what a checkpoint writes and reads back
//!   ([`Graph::from_parts`]), checked link by link, not re-inserted.
//!
//! Pruning can leave a point with no incoming link, which no search then
//! finds; [`Graph::repair`] links such points back (see its docs).
//!
//! A graph made [`Graph::quantized`] also keeps int8 codes of its vectors
//! ([`codes`]): it is built with the floats, and searched with the codes,
//! its candidates then rescored with the floats.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use crate::distance::{Kernel, Metric};
use codes::{Codes, Prepared};

/// Levels are 0..=MAX_LEVEL.
pub const MAX_LEVEL: u8 = 15;
/// The low bits of a list's first word count its links.
const COUNT: u32 = 0xFFFF;
/// Set in a layer-0 count word when [`Graph::repair`] added links to the
/// point, kept in `extra`.
const HAS_EXTRA: u32 = 1 << 31;
/// Batches at least this large are inserted by several threads.
const PARALLEL_MIN: usize = 64;
/// No upper lists (a level-0 point).
const NO_UPPER: u32 = u32::MAX;

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

/// Visited marks: `marks[i] == stamp` means visited in the current walk.
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

    /// Starts a new walk over `n` points (clearing only when the stamp
    /// wraps).
    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.fill(0);
            self.stamp = 1;
        }
    }

    /// Marks `i`; returns whether it was already marked.
    #[inline]
    fn check_and_mark(&mut self, i: u32) -> bool {
        let m = &mut self.marks[i as usize];
        let seen = *m == self.stamp;
        *m = self.stamp;
        seen
    }
}

/// Asks the CPU to start loading a row that is about to be read.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// splitmix64: a point's level is drawn from a hash of its id.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The graph's shape: what a checkpoint records beside the arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Vector length (0 until the first point).
    pub dim: usize,
    /// Links per point on the upper layers; layer 0 keeps twice as many.
    pub m: usize,
    /// Beam width while inserting.
    pub ef_construction: usize,
}

/// The arrays a checkpoint saves, borrowed from a graph.
pub struct Parts<'a> {
    /// The vectors, row `slot` for each point, in contiguous pieces.
    pub vectors: Vec<&'a [f32]>,
    /// The points' ids.
    pub ids: &'a [u64],
    /// The points' levels.
    pub levels: &'a [u8],
    /// Layer 0: `1 + 2M` words per point, the count word first.
    pub links0: &'a [AtomicU32],
    /// Layers 1 and up, `1 + M` words per layer of each point above 0, in
    /// slot order.
    pub upper: &'a [AtomicU32],
    /// Repair links: (from, to) pairs.
    pub extra: Vec<(u32, u32)>,
    /// The int8 codes, row `slot` for each point, in contiguous pieces
    /// (`None` for a graph that is not quantised).
    pub codes: Option<Vec<&'a [i8]>>,
}

/// How a walk measures the distance from its query to a point.
trait Space {
    fn distance(&self, slot: u32) -> f32;
    fn prefetch(&self, slot: u32);
}

/// Distances to the float vectors.
struct Floats<'a> {
    graph: &'a Graph,
    q: &'a [f32],
}

impl Space for Floats<'_> {
    #[inline]
    fn distance(&self, slot: u32) -> f32 {
        self.graph.distance(self.q, slot)
    }

    #[inline]
    fn prefetch(&self, slot: u32) {
        prefetch(self.graph.vector(slot).as_ptr());
    }
}

/// Distances to the int8 codes.
struct Coded<'a> {
    metric: Metric,
    codes: &'a Codes,
    q: &'a [f32],
    prepared: Prepared,
}

impl Space for Coded<'_> {
    #[inline]
    fn distance(&self, slot: u32) -> f32 {
        self.codes
            .distance(self.metric, self.q, &self.prepared, slot)
    }

    #[inline]
    fn prefetch(&self, slot: u32) {
        prefetch(self.codes.row_ptr(slot));
    }
}

/// Per-thread scratch for inserting.
struct Scratch {
    visited: Visited,
    candidates: BinaryHeap<Reverse<(Dist, u32)>>,
    results: BinaryHeap<(Dist, u32)>,
}

/// Locks for rewriting neighbour lists, striped: a point's list is
/// guarded by lock `slot % STRIPES`. A thread holds one at a time, so
/// stripes cannot deadlock, and with a few threads two rarely meet; a lock
/// per point would cost 8 bytes a point and, allocated per batch, fresh
/// memory for every batch.
struct Locks(Vec<Mutex<()>>);

const STRIPES: usize = 4096;

impl Locks {
    fn new() -> Self {
        Self((0..STRIPES).map(|_| Mutex::new(())).collect())
    }

    fn of(&self, slot: u32) -> std::sync::MutexGuard<'_, ()> {
        self.0[slot as usize % STRIPES]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// An HNSW graph over vectors of one dimension, with one metric.
pub struct Graph {
    shape: Shape,
    metric: Metric,
    kernel: Kernel,
    /// Row `slot` is the point's vector.
    vectors: Rows,
    /// The point's id (the chunk id).
    ids: Vec<u64>,
    levels: Vec<u8>,
    /// Layer 0: `1 + 2M` words per point.
    links0: Vec<AtomicU32>,
    /// Where a point's upper lists start in `upper` ([`NO_UPPER`] for none).
    upper_at: Vec<u32>,
    /// Layers 1 and up: `1 + M` words per point and layer.
    upper: Vec<AtomicU32>,
    /// Layer-0 links added by [`Self::repair`], beyond a full list.
    extra: HashMap<u32, Vec<u32>>,
    /// Int8 codes of the vectors, searched instead of them (a quantised
    /// graph).
    codes: Option<Codes>,
    /// The entry point and the top level (meaningful when not empty).
    entry: u32,
    top: u8,
    pool: Mutex<Vec<Visited>>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("shape", &self.shape)
            .field("metric", &self.metric)
            .field("points", &self.len())
            .field("top", &self.top)
            .finish()
    }
}

impl Graph {
    /// An empty graph.
    pub fn new(metric: Metric, m: usize, ef_construction: usize) -> Self {
        let m = m.clamp(2, COUNT as usize / 2);
        Self {
            shape: Shape {
                dim: 0,
                m,
                ef_construction: ef_construction.max(m),
            },
            metric,
            kernel: metric.kernel(),
            vectors: Rows::new(),
            ids: Vec::new(),
            levels: Vec::new(),
            links0: Vec::new(),
            upper_at: Vec::new(),
            upper: Vec::new(),
            extra: HashMap::new(),
            codes: None,
            entry: 0,
            top: 0,
            pool: Mutex::new(Vec::new()),
        }
    }

    /// The same graph, quantised: it keeps int8 codes of its vectors and
    /// searches with them, rescoring its candidates with the vectors.
    /// Only for an empty graph (codes are made as points are inserted).
    pub fn quantized(mut self) -> Self {
        assert!(self.is_empty(), "only an empty graph becomes quantised");
        let mut codes = Codes::new();
        codes.set_dim(self.shape.dim);
        self.codes = Some(codes);
        self
    }

    /// Whether the graph keeps and searches int8 codes.
    pub fn is_quantized(&self) -> bool {
        self.codes.is_some()
    }

    /// Points in the graph.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the graph has no point.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The graph's shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The entry point's slot and the top level (`None` when empty).
    pub fn entry(&self) -> Option<(u32, u8)> {
        (!self.is_empty()).then_some((self.entry, self.top))
    }

    /// The id of the point in `slot`.
    pub fn id(&self, slot: u32) -> u64 {
        self.ids[slot as usize]
    }

    /// The vector of the point in `slot`.
    pub fn vector(&self, slot: u32) -> &[f32] {
        self.vectors.row(slot as usize)
    }

    fn m0(&self) -> usize {
        2 * self.shape.m
    }

    fn stride0(&self) -> usize {
        1 + self.m0()
    }

    fn stride_upper(&self) -> usize {
        1 + self.shape.m
    }

    /// The level a point with this id gets: -ln(u)/ln(M), u uniform.
    fn level_of(&self, id: u64) -> u8 {
        let u = ((mix(id) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let level = (-u.ln() / (self.shape.m as f64).ln()).floor();
        level.min(MAX_LEVEL as f64) as u8
    }

    /// A point's list on `layer` (count word first), and its capacity.
    #[inline]
    fn list(&self, slot: u32, layer: u8) -> (&[AtomicU32], usize) {
        if layer == 0 {
            let s = self.stride0();
            let start = slot as usize * s;
            (&self.links0[start..start + s], self.m0())
        } else {
            let s = self.stride_upper();
            let start = self.upper_at[slot as usize] as usize + (layer as usize - 1) * s;
            (&self.upper[start..start + s], self.shape.m)
        }
    }

    /// A point's links on `layer`, as read now.
    #[inline]
    fn links<'a>(&'a self, slot: u32, layer: u8) -> impl Iterator<Item = u32> + 'a {
        let (list, cap) = self.list(slot, layer);
        let head = list[0].load(Relaxed);
        let n = ((head & COUNT) as usize).min(cap);
        let extra = if head & HAS_EXTRA != 0 {
            self.extra.get(&slot).map_or(&[][..], Vec::as_slice)
        } else {
            &[]
        };
        list[1..=n]
            .iter()
            .map(|w| w.load(Relaxed))
            .chain(extra.iter().copied())
    }

    #[inline]
    fn distance(&self, q: &[f32], slot: u32) -> f32 {
        (self.kernel)(q, self.vector(slot))
    }

    /// A visited array from the pool (searches and builds share it, so a
    /// build's batches do not each allocate one per thread).
    fn take_visited(&self) -> Visited {
        self.pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| Visited::new(self.len()))
    }

    fn give_visited(&self, visited: Visited) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(visited);
        }
    }

    /// Greedy descent on one layer from `ep`.
    fn greedy(&self, space: &impl Space, mut ep: u32, mut ep_d: f32, layer: u8) -> (u32, f32) {
        loop {
            let mut moved = false;
            for n in self.links(ep, layer) {
                let d = space.distance(n);
                if d < ep_d {
                    ep = n;
                    ep_d = d;
                    moved = true;
                }
            }
            if !moved {
                return (ep, ep_d);
            }
        }
    }

    /// A beam search of width `ef` on `layer` from `ep`, leaving in
    /// `results` (farthest on top) the `ef` nearest points that `keep`
    /// accepts; rejected points are walked through but not kept.
    #[allow(clippy::too_many_arguments)]
    fn beam(
        &self,
        space: &impl Space,
        ep: u32,
        ep_d: f32,
        ef: usize,
        layer: u8,
        visited: &mut Visited,
        candidates: &mut BinaryHeap<Reverse<(Dist, u32)>>,
        results: &mut BinaryHeap<(Dist, u32)>,
        keep: impl Fn(u32) -> bool,
    ) {
        visited.reset(self.len());
        candidates.clear();
        results.clear();
        visited.check_and_mark(ep);
        candidates.push(Reverse((Dist(ep_d), ep)));
        if keep(ep) {
            results.push((Dist(ep_d), ep));
        }
        let mut buf = [0u32; 128];
        while let Some(Reverse((Dist(d), c))) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|(w, _)| d > w.0) {
                break;
            }
            // Copy the unvisited links first, so that each vector can be
            // prefetched one step ahead of its distance.
            let mut n = 0;
            let mut spill = Vec::new();
            for l in self.links(c, layer) {
                if !visited.check_and_mark(l) {
                    if n < buf.len() {
                        buf[n] = l;
                        n += 1;
                    } else {
                        spill.push(l);
                    }
                }
            }
            let fresh = buf[..n].iter().chain(spill.iter());
            if n > 0 {
                space.prefetch(buf[0]);
            }
            let mut ahead = buf[..n].iter().chain(spill.iter()).skip(1);
            for &l in fresh {
                if let Some(&next) = ahead.next() {
                    space.prefetch(next);
                }
                let dl = space.distance(l);
                if results.len() < ef || results.peek().is_some_and(|(w, _)| dl < w.0) {
                    candidates.push(Reverse((Dist(dl), l)));
                    if keep(l) {
                        results.push((Dist(dl), l));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
    }

    /// The `k` nearest points whose slot `keep` accepts, as (slot,
    /// distance), nearest first; the beam is `ef` wide (at least `k`).
    /// A quantised graph walks with the codes, then rescores all `ef`
    /// candidates with the vectors: distances returned are exact.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if k == 0 || self.is_empty() || q.len() != self.shape.dim {
            return Vec::new();
        }
        let Some(codes) = &self.codes else {
            return self.walk(&Floats { graph: self, q }, k, ef, keep);
        };
        let space = Coded {
            metric: self.metric,
            codes,
            q,
            prepared: Codes::prepare(q),
        };
        let candidates = self.walk(&space, ef.max(k), ef, keep);
        for &(slot, _) in &candidates {
            prefetch(self.vector(slot).as_ptr());
        }
        let mut out: Vec<(u32, f32)> = candidates
            .into_iter()
            .map(|(slot, _)| (slot, self.distance(q, slot)))
            .collect();
        out.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }

    /// A search in `space`: descent, then the beam on layer 0.
    fn walk(
        &self,
        space: &impl Space,
        k: usize,
        ef: usize,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let (mut ep, mut ep_d) = (self.entry, space.distance(self.entry));
        for layer in (1..=self.top).rev() {
            (ep, ep_d) = self.greedy(space, ep, ep_d, layer);
        }
        let mut visited = self.take_visited();
        let ef = ef.max(k);
        let mut candidates = BinaryHeap::with_capacity(ef * 4);
        let mut results = BinaryHeap::with_capacity(ef + 1);
        self.beam(
            space,
            ep,
            ep_d,
            ef,
            0,
            &mut visited,
            &mut candidates,
            &mut results,
            keep,
        );
        self.give_visited(visited);
        let mut out: Vec<(u32, f32)> = results
            .into_sorted_vec()
            .into_iter()
            .map(|(d, s)| (s, d.0))
            .collect();
        out.truncate(k);
        out
    }

    /// hnswlib's neighbour heuristic: from `candidates` (nearest first),
    /// keeps up to `keep`, skipping a candidate when a kept one is nearer
    /// to it than the point they would link to.
    fn select(&self, candidates: &[(f32, u32)], keep: usize) -> Vec<(f32, u32)> {
        if candidates.len() <= keep {
            return candidates.to_vec();
        }
        let mut out: Vec<(f32, u32)> = Vec::with_capacity(keep);
        for &(d, c) in candidates {
            if out.len() >= keep {
                break;
            }
            let vc = self.vector(c);
            if out.iter().all(|&(_, s)| self.distance(vc, s) >= d) {
                out.push((d, c));
            }
        }
        out
    }

    /// Writes `links` as a point's list on `layer` (under its lock),
    /// keeping the repair flag.
    fn write_list(&self, slot: u32, layer: u8, links: &[(f32, u32)]) {
        let (list, cap) = self.list(slot, layer);
        let n = links.len().min(cap);
        for (w, &(_, l)) in list[1..=n].iter().zip(links) {
            w.store(l, Relaxed);
        }
        let flag = list[0].load(Relaxed) & HAS_EXTRA;
        list[0].store(n as u32 | flag, Relaxed);
    }

    /// Adds the link `from -> to` on `layer` (under `from`'s lock),
    /// pruning a full list with the heuristic.
    fn add_link(&self, from: u32, to: u32, d: f32, layer: u8) {
        let (list, cap) = self.list(from, layer);
        let head = list[0].load(Relaxed);
        let n = ((head & COUNT) as usize).min(cap);
        if list[1..=n].iter().any(|w| w.load(Relaxed) == to) {
            return;
        }
        if n < cap {
            list[1 + n].store(to, Relaxed);
            list[0].store((n as u32 + 1) | (head & HAS_EXTRA), Relaxed);
            return;
        }
        let vf = self.vector(from);
        let mut candidates: Vec<(f32, u32)> = list[1..=n]
            .iter()
            .map(|w| {
                let l = w.load(Relaxed);
                (self.distance(vf, l), l)
            })
            .collect();
        candidates.push((d, to));
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
        let kept = self.select(&candidates, cap);
        self.write_list(from, layer, &kept);
    }

    /// Inserts the point in `slot` (its vector and level already stored).
    fn link_point(
        &self,
        slot: u32,
        locks: &Locks,
        entry: &Mutex<Option<(u32, u8)>>,
        scratch: &mut Scratch,
    ) {
        let level = self.levels[slot as usize];
        let (ep, top) = {
            let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
            match *e {
                Some(found) => found,
                None => {
                    *e = Some((slot, level));
                    return;
                }
            }
        };
        let q = self.vector(slot);
        let space = Floats { graph: self, q };
        let (mut ep, mut ep_d) = (ep, self.distance(q, ep));
        for layer in (level.saturating_add(1)..=top).rev() {
            (ep, ep_d) = self.greedy(&space, ep, ep_d, layer);
        }
        for layer in (0..=level.min(top)).rev() {
            let Scratch {
                visited,
                candidates,
                results,
            } = scratch;
            self.beam(
                &space,
                ep,
                ep_d,
                self.shape.ef_construction,
                layer,
                visited,
                candidates,
                results,
                |s| s != slot,
            );
            let mut found: Vec<(f32, u32)> = results.drain().map(|(d, s)| (d.0, s)).collect();
            found.sort_by(|a, b| a.0.total_cmp(&b.0));
            if let Some(&(d, s)) = found.first() {
                (ep, ep_d) = (s, d);
            }
            let chosen = self.select(&found, self.shape.m);
            {
                let _own = locks.of(slot);
                self.write_list(slot, layer, &chosen);
            }
            for &(d, n) in &chosen {
                let _theirs = locks.of(n);
                self.add_link(n, slot, d, layer);
            }
        }
        if level > top {
            let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
            if e.is_some_and(|(_, t)| level > t) {
                *e = Some((slot, level));
            }
        }
    }

    /// Room for `more` points of the graph's dimension (or of the next
    /// insert's, while empty) without reallocating: a build that knows its
    /// size reserves once instead of doubling (which briefly holds both
    /// copies).
    pub fn reserve_points(&mut self, more: usize, dim: usize) {
        if self.is_empty() && self.shape.dim == 0 {
            self.set_dim(dim);
        }
        self.reserve(more);
    }

    fn set_dim(&mut self, dim: usize) {
        self.shape.dim = dim;
        self.vectors.set_dim(dim);
        if let Some(codes) = &mut self.codes {
            codes.set_dim(dim);
        }
    }

    fn reserve(&mut self, more: usize) {
        self.vectors.reserve(more);
        if let Some(codes) = &mut self.codes {
            codes.reserve(more);
        }
        self.links0.reserve(more * self.stride0());
        self.ids.reserve(more);
        self.levels.reserve(more);
        self.upper_at.reserve(more);
    }

    /// Adds points (all of the graph's dimension), returning their first
    /// slot; batches of [`PARALLEL_MIN`] or more are linked by `threads`
    /// threads at once.
    pub fn insert(&mut self, items: &[(u64, &[f32])], threads: usize) -> u32 {
        let first = self.len() as u32;
        if items.is_empty() {
            return first;
        }
        if self.is_empty() {
            self.set_dim(items[0].1.len());
        }
        let dim = self.shape.dim;
        let (s0, su) = (self.stride0(), self.stride_upper());
        self.reserve(items.len());
        for (id, v) in items {
            assert_eq!(v.len(), dim, "vector {id} has {} dimensions", v.len());
            let level = self.level_of(*id);
            self.vectors.push(v);
            if let Some(codes) = &mut self.codes {
                codes.push(v);
            }
            self.ids.push(*id);
            self.levels.push(level);
            self.links0.extend((0..s0).map(|_| AtomicU32::new(0)));
            if level > 0 {
                self.upper_at.push(self.upper.len() as u32);
                self.upper
                    .extend((0..su * level as usize).map(|_| AtomicU32::new(0)));
            } else {
                self.upper_at.push(NO_UPPER);
            }
        }
        let total = self.len();
        let locks = Locks::new();
        let entry = Mutex::new((first > 0).then_some((self.entry, self.top)));
        let next = AtomicUsize::new(first as usize);
        let threads = if items.len() >= PARALLEL_MIN {
            threads.max(1)
        } else {
            1
        };
        let graph = &*self;
        let work = || {
            let mut scratch = Scratch {
                visited: graph.take_visited(),
                candidates: BinaryHeap::new(),
                results: BinaryHeap::new(),
            };
            loop {
                let slot = next.fetch_add(1, Relaxed);
                if slot >= total {
                    break;
                }
                graph.link_point(slot as u32, &locks, &entry, &mut scratch);
            }
            graph.give_visited(scratch.visited);
        };
        if threads == 1 {
            work();
        } else {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(work);
                }
            });
        }
        let (e, t) = entry
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .expect("a non-empty graph has an entry");
        self.entry = e;
        self.top = t;
        first
    }
}

pub(crate) mod codes;
mod parts;
mod repair;
mod rows;

pub(crate) use rows::Rows;
#[cfg(test)]
mod tests;
