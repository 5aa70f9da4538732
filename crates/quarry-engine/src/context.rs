//! Building the grounded prompt of an Ask: which retrieved passages go in
//! (near-duplicates dropped), how they are numbered and cut to fit the
//! model's token budget, and reading the `[n]` markers back out of the
//! answer.
//!
//! Pure functions over text and a token counter, so that they are tested
//! without a model.

use std::collections::HashSet;

use unicode_segmentation::UnicodeSegmentation;

/// A passage offered to the prompt: the title and text of a retrieved
/// chunk, in fused order.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    /// The document's title (may be empty).
    pub title: &'a str,
    /// The chunk's text.
    pub text: &'a str,
}

/// A passage that made it into the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Its marker, `[number]`, from 1.
    pub number: u32,
    /// Which candidate it is.
    pub candidate: usize,
    /// The text given to the model: the candidate's, or its first
    /// sentences when the whole did not fit.
    pub text: String,
}

/// Word 3-shingles above this Jaccard similarity make two passages
/// near-duplicates (the same text chunked twice, mirrored pages).
const NEAR_DUPLICATE_JACCARD: f64 = 0.8;

fn shingles(text: &str) -> HashSet<[String; 3]> {
    let words: Vec<String> = text.unicode_words().map(|w| w.to_lowercase()).collect();
    if words.len() < 3 {
        // Short texts compare as their whole word list.
        let mut padded = words.clone();
        padded.resize(3, String::new());
        return HashSet::from([[padded[0].clone(), padded[1].clone(), padded[2].clone()]]);
    }
    words
        .windows(3)
        .map(|w| [w[0].clone(), w[1].clone(), w[2].clone()])
        .collect()
}

/// Whether two passages say nearly the same thing word for word.
pub fn near_duplicate(a: &str, b: &str) -> bool {
    let (a, b) = (shingles(a), shingles(b));
    let shared = a.intersection(&b).count();
    let all = a.len() + b.len() - shared;
    all > 0 && shared as f64 / all as f64 >= NEAR_DUPLICATE_JACCARD
}

/// How a passage appears in the prompt.
pub fn format_passage(number: u32, title: &str, text: &str) -> String {
    if title.trim().is_empty() {
        format!("[{number}] {}\n\n", text.trim())
    } else {
        format!("[{number}] {}\n{}\n\n", title.trim(), text.trim())
    }
}

/// Chooses and numbers the passages that fit in `budget` tokens, in the
/// candidates' order: near-duplicates of a passage already taken are
/// skipped; a passage too long for what is left is cut after its last
/// whole sentence that fits, and packing ends there. `count` gives the
/// tokens of a text.
pub fn pack(candidates: &[Candidate], budget: usize, count: &dyn Fn(&str) -> usize) -> Vec<Packed> {
    let mut packed: Vec<Packed> = Vec::new();
    let mut left = budget;
    for (i, c) in candidates.iter().enumerate() {
        if c.text.trim().is_empty()
            || packed
                .iter()
                .any(|p| near_duplicate(candidates[p.candidate].text, c.text))
        {
            continue;
        }
        let number = packed.len() as u32 + 1;
        let whole = count(&format_passage(number, c.title, c.text));
        if whole <= left {
            left -= whole;
            packed.push(Packed {
                number,
                candidate: i,
                text: c.text.trim().to_owned(),
            });
            continue;
        }
        // The longest run of whole sentences that fits (token counts grow
        // with the number of sentences, so a binary search finds it).
        let ends: Vec<usize> = c
            .text
            .split_sentence_bound_indices()
            .map(|(start, s)| start + s.len())
            .collect();
        let fits =
            |n: usize| count(&format_passage(number, c.title, &c.text[..ends[n - 1]])) <= left;
        let (mut lo, mut hi) = (0usize, ends.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if lo > 0 && !c.text[..ends[lo - 1]].trim().is_empty() {
            packed.push(Packed {
                number,
                candidate: i,
                text: c.text[..ends[lo - 1]].trim().to_owned(),
            });
        }
        break;
    }
    packed
}

/// The `[n]` markers of an answer: `[1]`, `[1, 2]`, `[1][2]`. Returns the
/// valid numbers (1..=given) in order of first use, and how many markers
/// pointed elsewhere.
pub fn cited_numbers(answer: &str, given: u32) -> (Vec<u32>, u32) {
    let mut used = Vec::new();
    let mut invalid = 0;
    for n in quarry_ground::verify::marker_numbers(answer) {
        if (1..=given).contains(&n) {
            if !used.contains(&n) {
                used.push(n);
            }
        } else {
            invalid += 1;
        }
    }
    (used, invalid)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// One token per word or punctuation mark.
    fn words(text: &str) -> usize {
        text.split_word_bounds()
            .filter(|w| !w.trim().is_empty())
            .count()
    }

    fn candidate<'a>(title: &'a str, text: &'a str) -> Candidate<'a> {
        Candidate { title, text }
    }

    #[test]
    fn passages_are_numbered_deduplicated_and_cut_at_a_sentence() {
        let c = [
            candidate(
                "Mirrors",
                "The mirror is 4.2 metres wide. It was cast in 2019.",
            ),
            candidate(
                "Mirrors",
                "The mirror is 4.2 metres wide. It was cast in 2019!",
            ),
            candidate("", "Second passage here."),
            candidate(
                "Long",
                "First sentence fits. Second sentence is much longer than what is left.",
            ),
            candidate("Never", "Packing ended before this one."),
        ];
        let budget = words(&format_passage(1, "Mirrors", c[0].text))
            + words(&format_passage(2, "", c[2].text))
            + words(&format_passage(3, "Long", "First sentence fits."))
            + 2;
        let packed = pack(&c, budget, &words);
        let numbers: Vec<(u32, usize)> = packed.iter().map(|p| (p.number, p.candidate)).collect();
        assert_eq!(numbers, [(1, 0), (2, 2), (3, 3)]);
        assert_eq!(packed[2].text, "First sentence fits.");
        // Nothing fits: nothing is given.
        assert!(pack(&c, 2, &words).is_empty());
    }

    #[test]
    fn markers_are_read_in_their_usual_forms() {
        assert_eq!(
            cited_numbers("Paris [1]. Also [2, 3][3] and [9].", 3),
            (vec![1, 2, 3], 1)
        );
        assert_eq!(cited_numbers("a [note] b [0] c [1", 2), (vec![], 1));
        assert_eq!(cited_numbers("no markers", 2), (vec![], 0));
    }

    proptest! {
        #[test]
        fn packing_stays_within_the_budget(
            texts in proptest::collection::vec("[a-z]{1,8}( [a-z]{1,8}){0,30}[.!?]( [a-z]{1,8}( [a-z]{1,8}){0,10}[.])*", 0..8),
            budget in 0usize..200,
        ) {
            let c: Vec<Candidate> = texts.iter().map(|t| candidate("T", t)).collect();
            let packed = pack(&c, budget, &words);
            let used: usize = packed
                .iter()
                .map(|p| words(&format_passage(p.number, "T", &p.text)))
                .sum();
            prop_assert!(used <= budget);
            for (i, p) in packed.iter().enumerate() {
                prop_assert_eq!(p.number as usize, i + 1);
                prop_assert!(texts[p.candidate].trim().starts_with(&p.text));
            }
        }

        #[test]
        fn cited_numbers_never_panics_and_stays_in_range(answer in ".{0,200}", given in 0u32..20) {
            let (used, _) = cited_numbers(&answer, given);
            prop_assert!(used.iter().all(|n| (1..=given).contains(n)));
        }
    }
}
