//! Sentence-level rescoring of search hits, an option of Search
//! (`sentence_weight`, off by default).
//!
//! A long passage can hold one sentence that answers the query among many
//! that do not; scored as a whole it ranks below a passage that is vaguely
//! about the query throughout. With a weight `w > 0` the best
//! [`RESCORE_DEPTH`] hits are reordered by
//! `(1 - w) * score / best score + w * best sentence`, where `best
//! sentence` is the highest cosine between the query and one of the hit's
//! first [`SENTENCES_PER_HIT`] sentences, min-max normalised over those
//! hits. Hits below the depth keep their order. It costs embedding up to
//! 240 sentences per query, so it is not the default; the measurements
//! are in docs/retrieval.md.

use quarry_ground::sentences;

/// Hits rescored.
pub const RESCORE_DEPTH: usize = 20;
/// Sentences per hit compared with the query.
pub const SENTENCES_PER_HIT: usize = 12;
/// Shorter sentences (headings, fragments) are not compared.
const MIN_WORDS: usize = 3;

/// The sentences of `text` compared with the query: its first
/// [`SENTENCES_PER_HIT`] of [`MIN_WORDS`] words or more, or the whole
/// text when it has none.
pub fn candidate_sentences(text: &str) -> Vec<String> {
    let out: Vec<String> = sentences::split(text)
        .iter()
        .map(|s| s.text(text).trim())
        .filter(|s| s.split_whitespace().count() >= MIN_WORDS)
        .take(SENTENCES_PER_HIT)
        .map(str::to_owned)
        .collect();
    if out.is_empty() && !text.trim().is_empty() {
        vec![text.trim().to_owned()]
    } else {
        out
    }
}

/// The new order of hits scored `scores` (descending, as returned) whose
/// best sentences score `best`, with their new scores: indexes into the
/// input, best first. Ties keep the input order.
pub fn reorder(scores: &[f64], best: &[f32], weight: f32) -> Vec<(usize, f64)> {
    let top = scores.iter().copied().fold(f64::MIN, f64::max);
    let (lo, hi) = best
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &b| (lo.min(b), hi.max(b)));
    let w = weight as f64;
    let mut out: Vec<(usize, f64)> = scores
        .iter()
        .zip(best)
        .enumerate()
        .map(|(i, (&s, &b))| {
            let fused = if top > 0.0 { s / top } else { 1.0 };
            let sentence = if hi > lo {
                ((b - lo) / (hi - lo)) as f64
            } else {
                1.0
            };
            (i, (1.0 - w) * fused + w * sentence)
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_passage_with_one_answering_sentence_moves_up() {
        // Hit 1 scores a little lower as a whole but holds the best sentence.
        let order = reorder(&[0.9, 0.85, 0.5], &[0.3, 0.8, 0.2], 0.3);
        assert_eq!(order.iter().map(|o| o.0).collect::<Vec<_>>(), vec![1, 0, 2]);
        // At weight 0 the order is the input's.
        let order = reorder(&[0.9, 0.85, 0.5], &[0.3, 0.8, 0.2], 0.0);
        assert_eq!(order.iter().map(|o| o.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn sentences_skip_fragments_and_stop_at_the_limit() {
        let text = "Intro. The first real sentence here. Another full sentence follows.";
        assert_eq!(
            candidate_sentences(text),
            vec![
                "The first real sentence here.".to_owned(),
                "Another full sentence follows.".to_owned()
            ]
        );
        let long: String = (0..30)
            .map(|i| format!("Sentence number {i} here. "))
            .collect();
        assert_eq!(candidate_sentences(&long).len(), SENTENCES_PER_HIT);
        assert_eq!(
            candidate_sentences("Two words"),
            vec!["Two words".to_owned()]
        );
        assert!(candidate_sentences("  ").is_empty());
    }

    proptest! {
        #[test]
        fn reorder_is_a_permutation_and_weight_zero_keeps_the_order(
            pairs in prop::collection::vec((0.0f64..10.0, -1.0f32..1.0), 1..30),
            weight in 0.0f32..=1.0,
        ) {
            let mut scores: Vec<f64> = pairs.iter().map(|p| p.0).collect();
            scores.sort_by(|a, b| b.total_cmp(a));
            let best: Vec<f32> = pairs.iter().map(|p| p.1).collect();
            let order = reorder(&scores, &best, weight);
            let mut seen: Vec<usize> = order.iter().map(|o| o.0).collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..scores.len()).collect::<Vec<_>>());
            prop_assert!(order.windows(2).all(|w| w[0].1 >= w[1].1));
            let unchanged = reorder(&scores, &best, 0.0);
            prop_assert!(unchanged.windows(2).all(|w| scores[w[0].0] >= scores[w[1].0]));
        }
    }
}
