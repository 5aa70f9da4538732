//! Verification of a generated sentence against the passages it was
//! given: are its facts in them, how well does one of their sentences
//! say the same thing, and which passage should it cite.
//!
//! - Facts: every number and name the sentence states must occur in the
//!   passages ([`FactSet`], read generously on the passages' side), and
//!   all of them in the passage that supports it, in sentences that match
//!   the generated one nearly as well as its best match (or in the title):
//!   a sentence that joins a year from one passage to a claim from
//!   another, or that borrows "16" from an unrelated line to date an
//!   event the passage dates "17 June", is supported by neither.
//! - Support: the best match between the sentence and any passage
//!   sentence, half embedding cosine and half token overlap (the share of
//!   the sentence's content terms found in that sentence, half credit for
//!   a term found elsewhere in its passage).
//! - Citation: the passage holding the best-matching sentence. A marker
//!   the model wrote is kept when its passage supports the sentence almost
//!   as well, corrected when another passage does, added when there was
//!   none.

use std::collections::HashSet;

use crate::evidence::PassageText;
use crate::facts::{strip_markers, Fact, FactSet};
use crate::terms::terms;

/// Thresholds of verification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerifyConfig {
    /// A sentence is supported when its support reaches this (and all its
    /// facts are in the passages).
    pub min_support: f32,
    /// A written marker is kept when its passage's support is at least this
    /// share of the best passage's.
    pub keep_marker_ratio: f32,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            min_support: 0.55,
            keep_marker_ratio: 0.9,
        }
    }
}

/// What happened to a sentence's citation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CitationChange {
    /// The markers the model wrote were right.
    Kept,
    /// At least one marker pointed at a passage that does not support the
    /// sentence; the supporting passage is cited instead.
    Corrected,
    /// The model wrote none; the supporting passage is cited.
    Added,
    /// Nothing supports the sentence; nothing is cited.
    None,
}

/// The verification of one generated sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The sentence as generated (markers included).
    pub generated: String,
    /// The sentence without its markers.
    pub plain: String,
    /// The markers the model wrote (valid passage numbers only).
    pub written: Vec<u32>,
    /// Facts not found in the passages.
    pub missing: Vec<Fact>,
    /// The best match with a passage sentence, 0 to 1.
    pub support: f32,
    /// Index of the best-matching candidate sentence.
    pub best_sentence: Option<usize>,
    /// The passages to cite (empty when unsupported).
    pub citations: Vec<u32>,
    /// What happened to the markers.
    pub change: CitationChange,
    /// Facts all found and support over the threshold.
    pub supported: bool,
}

/// A candidate sentence the verifier compares against.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Index of its passage.
    pub passage: usize,
    /// Its vector (normalised, like the generated sentence's).
    pub vector: Vec<f32>,
    /// Its content terms.
    terms: HashSet<String>,
    /// Its numbers and names.
    facts: FactSet,
}

/// A fact supports a claim only from a passage sentence whose own support
/// for the claim is at least this share of the passage's best.
const FACT_SENTENCE_RATIO: f32 = 0.8;

/// Checks generated sentences against a fixed set of passages.
#[derive(Debug, Clone)]
pub struct Verifier {
    numbers: Vec<u32>,
    facts: FactSet,
    title_facts: Vec<FactSet>,
    passage_terms: Vec<HashSet<String>>,
    references: Vec<Reference>,
    config: VerifyConfig,
    /// The question's content terms: a short sentence ("The answer is
    /// 2000.") is checked as the claim it makes about the question.
    question_terms: Vec<String>,
}

/// Sentences with fewer content terms than this are checked together with
/// the question's terms.
const SHORT_SENTENCE_TERMS: usize = 4;

/// Every `[n]` number written in `text` (`[1]`, `[1, 2]`, `[1][2]`), in
/// order, repeats kept: only brackets holding nothing but numbers are
/// markers.
pub fn marker_numbers(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inside = &rest[..close];
        let numbers: Option<Vec<u32>> = inside
            .split(',')
            .map(|n| n.trim().parse::<u32>().ok())
            .collect();
        if let Some(numbers) = numbers.filter(|n| !n.is_empty() && inside.len() <= 40) {
            rest = &rest[close + 1..];
            out.extend(numbers);
        }
    }
    out
}

/// The `[n]` numbers written in `text`, in order, each once.
pub fn markers(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for n in marker_numbers(text) {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// `plain` with ` [a][b]` placed before its closing punctuation.
pub fn with_citations(plain: &str, citations: &[u32]) -> String {
    let plain = plain.trim();
    if citations.is_empty() {
        return plain.to_owned();
    }
    let marks: String = citations.iter().map(|n| format!("[{n}]")).collect();
    let body = plain.trim_end_matches(|c: char| {
        matches!(
            c,
            '.' | '!' | '?' | '…' | '"' | '”' | '\'' | '’' | ')' | '»'
        )
    });
    let tail = &plain[body.len()..];
    if tail.is_empty() {
        format!("{body} {marks}")
    } else if tail.contains(['"', '”', '\'', '’', ')', '»']) {
        // A closing quote belongs to the sentence: the marker goes after.
        format!("{plain} {marks}")
    } else {
        format!("{} {marks}{tail}", body.trim_end())
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Verifier {
    /// A verifier over `passages`, comparing against candidate sentences
    /// `(passage index, text, vector)`.
    pub fn new(
        passages: &[PassageText],
        candidates: impl IntoIterator<Item = (usize, String, Vec<f32>)>,
        config: VerifyConfig,
    ) -> Self {
        Self::for_question("", passages, candidates, config)
    }

    /// As [`Verifier::new`], for answers to `question`.
    pub fn for_question(
        question: &str,
        passages: &[PassageText],
        candidates: impl IntoIterator<Item = (usize, String, Vec<f32>)>,
        config: VerifyConfig,
    ) -> Self {
        let facts = FactSet::from_texts(passages.iter().flat_map(|p| [p.title, p.text]));
        let title_facts = passages
            .iter()
            .map(|p| FactSet::from_texts([p.title]))
            .collect();
        let passage_terms = passages
            .iter()
            .map(|p| terms(p.title).into_iter().chain(terms(p.text)).collect())
            .collect();
        let references = candidates
            .into_iter()
            .map(|(passage, text, vector)| Reference {
                passage,
                vector,
                terms: terms(&text).into_iter().collect(),
                facts: FactSet::from_texts([text.as_str()]),
            })
            .collect();
        Self {
            numbers: passages.iter().map(|p| p.number).collect(),
            facts,
            title_facts,
            passage_terms,
            references,
            config,
            question_terms: terms(question),
        }
    }

    /// The thresholds.
    pub fn config(&self) -> &VerifyConfig {
        &self.config
    }

    /// The facts of every passage.
    pub fn facts(&self) -> &FactSet {
        &self.facts
    }

    /// How well `sentence` (its terms and vector) matches reference `r`.
    fn support_of(&self, sentence_terms: &[String], vector: &[f32], r: &Reference) -> f32 {
        let overlap = if sentence_terms.is_empty() {
            0.0
        } else {
            sentence_terms
                .iter()
                .map(|t| {
                    if r.terms.contains(t) {
                        1.0
                    } else if self.passage_terms[r.passage].contains(t) {
                        0.5
                    } else {
                        0.0
                    }
                })
                .sum::<f32>()
                / sentence_terms.len() as f32
        };
        0.5 * dot(vector, &r.vector).max(0.0) + 0.5 * overlap
    }

    /// Verifies one generated sentence, given its embedding.
    pub fn check(&self, generated: &str, vector: &[f32]) -> Check {
        let plain = strip_markers(generated)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let plain = plain
            .replace(" .", ".")
            .replace(" ,", ",")
            .replace(" ?", "?")
            .replace(" !", "!");
        let written: Vec<u32> = markers(generated)
            .into_iter()
            .filter(|n| self.numbers.contains(n))
            .collect();
        let missing = self.facts.missing(&plain);
        let claimed = crate::facts::facts(&plain);
        let mut sentence_terms = terms(&plain);
        if sentence_terms.len() < SHORT_SENTENCE_TERMS {
            for t in &self.question_terms {
                if !sentence_terms.contains(t) {
                    sentence_terms.push(t.clone());
                }
            }
        }
        let supports: Vec<f32> = self
            .references
            .iter()
            .map(|r| self.support_of(&sentence_terms, vector, r))
            .collect();
        let mut best_in = vec![0f32; self.numbers.len()];
        for (r, s) in self.references.iter().zip(&supports) {
            best_in[r.passage] = best_in[r.passage].max(*s);
        }
        // The passages whose close sentences (and title) hold every fact.
        let holds: Vec<bool> = (0..self.numbers.len())
            .map(|p| {
                claimed.iter().all(|f| {
                    self.title_facts[p].contains(f)
                        || self.references.iter().zip(&supports).any(|(r, s)| {
                            r.passage == p
                                && *s >= FACT_SENTENCE_RATIO * best_in[p]
                                && r.facts.contains(f)
                        })
                })
            })
            .collect();
        // Best support per passage, and overall, among the passages that
        // hold all its facts.
        let mut per_passage = vec![0f32; self.numbers.len()];
        let mut best: Option<(usize, f32)> = None;
        for (i, (r, s)) in self.references.iter().zip(&supports).enumerate() {
            if !holds[r.passage] {
                continue;
            }
            per_passage[r.passage] = per_passage[r.passage].max(*s);
            if best.is_none_or(|(_, b)| *s > b) {
                best = Some((i, *s));
            }
        }
        let support = best.map_or(0.0, |(_, s)| s);
        let supported = missing.is_empty() && best.is_some() && support >= self.config.min_support;
        let (citations, change) = if !supported {
            (Vec::new(), CitationChange::None)
        } else {
            let best_passage = self.references[best.map_or(0, |(i, _)| i)].passage;
            let keep: Vec<u32> = written
                .iter()
                .copied()
                .filter(|n| {
                    let p = self.numbers.iter().position(|x| x == n).unwrap_or(0);
                    per_passage[p] >= self.config.keep_marker_ratio * support
                        && per_passage[p] >= self.config.min_support
                })
                .collect();
            if written.is_empty() {
                (vec![self.numbers[best_passage]], CitationChange::Added)
            } else if keep.len() == written.len() {
                (keep, CitationChange::Kept)
            } else if keep.is_empty() {
                (vec![self.numbers[best_passage]], CitationChange::Corrected)
            } else {
                (keep, CitationChange::Corrected)
            }
        };
        Check {
            generated: generated.to_owned(),
            plain,
            written,
            missing,
            support,
            best_sentence: best.map(|(i, _)| i),
            citations,
            change,
            supported,
        }
    }

    /// The candidate sentences.
    pub fn references(&self) -> &[Reference] {
        &self.references
    }

    /// How well two candidate sentences' vectors match a vector.
    pub fn similarity(&self, reference: usize, vector: &[f32]) -> f32 {
        dot(&self.references[reference].vector, vector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two orthogonal directions, and one in between.
    fn unit(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; 4];
        v[i] = 1.0;
        v
    }

    fn verifier() -> Verifier {
        let passages = [
            PassageText {
                number: 1,
                title: "Banks",
                text: "Banks' revenues after risk cost hit a record $5.5 trillion in 2024.",
                similarity: 0.5,
            },
            PassageText {
                number: 2,
                title: "Lighthouse",
                text: "The Greyhaven Lighthouse was built in 1874.",
                similarity: 0.5,
            },
        ];
        Verifier::new(
            &passages,
            [
                (0, passages[0].text.to_owned(), unit(0)),
                (1, passages[1].text.to_owned(), unit(1)),
            ],
            VerifyConfig::default(),
        )
    }

    #[test]
    fn fabricated_numbers_and_names_are_unsupported() {
        let v = verifier();
        let c = v.check(
            "The record level of banks' revenues after risk cost in 2024 was 1.2 trillion dollars [1].",
            &unit(0),
        );
        assert!(!c.supported);
        assert_eq!(c.missing[0].text(), "1.2 trillion");
        assert!(c.citations.is_empty());
        let c = v.check("The capital city of Mongolia is Beijing.", &unit(2));
        assert!(!c.supported);
        assert!(c.missing.iter().any(|f| f.text() == "Mongolia"));
    }

    #[test]
    fn facts_must_all_be_in_the_supporting_passage() {
        let v = verifier();
        // 1874 is in passage 2, banks' revenues in passage 1: neither
        // supports the sentence that joins them.
        let c = v.check(
            "Banks' revenues after risk cost hit a record in 1874 [1].",
            &unit(0),
        );
        assert!(c.missing.is_empty());
        assert!(!c.supported, "{c:?}");
        // A number borrowed from an unrelated line of the right passage.
        let passages = [PassageText {
            number: 1,
            title: "Iceland",
            text: "National holiday: Independence Day, 17 June (1944). Internet users: 16 per 100.",
            similarity: 0.5,
        }];
        let v = Verifier::new(
            &passages,
            [
                (
                    0,
                    "National holiday: Independence Day, 17 June (1944).".to_owned(),
                    unit(0),
                ),
                (0, "Internet users: 16 per 100.".to_owned(), unit(1)),
            ],
            VerifyConfig::default(),
        );
        let borrowed = v.check("Iceland's national holiday is 16 June 1944.", &unit(0));
        assert!(!borrowed.supported, "{borrowed:?}");
        let right = v.check("Iceland's national holiday is 17 June 1944.", &unit(0));
        assert!(right.supported, "{right:?}");
    }

    #[test]
    fn a_bare_answer_is_checked_as_a_claim_about_the_question() {
        let passages = [
            PassageText {
                number: 1,
                title: "",
                text: "Lewis County was formed on December 2, 1806.",
                similarity: 0.5,
            },
            PassageText {
                number: 2,
                title: "",
                text: "The town had 2000 residents in 1990.",
                similarity: 0.5,
            },
        ];
        let v = Verifier::for_question(
            "On what date was Lewis County formed?",
            &passages,
            [
                (0, passages[0].text.to_owned(), unit(0)),
                (1, passages[1].text.to_owned(), unit(1)),
            ],
            VerifyConfig::default(),
        );
        assert!(!v.check("The answer is: 2000 [1].", &unit(3)).supported);
        let right = v.check("The answer is: December 2, 1806.", &unit(0));
        assert!(right.supported, "{right:?}");
        assert_eq!(right.citations, [1]);
    }

    #[test]
    fn markers_are_kept_corrected_or_added() {
        let v = verifier();
        let right = v.check(
            "Banks' revenues after risk cost reached $5.5 trillion in 2024 [1].",
            &unit(0),
        );
        assert!(right.supported, "{right:?}");
        assert_eq!(
            (right.citations.as_slice(), right.change),
            (&[1][..], CitationChange::Kept)
        );
        let wrong = v.check("The Greyhaven Lighthouse was built in 1874 [1].", &unit(1));
        assert_eq!(
            (wrong.citations.as_slice(), wrong.change),
            (&[2][..], CitationChange::Corrected)
        );
        let none = v.check("The Greyhaven Lighthouse was built in 1874.", &unit(1));
        assert_eq!(
            (none.citations.as_slice(), none.change),
            (&[2][..], CitationChange::Added)
        );
        // A marker beyond the passages given is not a written citation.
        let out = v.check("The Greyhaven Lighthouse was built in 1874 [7].", &unit(1));
        assert_eq!(out.written, Vec::<u32>::new());
        assert_eq!(out.change, CitationChange::Added);
    }

    #[test]
    fn citations_go_before_the_closing_mark() {
        assert_eq!(with_citations("It was 1874.", &[2]), "It was 1874 [2].");
        assert_eq!(with_citations("It was 1874", &[1, 2]), "It was 1874 [1][2]");
        assert_eq!(
            with_citations("He said \"yes.\"", &[1]),
            "He said \"yes.\" [1]"
        );
        assert_eq!(with_citations("Really?!", &[3]), "Really [3]?!");
        assert_eq!(with_citations("No marks.", &[]), "No marks.");
    }

    #[test]
    fn markers_are_read_in_their_usual_forms() {
        assert_eq!(markers("a [1] b [2, 3][3] c [x] [9"), [1, 2, 3]);
    }
}
