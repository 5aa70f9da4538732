//! Fusion of the dense and keyword result lists into one ranking.
//!
//! - Reciprocal-rank fusion: `w_d / (k + rank_d) + w_k / (k + rank_k)`, with
//!   1-based ranks; a list that misses a hit contributes nothing.
//! - Convex combination: each list's scores min-max normalised to [0, 1]
//!   (a list whose scores are all equal normalises to 1), then
//!   `alpha * dense + (1 - alpha) * keyword`, a missing score counting 0.
//! - Distribution-based score fusion (as Qdrant's DBSF): like convex, but
//!   each list is normalised by its mean +- 3 standard deviations, clipped
//!   to [0, 1], which is less sensitive to one outlying score.
//! - Z-score fusion: each list's scores standardised (minus the mean, over
//!   the standard deviation), a hit missing from a list taking that list's
//!   lowest value, then `alpha * dense + (1 - alpha) * keyword`.
//! - Adaptive (the default): convex, with the dense weight lowered for a
//!   query the embedder cannot read. `coverage` (0 to 1, computed by the
//!   caller from how the embedder's vocabulary tokenizes the query: an
//!   English WordPiece vocabulary spells Arabic, Cyrillic or Chinese out
//!   letter by letter) moves the weight from `alpha` at full coverage to
//!   [`ADAPTIVE_FLOOR`] at none. English queries keep `alpha` exactly.
//!
//! Ties are broken by id so that results are deterministic.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One hit of one retriever: its id and the retriever's own score (higher
/// is better). Lists are ordered best first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// The chunk id.
    pub id: u64,
    /// The retriever's score.
    pub score: f32,
}

/// How to fuse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Fusion {
    /// Reciprocal-rank fusion with constant `k` and a weight per list.
    Rrf {
        /// The rank constant (60 in the original paper).
        k: f32,
        /// Weight of the dense list.
        dense_weight: f32,
        /// Weight of the keyword list.
        keyword_weight: f32,
    },
    /// Convex combination of min-max normalised scores.
    Convex {
        /// Weight of the dense score, 0..=1.
        alpha: f32,
    },
    /// Convex combination of mean +- 3 sigma normalised scores.
    Dbsf {
        /// Weight of the dense score, 0..=1.
        alpha: f32,
    },
    /// Convex combination of z-scores.
    Zscore {
        /// Weight of the dense score, 0..=1.
        alpha: f32,
    },
    /// Convex combination whose dense weight follows how well the embedder
    /// covers the query (see the module docs).
    Adaptive {
        /// Weight of the dense score at full coverage, 0..=1.
        alpha: f32,
        /// The embedder's coverage of this query, 0..=1.
        coverage: f32,
    },
}

/// The dense weight of an adaptive fusion for a query the embedder does
/// not cover at all: measured on arcd with the Arabic analyzer, where a
/// little of the nearly blind dense list still breaks keyword ties well
/// (docs/retrieval.md).
pub const ADAPTIVE_FLOOR: f32 = 0.2;

impl Fusion {
    /// The dense weight an adaptive fusion uses for `coverage`.
    pub fn adaptive_alpha(alpha: f32, coverage: f32) -> f32 {
        let floor = ADAPTIVE_FLOOR.min(alpha);
        floor + (alpha - floor) * coverage.clamp(0.0, 1.0)
    }
}

/// Default reciprocal-rank-fusion constant (the original paper's).
pub const DEFAULT_RRF_K: f32 = 60.0;
/// Default convex-combination weight of the dense score: the best of the
/// weights measured on msmarco-5k (docs/retrieval.md).
pub const DEFAULT_CONVEX_ALPHA: f32 = 0.7;

impl Default for Fusion {
    /// Adaptive convex at 0.7: on msmarco-5k plain RRF (k=60) ranks below
    /// dense alone while convex at 0.7 beats both halves, and on Arabic
    /// text the English embedder is nearly blind, so its weight drops
    /// (docs/retrieval.md). The caller sets the coverage per query.
    fn default() -> Self {
        Self::Adaptive {
            alpha: DEFAULT_CONVEX_ALPHA,
            coverage: 1.0,
        }
    }
}

/// A fused hit: the fused score and each retriever's rank (1-based) and
/// score, when it returned the hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fused {
    /// The chunk id.
    pub id: u64,
    /// The fused score; higher is better.
    pub score: f64,
    /// Rank and score in the dense list.
    pub dense: Option<(u32, f32)>,
    /// Rank and score in the keyword list.
    pub keyword: Option<(u32, f32)>,
}

/// Maps a list's scores linearly onto [0, 1] between `lo` and `hi`,
/// clipping outside; a degenerate range maps everything to 1.
#[derive(Debug, Clone, Copy)]
struct Normalizer {
    lo: f64,
    hi: f64,
}

/// Mean and (population) standard deviation of a list's scores.
fn mean_sd(list: &[Ranked]) -> (f64, f64) {
    let n = list.len().max(1) as f64;
    let mean = list.iter().map(|r| r.score as f64).sum::<f64>() / n;
    let var = list
        .iter()
        .map(|r| (r.score as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

impl Normalizer {
    fn min_max(list: &[Ranked]) -> Self {
        let (lo, hi) = list
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                (lo.min(r.score as f64), hi.max(r.score as f64))
            });
        Self { lo, hi }
    }

    fn three_sigma(list: &[Ranked]) -> Self {
        let (mean, sd) = mean_sd(list);
        Self {
            lo: mean - 3.0 * sd,
            hi: mean + 3.0 * sd,
        }
    }

    /// (score - mean) / standard deviation, in `lo` (the mean) and `hi`
    /// (the standard deviation) for [`Normalizer::z`].
    fn z_stats(list: &[Ranked]) -> Self {
        let (mean, sd) = mean_sd(list);
        Self { lo: mean, hi: sd }
    }

    fn z(self, s: f32) -> f64 {
        if self.hi > 0.0 {
            (s as f64 - self.lo) / self.hi
        } else {
            0.0
        }
    }

    fn apply(self, s: f32) -> f64 {
        if self.hi > self.lo {
            ((s as f64 - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
        } else {
            1.0
        }
    }
}

/// Scores every hit `alpha * dense + (1 - alpha) * keyword` over the
/// normalised scores, a missing score counting 0.
fn mix(hits: &mut HashMap<u64, Fused>, nd: Normalizer, nk: Normalizer, alpha: f32) {
    let a = alpha as f64;
    for h in hits.values_mut() {
        h.score = a * h.dense.map_or(0.0, |(_, s)| nd.apply(s))
            + (1.0 - a) * h.keyword.map_or(0.0, |(_, s)| nk.apply(s));
    }
}

/// Each entry of a list sorted by descending score with its 1-based rank;
/// equal scores share a rank (1, 2, 2, 4), so that the order a retriever
/// happened to return its ties in cannot change a rank fusion.
fn ranks(list: &[Ranked]) -> impl Iterator<Item = (u32, &Ranked)> {
    let mut shared = (0u32, f32::NAN);
    list.iter().enumerate().map(move |(i, r)| {
        if r.score != shared.1 {
            shared = (i as u32 + 1, r.score);
        }
        (shared.0, r)
    })
}

/// Fuses two ranked lists and returns the best `top_k`.
pub fn fuse(dense: &[Ranked], keyword: &[Ranked], method: Fusion, top_k: usize) -> Vec<Fused> {
    let mut hits: HashMap<u64, Fused> = HashMap::with_capacity(dense.len() + keyword.len());
    let blank = |id| Fused {
        id,
        score: 0.0,
        dense: None,
        keyword: None,
    };
    for (rank, r) in ranks(dense) {
        let hit = hits.entry(r.id).or_insert_with(|| blank(r.id));
        hit.dense.get_or_insert((rank, r.score));
    }
    for (rank, r) in ranks(keyword) {
        let hit = hits.entry(r.id).or_insert_with(|| blank(r.id));
        hit.keyword.get_or_insert((rank, r.score));
    }
    match method {
        Fusion::Rrf {
            k,
            dense_weight,
            keyword_weight,
        } => {
            let term = |w: f32, rank: Option<(u32, f32)>| {
                rank.map_or(0.0, |(r, _)| w as f64 / (k as f64 + r as f64))
            };
            for h in hits.values_mut() {
                h.score = term(dense_weight, h.dense) + term(keyword_weight, h.keyword);
            }
        }
        Fusion::Zscore { alpha } => {
            let (zd, zk) = (Normalizer::z_stats(dense), Normalizer::z_stats(keyword));
            // A hit a list missed counts as that list's worst.
            let floor = |list: &[Ranked], z: Normalizer| {
                list.iter().map(|r| z.z(r.score)).fold(0.0, f64::min)
            };
            let (fd, fk) = (floor(dense, zd), floor(keyword, zk));
            let a = alpha as f64;
            for h in hits.values_mut() {
                h.score = a * h.dense.map_or(fd, |(_, s)| zd.z(s))
                    + (1.0 - a) * h.keyword.map_or(fk, |(_, s)| zk.z(s));
            }
        }
        Fusion::Convex { alpha } => mix(
            &mut hits,
            Normalizer::min_max(dense),
            Normalizer::min_max(keyword),
            alpha,
        ),
        Fusion::Dbsf { alpha } => mix(
            &mut hits,
            Normalizer::three_sigma(dense),
            Normalizer::three_sigma(keyword),
            alpha,
        ),
        Fusion::Adaptive { alpha, coverage } => mix(
            &mut hits,
            Normalizer::min_max(dense),
            Normalizer::min_max(keyword),
            Fusion::adaptive_alpha(alpha, coverage),
        ),
    }
    let mut out: Vec<Fused> = hits.into_values().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    out.truncate(top_k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(ids: &[(u64, f32)]) -> Vec<Ranked> {
        ids.iter()
            .map(|&(id, score)| Ranked { id, score })
            .collect()
    }

    const RRF: Fusion = Fusion::Rrf {
        k: 60.0,
        dense_weight: 1.0,
        keyword_weight: 1.0,
    };

    #[test]
    fn rrf_rewards_agreement() {
        let dense = list(&[(1, 0.9), (2, 0.8), (3, 0.7)]);
        let keyword = list(&[(3, 12.0), (4, 11.0), (1, 5.0)]);
        let fused = fuse(&dense, &keyword, RRF, 10);
        let ids: Vec<u64> = fused.iter().map(|f| f.id).collect();
        assert_eq!(ids, [1, 3, 2, 4]);
        assert!((fused[0].score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-12);
        assert_eq!(fused[0].dense, Some((1, 0.9)));
        assert_eq!(fused[0].keyword, Some((3, 5.0)));
        assert_eq!(fused[3].dense, None);
    }

    #[test]
    fn convex_normalises_each_list() {
        let dense = list(&[(1, 0.9), (2, 0.5)]);
        let keyword = list(&[(2, 30.0), (3, 10.0)]);
        let fused = fuse(&dense, &keyword, Fusion::Convex { alpha: 0.5 }, 10);
        let by_id: HashMap<u64, f64> = fused.iter().map(|f| (f.id, f.score)).collect();
        assert!((by_id[&1] - 0.5).abs() < 1e-9);
        assert!((by_id[&2] - 0.5).abs() < 1e-9);
        assert!(by_id[&3].abs() < 1e-9);
        // alpha 1 is dense order, alpha 0 keyword order.
        let dense_only = fuse(&dense, &keyword, Fusion::Convex { alpha: 1.0 }, 1);
        assert_eq!(dense_only[0].id, 1);
        let keyword_only = fuse(&dense, &keyword, Fusion::Convex { alpha: 0.0 }, 1);
        assert_eq!(keyword_only[0].id, 2);
    }

    fn ranked_list() -> impl Strategy<Value = Vec<Ranked>> {
        prop::collection::btree_map(0u64..40, -10.0f32..10.0, 0..20).prop_map(|m| {
            let mut v: Vec<Ranked> = m
                .into_iter()
                .map(|(id, score)| Ranked { id, score })
                .collect();
            v.sort_by(|a, b| b.score.total_cmp(&a.score));
            v
        })
    }

    fn method() -> impl Strategy<Value = Fusion> {
        prop_oneof![
            (1.0f32..100.0, 0.0f32..2.0, 0.0f32..2.0).prop_map(
                |(k, dense_weight, keyword_weight)| Fusion::Rrf {
                    k,
                    dense_weight,
                    keyword_weight
                }
            ),
            (0.0f32..=1.0).prop_map(|alpha| Fusion::Convex { alpha }),
            (0.0f32..=1.0).prop_map(|alpha| Fusion::Dbsf { alpha }),
            (0.0f32..=1.0).prop_map(|alpha| Fusion::Zscore { alpha }),
            (0.0f32..=1.0, 0.0f32..=1.0)
                .prop_map(|(alpha, coverage)| Fusion::Adaptive { alpha, coverage }),
        ]
    }

    proptest! {
        #[test]
        fn fused_results_are_the_union_sorted_and_unique(d in ranked_list(), k in ranked_list(), m in method(), top_k in 0usize..50) {
            let fused = fuse(&d, &k, m, top_k);
            let mut union: Vec<u64> = d.iter().chain(&k).map(|r| r.id).collect();
            union.sort();
            union.dedup();
            prop_assert_eq!(fused.len(), union.len().min(top_k));
            prop_assert!(fused.windows(2).all(|w| w[0].score > w[1].score || (w[0].score == w[1].score && w[0].id < w[1].id)));
            for f in &fused {
                prop_assert!(f.dense.is_some() || f.keyword.is_some());
                if let Some((rank, score)) = f.dense {
                    prop_assert_eq!(d[rank as usize - 1], Ranked { id: f.id, score });
                }
                if let Some((rank, score)) = f.keyword {
                    prop_assert_eq!(k[rank as usize - 1], Ranked { id: f.id, score });
                }
                prop_assert!(f.score.is_finite());
            }
        }

        #[test]
        fn with_one_list_empty_every_fusion_returns_the_other_in_order(l in ranked_list(), m in method(), dense_side in any::<bool>()) {
            let (d, k): (&[Ranked], &[Ranked]) = if dense_side { (&l, &[]) } else { (&[], &l) };
            let fused = fuse(d, k, m, usize::MAX);
            let scores: Vec<f32> = fused
                .iter()
                .map(|f| f.dense.or(f.keyword).unwrap().1)
                .collect();
            // The same hits; only hits of equal input score may trade places
            // (ties are broken by id).
            prop_assert_eq!(fused.len(), l.len());
            prop_assert!(scores.windows(2).all(|p| p[0] >= p[1]), "{:?}", scores);
        }

        #[test]
        fn ties_break_by_id_whatever_the_input_order(ids in prop::collection::btree_set(0u64..100, 1..20), m in method()) {
            let mut a: Vec<Ranked> = ids.iter().map(|&id| Ranked { id, score: 1.0 }).collect();
            let first = fuse(&a, &a, m, usize::MAX);
            a.reverse();
            let second = fuse(&a, &a, m, usize::MAX);
            let order = |f: &[Fused]| f.iter().map(|h| h.id).collect::<Vec<_>>();
            prop_assert_eq!(order(&first), order(&second));
            prop_assert!(order(&first).windows(2).all(|w| w[0] < w[1]));
        }

        #[test]
        fn adaptive_keeps_alpha_at_full_coverage_and_floors_at_none(alpha in 0.0f32..=1.0) {
            prop_assert!((Fusion::adaptive_alpha(alpha, 1.0) - alpha).abs() < 1e-6);
            prop_assert!((Fusion::adaptive_alpha(alpha, 0.0) - ADAPTIVE_FLOOR.min(alpha)).abs() < 1e-6);
        }

        #[test]
        fn one_empty_list_keeps_the_other_order(d in ranked_list(), k in 1.0f32..100.0, w in 0.01f32..2.0, alpha in 0.01f32..=1.0) {
            let ids: Vec<u64> = d.iter().map(|r| r.id).collect();
            let rrf = fuse(&d, &[], Fusion::Rrf { k, dense_weight: w, keyword_weight: 1.0 }, usize::MAX);
            prop_assert_eq!(rrf.iter().map(|f| f.id).collect::<Vec<_>>(), ids);
            // Min-max is monotone: equal input scores may swap (by id), no others.
            let convex = fuse(&d, &[], Fusion::Convex { alpha }, usize::MAX);
            let scores: Vec<f32> = convex.iter().map(|f| f.dense.unwrap().1).collect();
            prop_assert!(scores.windows(2).all(|p| p[0] >= p[1]));
        }
    }
}
