//! Reachability: links back the points that pruning cut off.

use std::sync::atomic::Ordering::Relaxed;

use super::{Graph, HAS_EXTRA};

impl Graph {
    /// Points reachable from the entry point on layer 0.
    pub(super) fn reachable(&self) -> Vec<bool> {
        let mut seen = vec![false; self.len()];
        if self.is_empty() {
            return seen;
        }
        let mut stack = vec![self.entry];
        seen[self.entry as usize] = true;
        while let Some(p) = stack.pop() {
            for n in self.links(p, 0) {
                if !seen[n as usize] {
                    seen[n as usize] = true;
                    stack.push(n);
                }
            }
        }
        seen
    }

    pub(super) fn add_extra(&mut self, from: u32, to: u32) {
        self.extra.entry(from).or_default().push(to);
        let s = self.stride0();
        let head = &self.links0[from as usize * s];
        head.store(head.load(Relaxed) | HAS_EXTRA, Relaxed);
    }

    /// Makes every point reachable from the entry point on layer 0,
    /// returning the links added.
    ///
    /// HNSW's neighbour selection prunes links, and on clustered data (real
    /// embeddings: all of a corpus's texts sit in one cone) a few points end
    /// up with no incoming link at all: no query, not even the point's own
    /// vector, can find them (a one-off check, not kept: 1,500 of the crash
    /// test's texts embedded with the default model, each vector searched
    /// for itself, 2 not found at ef = 512). Such a point is linked from
    /// those of its own neighbours that are reachable: the points nearest
    /// to it, which a search for it passes through. A group reachable from
    /// nowhere is linked from the entry point, one point at a time, until
    /// everything is reachable.
    pub fn repair(&mut self) -> usize {
        let mut added = 0;
        loop {
            let seen = self.reachable();
            let lost: Vec<u32> = (0..self.len() as u32)
                .filter(|&p| !seen[p as usize])
                .collect();
            let Some(&first) = lost.first() else {
                return added;
            };
            let mut progress = false;
            for &p in &lost {
                let from: Vec<u32> = self.links(p, 0).filter(|&n| seen[n as usize]).collect();
                for n in from {
                    self.add_extra(n, p);
                    added += 1;
                    progress = true;
                }
            }
            if !progress {
                self.add_extra(self.entry, first);
                added += 1;
            }
        }
    }
}
