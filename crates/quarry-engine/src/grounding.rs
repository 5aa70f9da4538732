//! Grounded answers: the evidence of one Ask, the prompt built from it,
//! and the composer that turns the model's sentences into what is shown.
//!
//! The engine embeds (on the model thread); everything here is pure over
//! text and vectors, so the rules are unit-tested with synthetic vectors:
//! - [`Grounding`]: the passages' sentences scored against the question,
//!   whether they answer it at all, and a verifier over them;
//! - [`SentenceBuffer`]: streamed text in, whole sentences out (a citation
//!   marker written after the period stays with its sentence);
//! - [`Composer`]: per sentence, what the user sees. In grounded mode a
//!   supported sentence is shown with the passage that supports it, a
//!   failed one is replaced by quoted evidence or dropped, repeats are
//!   dropped, and an answer that lacks what the question asks for gets the
//!   best evidence sentence quoted; in generative mode sentences are only
//!   annotated; in extractive mode the answer is quoted evidence.

use std::collections::{HashMap, HashSet};

use quarry_core::{AnswerMode, EvidenceSentence, SentenceCheck, SentenceStatus};
use quarry_ground::Fact;
use quarry_ground::{
    answer_facts, answers_kind, with_citations, AnswerType, Candidates, Evidence, EvidenceWeights,
    FactSet, PassageText, Question, ScoredSentence, Verifier, VerifyConfig,
};

/// How the evidence sentences are laid out in the grounded prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvidenceLayout {
    /// One sentence a line, best first, each with its passage number.
    Ranked,
    /// One line per passage, in passage order, its evidence sentences in
    /// text order (the default: measured best, docs/answers.md).
    #[default]
    Grouped,
}

impl EvidenceLayout {
    /// The setting's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ranked => "ranked",
            Self::Grouped => "grouped",
        }
    }

    /// The layout named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Ranked, Self::Grouped]
            .into_iter()
            .find(|l| l.as_str() == s)
    }
}

/// Settings of evidence selection and verification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundingConfig {
    /// Evidence sentences given to the model.
    pub evidence_sentences: usize,
    /// The best evidence sentence must score at least this for the
    /// passages to count as answering the question; below it the answer is
    /// "not found" (NOT_SUPPORTED).
    pub min_answer_score: f32,
    /// Signals of a sentence's score.
    pub weights: EvidenceWeights,
    /// Thresholds of sentence verification.
    pub verify: VerifyConfig,
    /// Most sentences an extractive answer quotes.
    pub extractive_sentences: usize,
    /// Most candidate sentences an extractive answer embeds.
    pub extractive_candidates: usize,
    /// A second extractive sentence is quoted when it scores at least this
    /// share of the best.
    pub extractive_second_ratio: f32,
    /// Generation stops once this many sentences are shown (grounded).
    pub max_shown_sentences: usize,
    /// Below this evidence score, a "who/which/where" answer whose first
    /// sentence names what no passage names is refused (NOT_SUPPORTED)
    /// rather than replaced by quoted evidence.
    pub invention_refusal_below: f32,
    /// Prompt layout of the evidence.
    pub layout: EvidenceLayout,
}

impl Default for GroundingConfig {
    fn default() -> Self {
        Self {
            evidence_sentences: 6,
            min_answer_score: 0.4,
            weights: EvidenceWeights::default(),
            verify: VerifyConfig::default(),
            extractive_sentences: 2,
            extractive_candidates: 10,
            extractive_second_ratio: 0.95,
            max_shown_sentences: 3,
            invention_refusal_below: 0.75,
            layout: EvidenceLayout::default(),
        }
    }
}

/// The instructions of a grounded prompt: short, for models as small as
/// 135M parameters. Chosen by measurement on the dev set (docs/answers.md):
/// an instruction with an inline example leaked the example's figure into
/// answers; one example exchange ([`GROUNDED_EXAMPLE`]) did not, and got
/// the most answers stated in the model's own verified words.
pub const GROUNDED_SYSTEM_PROMPT: &str =
    "You answer the question using only the numbered evidence. \
Answer in one short sentence that repeats the words of the evidence, \
and end it with the number of that evidence in square brackets.";

/// The example exchange before the question: evidence, a question, and an
/// answer that copies its evidence and cites it.
pub const GROUNDED_EXAMPLE: (&str, &str) = (
    "Evidence:\n[1] The Keld Gorge bridge opened to walkers in 2016.\n[2] Its glass floor panels are 5 centimetres thick.\n\nQuestion: How thick are the floor panels of the bridge?",
    "The glass floor panels are 5 centimetres thick [2].",
);

/// Whether a lower-cased word comes from [`GROUNDED_EXAMPLE`]: a model
/// that repeats the example has not invented an answer.
fn example_word(norm: &str) -> bool {
    let example = format!("{} {}", GROUNDED_EXAMPLE.0, GROUNDED_EXAMPLE.1).to_lowercase();
    example
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w == norm)
}

/// A passage as the grounding sees it.
#[derive(Debug, Clone)]
pub struct GroundPassage {
    /// Its citation number.
    pub number: u32,
    /// Title.
    pub title: String,
    /// Text.
    pub text: String,
    /// Its cosine similarity to the question.
    pub similarity: f32,
}

/// Everything one Ask knows about its evidence.
pub struct Grounding {
    /// The question, read.
    pub question: Question,
    /// Every candidate sentence, best first.
    pub evidence: Evidence,
    /// Checks generated sentences.
    pub verifier: Verifier,
    /// Whether the best evidence reaches the answer threshold.
    pub answerable: bool,
    /// The settings.
    pub config: GroundingConfig,
    /// The passages' citation numbers, by index.
    numbers: Vec<u32>,
}

impl Grounding {
    /// The candidate sentences of `passages`, to embed.
    pub fn candidates(passages: &[GroundPassage]) -> Candidates {
        Candidates::of(&texts(passages))
    }

    /// Keeps the candidates an extractive answer embeds: all sentences of
    /// the two best passages, and the likeliest others up to
    /// [`GroundingConfig::extractive_candidates`].
    pub fn prune(
        candidates: &mut Candidates,
        question: &str,
        term_weights: &HashMap<String, f32>,
        passages: &[GroundPassage],
        config: &GroundingConfig,
    ) {
        let q = Question::weighted(question, &|w| term_weights.get(w).copied());
        candidates.prune(
            &q,
            &texts(passages),
            &config.weights,
            2,
            config.extractive_candidates,
        );
    }

    /// The words whose vectors [`Grounding::align`] needs.
    pub fn alignment_words(&self) -> Vec<String> {
        self.evidence.alignment_words(&self.question)
    }

    /// Re-scores the best sentences with their alignment to the question's
    /// focus words (vectors of [`Grounding::alignment_words`]), and decides
    /// again whether the passages answer the question.
    pub fn align(&mut self, vectors: &[Vec<f32>]) {
        self.evidence
            .align(&self.question, vectors, &self.config.weights);
        self.answerable = self
            .evidence
            .best()
            .is_some_and(|b| b.score >= self.config.min_answer_score);
    }

    /// Scores `candidates` (of `passages`) with their `vectors` against the
    /// question and its vector.
    pub fn new(
        question: &str,
        question_vector: &[f32],
        term_weights: &HashMap<String, f32>,
        passages: &[GroundPassage],
        candidates: Candidates,
        vectors: Vec<Vec<f32>>,
        config: GroundingConfig,
    ) -> Self {
        let q = Question::weighted(question, &|w| term_weights.get(w).copied());
        let cosines: Vec<f32> = vectors.iter().map(|v| dot(v, question_vector)).collect();
        let refs = texts(passages);
        let verifier = Verifier::for_question(
            question,
            &refs,
            candidates
                .sentences
                .iter()
                .zip(vectors)
                .map(|(c, v)| (c.0, c.2.clone(), v)),
            config.verify,
        );
        let evidence = Evidence::score(&q, &refs, candidates, &cosines, &config.weights);
        let answerable = evidence
            .best()
            .is_some_and(|b| b.score >= config.min_answer_score);
        Self {
            question: q,
            evidence,
            verifier,
            answerable,
            config,
            numbers: passages.iter().map(|p| p.number).collect(),
        }
    }

    /// The evidence given to the model (and kept in the record).
    pub fn top(&self) -> Vec<&ScoredSentence> {
        self.evidence.top(self.config.evidence_sentences, f32::MIN)
    }

    /// The evidence as the record keeps it.
    pub fn record(&self) -> Vec<EvidenceSentence> {
        self.top()
            .into_iter()
            .map(|s| EvidenceSentence {
                passage: s.number,
                text: s.text.clone(),
                score: s.score as f64,
            })
            .collect()
    }

    /// The evidence block of the prompt, each sentence passed through
    /// `defuse` (control tokens made inert).
    pub fn prompt_block(&self, n: usize, defuse: &dyn Fn(&str) -> String) -> String {
        let top: Vec<&ScoredSentence> = self.evidence.top(n, f32::MIN);
        match self.config.layout {
            EvidenceLayout::Ranked => top
                .iter()
                .map(|s| format!("[{}] {}\n", s.number, defuse(&one_line(&s.text))))
                .collect(),
            EvidenceLayout::Grouped => {
                let mut chosen: Vec<&ScoredSentence> = top;
                chosen.sort_by_key(|s| (s.number, s.index));
                let mut out = String::new();
                let mut current = None;
                for s in chosen {
                    if current != Some(s.number) {
                        if current.is_some() {
                            out.push('\n');
                        }
                        out.push_str(&format!("[{}]", s.number));
                        current = Some(s.number);
                    }
                    out.push(' ');
                    out.push_str(&defuse(&one_line(&s.text)));
                }
                out.push('\n');
                out
            }
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn texts(passages: &[GroundPassage]) -> Vec<PassageText<'_>> {
    passages
        .iter()
        .map(|p| PassageText {
            number: p.number,
            title: &p.title,
            text: &p.text,
            similarity: p.similarity,
        })
        .collect()
}

/// The cosine of two embeddings (the embedder normalises them, so it is
/// their dot product).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Streamed text in, whole sentences out.
#[derive(Debug, Default)]
pub struct SentenceBuffer {
    text: String,
}

/// Bytes of leading citation markers (and the spaces around them), also a
/// marker still being written ("[", "[1").
fn leading_markers(s: &str) -> usize {
    let mut i = 0;
    let bytes = s.as_bytes();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'[' {
            return i;
        }
        let mut j = i + 1;
        while j < bytes.len() && (bytes[j].is_ascii_digit() || matches!(bytes[j], b',' | b' ')) {
            j += 1;
        }
        if j >= bytes.len() {
            return j; // an unfinished marker
        }
        if bytes[j] != b']' || j == i + 1 {
            return i;
        }
        i = j + 1;
    }
}

impl SentenceBuffer {
    /// Adds streamed text.
    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// The sentences completed so far: every one but the last, once the
    /// text after it holds more than citation markers.
    pub fn complete(&mut self) -> Vec<String> {
        self.take(false)
    }

    /// Every sentence left (the stream ended).
    pub fn finish(&mut self) -> Vec<String> {
        self.take(true)
    }

    fn take(&mut self, all: bool) -> Vec<String> {
        let spans = quarry_ground::split(&self.text);
        // Sentence i runs from its start to the next sentence's start, with
        // the markers that open the next span moved back to it.
        let mut cuts: Vec<usize> = Vec::new();
        for s in spans.iter().skip(1) {
            let markers = leading_markers(&self.text[s.start..]);
            let cut = s.start + markers;
            if cut < self.text.len() && !self.text[cut..].trim().is_empty() {
                cuts.push(cut);
            }
        }
        cuts.dedup();
        let mut out = Vec::new();
        let mut start = 0;
        for cut in cuts {
            let sentence = self.text[start..cut].trim();
            if !sentence.is_empty() {
                out.push(sentence.to_owned());
            }
            start = cut;
        }
        if all {
            let rest = self.text[start..].trim();
            if !rest.is_empty() {
                out.push(rest.to_owned());
            }
            self.text.clear();
        } else {
            self.text.drain(..start);
        }
        out
    }
}

/// What the composer emits.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Text to show: a whole sentence, with the passages that support it
    /// and its support score.
    Delta {
        /// The text (with a leading space after the first sentence).
        text: String,
        /// Passage numbers cited.
        citations: Vec<u32>,
        /// Support score.
        support: f64,
    },
    /// The verification of a sentence.
    Check(SentenceCheck),
}

/// Turns generated sentences into the shown answer.
pub struct Composer<'a> {
    mode: AnswerMode,
    g: &'a Grounding,
    checks: Vec<SentenceCheck>,
    /// Term sets of every sentence generated or shown, for repeats.
    seen: Vec<HashSet<String>>,
    /// Evidence sentences (by candidate index) already quoted or matched
    /// by a shown sentence: not offered as replacements.
    quoted: HashSet<usize>,
    /// Evidence sentences quoted verbatim.
    shown_evidence: HashSet<usize>,
    shown: String,
    failures_in_row: usize,
    replacements: usize,
    /// The model's first sentence invented the kind of fact asked for and
    /// the evidence holds none: the answer is "not found".
    refused: bool,
}

/// Word-set similarity above which a sentence repeats another.
const REPEAT_JACCARD: f64 = 0.75;
/// Failed or repeated sentences in a row after which generation stops.
const MAX_FAILURES_IN_ROW: usize = 2;
/// Failed sentences replaced by evidence; later ones are dropped.
const MAX_REPLACEMENTS: usize = 1;

fn term_set(text: &str) -> HashSet<String> {
    quarry_ground::terms::terms(text).into_iter().collect()
}

fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let shared = a.intersection(b).count();
    let all = a.len() + b.len() - shared;
    if all == 0 {
        1.0
    } else {
        shared as f64 / all as f64
    }
}

/// Openings with which small models announce an answer ("The answer is:
/// 46%"): left off what is shown.
const ANSWER_OPENINGS: &[&str] = &[
    "the answer is:",
    "the answer is",
    "answer:",
    "the evidence is:",
    "the evidence says:",
];

/// A generated sentence as shown: without an announcing opening, starting
/// with a capital.
fn tidy(plain: &str) -> String {
    let lower = plain.to_lowercase();
    let rest = ANSWER_OPENINGS
        .iter()
        .find(|o| lower.starts_with(*o))
        .map_or(plain, |o| plain[o.len()..].trim_start());
    if rest.is_empty() {
        return plain.to_owned();
    }
    let mut chars = rest.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => plain.to_owned(),
    }
}

/// An evidence sentence as shown: in quotation marks, cited.
pub fn quote(s: &ScoredSentence) -> String {
    with_citations(&format!("“{}”", one_line(&s.text)), &[s.number])
}

impl<'a> Composer<'a> {
    /// A composer for one answer.
    pub fn new(mode: AnswerMode, grounding: &'a Grounding) -> Self {
        Self {
            mode,
            g: grounding,
            checks: Vec::new(),
            seen: Vec::new(),
            quoted: HashSet::new(),
            shown_evidence: HashSet::new(),
            shown: String::new(),
            failures_in_row: 0,
            replacements: 0,
            refused: false,
        }
    }

    /// Whether the answer was refused for lack of evidence (see
    /// [`Composer::sentence`]).
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// The text shown so far.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Every check so far.
    pub fn checks(&self) -> &[SentenceCheck] {
        &self.checks
    }

    /// The share of generated sentences that were supported, when the
    /// model wrote any.
    pub fn supported_share(&self) -> Option<f64> {
        let judged: Vec<&SentenceCheck> = self
            .checks
            .iter()
            .filter(|c| !c.generated.is_empty() && c.status != SentenceStatus::Repeated)
            .collect();
        (!judged.is_empty()).then(|| {
            judged
                .iter()
                .filter(|c| c.status == SentenceStatus::Supported)
                .count() as f64
                / judged.len() as f64
        })
    }

    /// How many sentences had `status`.
    pub fn count(&self, status: SentenceStatus) -> u32 {
        self.checks.iter().filter(|c| c.status == status).count() as u32
    }

    fn show(&mut self, text: String, citations: Vec<u32>, support: f64) -> Output {
        let text = if self.shown.is_empty() {
            text
        } else {
            format!(" {text}")
        };
        self.shown.push_str(&text);
        Output::Delta {
            text,
            citations,
            support,
        }
    }

    fn push_check(&mut self, mut check: SentenceCheck) -> Output {
        check.index = self.checks.len() as u32;
        self.checks.push(check.clone());
        Output::Check(check)
    }

    /// Quotes evidence sentence `s`.
    fn quote(
        &mut self,
        s: &ScoredSentence,
        status: SentenceStatus,
        generated: &str,
    ) -> Vec<Output> {
        self.quoted.insert(s.index);
        self.shown_evidence.insert(s.index);
        self.seen.push(term_set(&s.text));
        let shown = quote(s);
        let support = 1.0;
        let delta = self.show(shown.clone(), vec![s.number], support);
        let check = self.push_check(SentenceCheck {
            index: 0,
            generated: generated.to_owned(),
            shown,
            status,
            citations: vec![s.number],
            written_citations: Vec::new(),
            support,
            passage: s.number,
            unsupported_facts: Vec::new(),
        });
        vec![delta, check]
    }

    /// The extractive answer: the best evidence sentence, and the second
    /// when it scores nearly as well.
    pub fn extractive(&mut self) -> Vec<Output> {
        let cfg = self.g.config;
        let ranked = &self.g.evidence.ranked;
        let Some(best) = ranked.first() else {
            return Vec::new();
        };
        let mut picked = vec![best];
        for s in ranked.iter().skip(1) {
            if picked.len() >= cfg.extractive_sentences
                || s.score < cfg.extractive_second_ratio * best.score
            {
                break;
            }
            let terms = term_set(&s.text);
            if picked
                .iter()
                .all(|p| jaccard(&term_set(&p.text), &terms) < REPEAT_JACCARD)
            {
                picked.push(s);
            }
        }
        // In the passages' order, so that two sentences read as text.
        picked.sort_by_key(|s| (s.passage, s.index));
        let mut out = Vec::new();
        for s in picked {
            out.extend(self.quote(s, SentenceStatus::Quoted, ""));
        }
        out
    }

    /// One sentence the model wrote, with its embedding. Returns what to
    /// emit, and whether generation should stop (enough is shown, or the
    /// model keeps failing).
    pub fn sentence(&mut self, generated: &str, vector: &[f32]) -> (Vec<Output>, bool) {
        let check = self.g.verifier.check(generated, vector);
        let terms = term_set(&check.plain);
        let repeat = terms.is_empty()
            || self
                .seen
                .iter()
                .any(|s| jaccard(s, &terms) >= REPEAT_JACCARD);
        let passage = check
            .best_sentence
            .and_then(|i| self.g.numbers.get(self.g.verifier.references()[i].passage))
            .copied()
            .unwrap_or(0);
        let base = SentenceCheck {
            index: 0,
            generated: generated.to_owned(),
            shown: String::new(),
            status: SentenceStatus::Dropped,
            citations: check.citations.clone(),
            written_citations: check.written.clone(),
            support: check.support as f64,
            passage,
            unsupported_facts: check.missing.iter().map(|f| f.text().to_owned()).collect(),
        };
        let mut out = Vec::new();
        if self.mode == AnswerMode::Generative {
            let status = if check.supported {
                SentenceStatus::Supported
            } else {
                SentenceStatus::Unsupported
            };
            self.seen.push(terms);
            out.push(self.push_check(SentenceCheck {
                shown: generated.to_owned(),
                status,
                ..base
            }));
            return (out, false);
        }
        // Asked for a name the passages do not hold, a small model makes
        // one up. When the evidence is only moderately strong and the
        // model's first sentence names someone or something no passage
        // names, the passages most likely do not answer: quoting evidence
        // would show a true sentence that is not an answer. (Invented
        // numbers are no such sign: the model miscopies figures that the
        // evidence does hold.)
        let first = !self.checks.iter().any(|c| !c.generated.is_empty());
        let invented = check.missing.iter().any(|f| {
            answers_kind(f, &self.g.question)
                && matches!(f, Fact::Name { norm, .. } if !example_word(norm))
        });
        if first
            && !check.supported
            && invented
            && self.g.question.answer_type == AnswerType::Name
            && self
                .g
                .evidence
                .best()
                .is_some_and(|b| b.score < self.g.config.invention_refusal_below)
        {
            self.refused = true;
            out.push(self.push_check(SentenceCheck {
                status: SentenceStatus::Dropped,
                citations: Vec::new(),
                ..base
            }));
            return (out, true);
        }
        if repeat {
            out.push(self.push_check(SentenceCheck {
                status: SentenceStatus::Repeated,
                ..base
            }));
            self.failures_in_row += 1;
            return (out, self.stop());
        }
        self.seen.push(terms);
        if check.supported {
            if let Some(i) = check.best_sentence {
                self.quoted.insert(i);
            }
            let shown = with_citations(&tidy(&check.plain), &check.citations);
            out.push(self.show(shown.clone(), check.citations.clone(), check.support as f64));
            out.push(self.push_check(SentenceCheck {
                shown,
                status: SentenceStatus::Supported,
                ..base
            }));
            self.failures_in_row = 0;
            return (out, self.stop());
        }
        self.failures_in_row += 1;
        // The evidence sentence closest to what the model tried to say,
        // among the best few, if not shown yet.
        let replacement = (self.replacements < MAX_REPLACEMENTS)
            .then(|| {
                self.g
                    .evidence
                    .top(3, self.g.config.min_answer_score)
                    .into_iter()
                    .filter(|s| !self.quoted.contains(&s.index))
                    .max_by(|a, b| {
                        let sa = self.g.verifier.similarity(a.index, vector);
                        let sb = self.g.verifier.similarity(b.index, vector);
                        (sa + a.score).total_cmp(&(sb + b.score))
                    })
                    .cloned()
            })
            .flatten();
        match replacement {
            Some(s) => {
                self.replacements += 1;
                self.quoted.insert(s.index);
                self.shown_evidence.insert(s.index);
                let shown = quote(&s);
                out.push(self.show(shown.clone(), vec![s.number], check.support as f64));
                out.push(self.push_check(SentenceCheck {
                    shown,
                    status: SentenceStatus::Replaced,
                    citations: vec![s.number],
                    ..base
                }));
            }
            None => out.push(self.push_check(SentenceCheck {
                status: SentenceStatus::Dropped,
                citations: Vec::new(),
                ..base
            })),
        }
        (out, self.stop())
    }

    fn stop(&self) -> bool {
        let shown = self.checks.iter().filter(|c| !c.shown.is_empty()).count();
        shown >= self.g.config.max_shown_sentences
            || (shown > 0 && self.failures_in_row >= MAX_FAILURES_IN_ROW)
    }

    /// After the last sentence: a grounded answer that shows nothing, or
    /// holds none of the facts that the best evidence sentence adds to the
    /// question (of the kind the question asks for, or any when the kind
    /// is unknown), gets the best evidence sentence quoted. A small model
    /// often writes a true sentence that does not answer ("The answer is
    /// 2024.", a different elevation from the same passage); the quote
    /// makes sure the answer holds what the evidence says.
    pub fn finish(&mut self) -> Vec<Output> {
        if self.mode != AnswerMode::Grounded || !self.g.answerable || self.refused {
            return Vec::new();
        }
        let Some(best) = self.g.evidence.best().cloned() else {
            return Vec::new();
        };
        if self.shown_evidence.contains(&best.index) {
            return Vec::new();
        }
        let lacks = if self.shown.is_empty() {
            true
        } else {
            let wanted = answer_facts(&self.g.question, &best.text);
            let shown = FactSet::from_texts([self.shown.as_str()]);
            !wanted.is_empty() && !wanted.iter().any(|f| shown.contains(f))
        };
        if lacks {
            self.quote(&best, SentenceStatus::Quoted, "")
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; 8];
        v[i] = 1.0;
        v
    }

    fn passages() -> Vec<GroundPassage> {
        vec![
            GroundPassage {
                number: 1,
                title: "Greyhaven Lighthouse".into(),
                text: "The Greyhaven Lighthouse stands on the north cape. It was built in 1874 by the harbour board.".into(),
                similarity: 0.6,
            },
            GroundPassage {
                number: 2,
                title: "Tollen mine".into(),
                text: "The main shaft of the Tollen Copper Mine is 640 metres deep.".into(),
                similarity: 0.5,
            },
        ]
    }

    /// Each candidate sentence gets its own direction; the question points
    /// at `towards`.
    fn grounding(question: &str, towards: usize) -> Grounding {
        let p = passages();
        let c = Grounding::candidates(&p);
        let vectors: Vec<Vec<f32>> = (0..c.sentences.len()).map(unit).collect();
        let mut q = unit(towards);
        q[7] = 0.2;
        Grounding::new(
            question,
            &q,
            &HashMap::new(),
            &p,
            c,
            vectors,
            GroundingConfig::default(),
        )
    }

    fn deltas(out: &[Output]) -> String {
        out.iter()
            .filter_map(|o| match o {
                Output::Delta { text, .. } => Some(text.as_str()),
                Output::Check(_) => None,
            })
            .collect()
    }

    #[test]
    fn sentences_are_released_whole_with_their_markers() {
        let mut b = SentenceBuffer::default();
        let mut got = Vec::new();
        for piece in [
            "It was built",
            " in 1874.",
            " [",
            "1] The lamp",
            " is new [2]",
            ".",
        ] {
            b.push(piece);
            got.extend(b.complete());
        }
        assert_eq!(got, ["It was built in 1874. [1]"]);
        got.extend(b.finish());
        assert_eq!(got, ["It was built in 1874. [1]", "The lamp is new [2]."]);
        let mut b = SentenceBuffer::default();
        b.push("Only one sentence, no end");
        assert!(b.complete().is_empty());
        assert_eq!(b.finish(), ["Only one sentence, no end"]);
    }

    #[test]
    fn grounded_answers_keep_supported_sentences_and_replace_fabrications() {
        let g = grounding("When was the Greyhaven Lighthouse built?", 1);
        assert!(g.answerable);
        assert_eq!(
            g.evidence.best().unwrap().text,
            "It was built in 1874 by the harbour board."
        );
        let mut c = Composer::new(AnswerMode::Grounded, &g);
        // A fabricated year: never shown; the evidence is quoted instead.
        let (out, _) = c.sentence("The Greyhaven Lighthouse was built in 1901 [1].", &unit(1));
        assert_eq!(
            deltas(&out),
            "“It was built in 1874 by the harbour board.” [1]"
        );
        assert!(!c.shown().contains("1901"));
        assert_eq!(c.checks()[0].status, SentenceStatus::Replaced);
        assert_eq!(c.checks()[0].unsupported_facts, ["1901"]);
        // A true sentence with a wrong marker: shown, citation corrected.
        let (out, _) = c.sentence(
            "The main shaft of the Tollen Copper Mine is 640 metres deep [1].",
            &unit(2),
        );
        assert_eq!(
            deltas(&out),
            " The main shaft of the Tollen Copper Mine is 640 metres deep [2]."
        );
        assert_eq!(c.checks()[1].written_citations, [1]);
        assert_eq!(c.checks()[1].citations, [2]);
        // A repeat is dropped.
        let (out, _) = c.sentence(
            "The main shaft of the Tollen Copper Mine is 640 metres deep.",
            &unit(2),
        );
        assert_eq!(deltas(&out), "");
        assert_eq!(c.checks()[2].status, SentenceStatus::Repeated);
        assert!(c.finish().is_empty(), "the best evidence is already shown");
        assert_eq!(c.supported_share(), Some(0.5));
        assert_eq!(c.count(SentenceStatus::Replaced), 1);
    }

    #[test]
    fn an_answer_without_the_asked_fact_gets_the_evidence_quoted() {
        let g = grounding("When was the Greyhaven Lighthouse built?", 1);
        let mut c = Composer::new(AnswerMode::Grounded, &g);
        let (out, _) = c.sentence(
            "The Greyhaven Lighthouse stands on the north cape.",
            &unit(0),
        );
        assert_eq!(
            deltas(&out),
            "The Greyhaven Lighthouse stands on the north cape [1]."
        );
        let out = c.finish();
        assert_eq!(
            deltas(&out),
            " “It was built in 1874 by the harbour board.” [1]"
        );
        assert_eq!(c.checks().last().unwrap().status, SentenceStatus::Quoted);
    }

    #[test]
    fn a_true_sentence_that_does_not_answer_gets_the_evidence_too() {
        // The question's kind is unknown; the best evidence adds a year the
        // shown (supported) sentence lacks.
        let g = grounding(
            "What is known about the Greyhaven Lighthouse's construction?",
            1,
        );
        let mut c = Composer::new(AnswerMode::Grounded, &g);
        let (out, _) = c.sentence(
            "The answer is: the Greyhaven Lighthouse stands on the north cape.",
            &unit(0),
        );
        assert_eq!(
            deltas(&out),
            "The Greyhaven Lighthouse stands on the north cape [1]."
        );
        let out = c.finish();
        assert_eq!(
            deltas(&out),
            " “It was built in 1874 by the harbour board.” [1]"
        );
    }

    #[test]
    fn an_invented_name_on_moderate_evidence_is_refused() {
        let mut g = grounding("Who designed the Greyhaven Lighthouse?", 0);
        assert!(g.answerable, "{:?}", g.evidence.best());
        let best = g.evidence.best().unwrap().score;
        let invented = "The Greyhaven Lighthouse was designed by Henry Aldous [1].";
        // Evidence weaker than the bar: the invented name means "not found".
        g.config.invention_refusal_below = best + 0.01;
        let mut c = Composer::new(AnswerMode::Grounded, &g);
        let (out, stop) = c.sentence(invented, &unit(0));
        assert!(stop && c.refused());
        assert_eq!(deltas(&out), "");
        assert_eq!(c.checks()[0].status, SentenceStatus::Dropped);
        assert_eq!(c.checks()[0].unsupported_facts, ["Henry", "Aldous"]);
        assert!(c.finish().is_empty());
        // Strong evidence: the sentence is replaced by quoted evidence.
        g.config.invention_refusal_below = best - 0.01;
        let mut c = Composer::new(AnswerMode::Grounded, &g);
        let (out, _) = c.sentence(invented, &unit(0));
        assert!(!c.refused());
        assert!(deltas(&out).starts_with('“'), "{}", deltas(&out));
        // The example's own words are a repeat of the example, not an
        // invention; numbers are never taken as one.
        g.config.invention_refusal_below = 1.0;
        let mut c = Composer::new(AnswerMode::Grounded, &g);
        let _ = c.sentence("The Keld Gorge bridge opened to walkers [1].", &unit(0));
        assert!(!c.refused());
        let g = grounding("How deep is the main shaft of the Tollen Copper Mine?", 2);
        let mut c = Composer::new(AnswerMode::Grounded, &g);
        let _ = c.sentence("The main shaft is 910 metres deep [2].", &unit(2));
        assert!(!c.refused());
    }

    #[test]
    fn generative_answers_are_annotated_not_changed() {
        let g = grounding("When was the Greyhaven Lighthouse built?", 1);
        let mut c = Composer::new(AnswerMode::Generative, &g);
        let (out, stop) = c.sentence("It was built in 1901.", &unit(1));
        assert!(!stop);
        assert_eq!(deltas(&out), "");
        assert_eq!(c.checks()[0].status, SentenceStatus::Unsupported);
        assert!(c.finish().is_empty());
    }

    #[test]
    fn extractive_answers_quote_the_best_evidence() {
        let g = grounding("How deep is the main shaft of the Tollen Copper Mine?", 2);
        let mut c = Composer::new(AnswerMode::Extractive, &g);
        let out = c.extractive();
        assert!(deltas(&out)
            .starts_with("“The main shaft of the Tollen Copper Mine is 640 metres deep.” [2]"));
        assert!(c
            .checks()
            .iter()
            .all(|c| c.status == SentenceStatus::Quoted));
    }

    #[test]
    fn both_layouts_number_sentences_by_passage() {
        let mut g = grounding("When was the Greyhaven Lighthouse built?", 1);
        g.config.layout = EvidenceLayout::Ranked;
        let ranked = g.prompt_block(2, &|s| s.to_owned());
        assert!(ranked.starts_with("[1] It was built in 1874"), "{ranked}");
        g.config.layout = EvidenceLayout::Grouped;
        let grouped = g.prompt_block(3, &|s| s.to_owned());
        assert!(
            grouped.starts_with("[1] The Greyhaven Lighthouse stands"),
            "{grouped}"
        );
        assert!(grouped.contains("\n[2] The main shaft"), "{grouped}");
    }
}
