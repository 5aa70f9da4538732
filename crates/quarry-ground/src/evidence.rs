//! Evidence: every sentence of the retrieved passages scored against the
//! question, so that the model sees (and the answer quotes) the few
//! sentences that answer it, and so that a question the passages do not
//! answer is recognised before anything is generated.
//!
//! A sentence's score is a logistic model (weights fitted on the
//! developers' QA set with `scripts/tune_grounding.py`, checked on held-out
//! sets) over signals the caller and this module compute:
//! - `cosine`: the embedder's similarity of sentence and question (the
//!   caller embeds both, batched, on the model thread);
//! - `lexical`: the question's content terms found in the sentence, each
//!   weighted by how rare it is among the candidate sentences, with half
//!   credit for a term found only elsewhere in the same passage (a
//!   sentence that says "It was built in 1874." inherits its subject);
//! - `missing`: the weighted share of question terms its passage lacks
//!   altogether (a question about a captain is not answered by a passage
//!   that never mentions one);
//! - `answer_type`: whether the sentence holds the kind of thing the
//!   question asks for: a year for "what year", an amount of money for
//!   "how much does it cost", a count of the right thing for "how many
//!   species", a name for "who";
//! - `coverage`: the share of the question's own names and numbers that
//!   the sentence's passage contains ("Japan's rate in August 2025" is not
//!   answered by a passage about July);
//! - `passage_cosine` and `rank`: how the passage itself was retrieved.

use std::collections::{HashMap, HashSet};

use crate::facts::{facts, Fact, FactSet};
use crate::sentences::{split, SentenceKind};
use crate::terms::{stem, terms};

/// What kind of answer a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerType {
    /// A year ("what year", "in which year").
    Year,
    /// A date or a year ("when", "on what date").
    Date,
    /// A percentage or share.
    Percent,
    /// An amount of money ("how much does it cost").
    Money,
    /// A count ("how many"), of the thing the question names.
    Count,
    /// A measurement or any other number ("how tall", "how long").
    Number,
    /// A person, organisation, place or other named thing.
    Name,
    /// Anything else (a definition, a reason, a description).
    Other,
}

impl AnswerType {
    /// Whether the answer is a number of some kind.
    pub fn numeric(self) -> bool {
        !matches!(self, Self::Name | Self::Other)
    }
}

/// Question cues (lower case, whole words, near the start), most specific
/// first.
const CUES: &[(&str, AnswerType)] = &[
    ("what year", AnswerType::Year),
    ("which year", AnswerType::Year),
    ("what decade", AnswerType::Year),
    ("what century", AnswerType::Year),
    ("what date", AnswerType::Date),
    ("which date", AnswerType::Date),
    ("what day", AnswerType::Date),
    ("when", AnswerType::Date),
    ("what percentage", AnswerType::Percent),
    ("what percent", AnswerType::Percent),
    ("what share", AnswerType::Percent),
    ("what proportion", AnswerType::Percent),
    ("what fraction", AnswerType::Percent),
    ("how many", AnswerType::Count),
    ("what number", AnswerType::Count),
    ("what is the population", AnswerType::Count),
    ("what was the population", AnswerType::Count),
    ("what population", AnswerType::Count),
    ("what is the cost", AnswerType::Money),
    ("what was the cost", AnswerType::Money),
    ("what is the price", AnswerType::Money),
    ("what was the price", AnswerType::Money),
    ("what is the salary", AnswerType::Money),
    ("what does it cost", AnswerType::Money),
    ("how much", AnswerType::Number),
    ("how long", AnswerType::Number),
    ("how far", AnswerType::Number),
    ("how old", AnswerType::Number),
    ("how tall", AnswerType::Number),
    ("how big", AnswerType::Number),
    ("how deep", AnswerType::Number),
    ("how high", AnswerType::Number),
    ("how heavy", AnswerType::Number),
    ("how large", AnswerType::Number),
    ("how fast", AnswerType::Number),
    ("how wide", AnswerType::Number),
    ("how often", AnswerType::Number),
    ("how hot", AnswerType::Number),
    ("how cold", AnswerType::Number),
    ("what temperature", AnswerType::Number),
    ("what altitude", AnswerType::Number),
    ("what age", AnswerType::Number),
    ("what size", AnswerType::Number),
    ("what speed", AnswerType::Number),
    ("what is the average", AnswerType::Number),
    ("what was the average", AnswerType::Number),
    ("what rate", AnswerType::Number),
    ("who", AnswerType::Name),
    ("whom", AnswerType::Name),
    ("whose", AnswerType::Name),
    ("where", AnswerType::Name),
    ("which", AnswerType::Name),
    ("what is the name", AnswerType::Name),
    ("what was the name", AnswerType::Name),
    ("what company", AnswerType::Name),
    ("what country", AnswerType::Name),
    ("what city", AnswerType::Name),
];

/// Words after "how much" that ask for money.
const MONEY_WORDS: &[&str] = &[
    "cost", "costs", "pay", "paid", "worth", "price", "charge", "charged", "earn", "earned",
    "spend", "spent", "salary", "fee", "fees", "sell", "sold", "raise", "raised", "revenue",
    "make", "makes", "made", "buy", "bought", "money", "budget", "wage", "income",
];

/// Units of each kind of measurement (lower case, as written after a
/// number).
const LENGTH_UNITS: &[&str] = &[
    "m",
    "meter",
    "meters",
    "metre",
    "metres",
    "km",
    "kilometer",
    "kilometers",
    "kilometre",
    "kilometres",
    "cm",
    "centimeters",
    "centimetres",
    "mm",
    "millimeters",
    "millimetres",
    "ft",
    "feet",
    "foot",
    "in",
    "inch",
    "inches",
    "mi",
    "mile",
    "miles",
    "yard",
    "yards",
    "yd",
    "nm",
];
const SPEED_UNITS: &[&str] = &["mph", "kph", "kmh", "knots", "knot", "km/h", "m/s", "mps"];
const MASS_UNITS: &[&str] = &[
    "kg",
    "kilogram",
    "kilograms",
    "g",
    "gram",
    "grams",
    "mg",
    "milligrams",
    "lb",
    "lbs",
    "pound",
    "pounds",
    "ton",
    "tons",
    "tonnes",
    "tonne",
    "oz",
    "ounce",
    "ounces",
    "t",
];
const TIME_UNITS: &[&str] = &[
    "second",
    "seconds",
    "sec",
    "secs",
    "s",
    "minute",
    "minutes",
    "min",
    "mins",
    "hour",
    "hours",
    "hr",
    "hrs",
    "h",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "yr",
    "yrs",
    "decade",
    "decades",
    "century",
    "centuries",
];
const TEMPERATURE_UNITS: &[&str] = &[
    "degrees", "degree", "°", "°c", "°f", "c", "f", "kelvin", "k",
];

/// The units a "how ..." question's answer is measured in, if the
/// question says.
fn units_for(lower: &str) -> Option<Vec<&'static str>> {
    let w = words(lower);
    let has = |cue: &str| cue_at(&w, cue).is_some();
    let mut units: Vec<&'static str> = Vec::new();
    if has("how fast") || has("what speed") {
        units.extend(SPEED_UNITS);
        units.extend(["per", "miles", "kilometers", "kilometres"]);
    }
    if has("how tall")
        || has("how high")
        || has("how deep")
        || has("how far")
        || has("how wide")
        || has("what altitude")
    {
        units.extend(LENGTH_UNITS);
    }
    if has("how long") {
        units.extend(LENGTH_UNITS);
        units.extend(TIME_UNITS);
    }
    if has("how heavy") {
        units.extend(MASS_UNITS);
    }
    if has("how old") || has("what age") {
        units.extend(TIME_UNITS);
    }
    if has("how hot") || has("how cold") || has("what temperature") {
        units.extend(TEMPERATURE_UNITS);
    }
    (!units.is_empty()).then_some(units)
}

/// Words that frame a question's answer rather than say what it is about.
const FRAME_WORDS: &[&str] = &[
    "year",
    "years",
    "date",
    "day",
    "time",
    "percentage",
    "percent",
    "number",
    "amount",
    "long",
];

const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
];

/// A question, read once for scoring.
#[derive(Debug, Clone)]
pub struct Question {
    /// The question's distinct content terms.
    pub terms: Vec<String>,
    /// The names and numbers it holds.
    pub facts: Vec<Fact>,
    /// What it asks for.
    pub answer_type: AnswerType,
    /// For "how many X": the stem of X, which an answer's number should
    /// count.
    pub counted: Option<String>,
    /// For "how tall", "how fast"...: the units its answer comes in.
    pub units: Option<Vec<&'static str>>,
    /// Its terms that are not names, numbers or words that frame the
    /// question ("year", "number"): what it asks about.
    pub focus: Vec<String>,
    /// The focus terms with the words they came from.
    pub focus_words: Vec<(String, String)>,
    /// Each term's weight: how rare it is in the collection (empty: weigh
    /// by rarity among the candidate sentences).
    pub weights: HashMap<String, f32>,
}

fn words(lower: &str) -> Vec<&str> {
    lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Where the words of `cue` start within the first words of `w`.
fn cue_at(w: &[&str], cue: &str) -> Option<usize> {
    let cue: Vec<&str> = cue.split(' ').collect();
    w.windows(cue.len())
        .take(6)
        .position(|x| x == cue.as_slice())
}

impl Question {
    /// Reads a question, its terms weighted by `weight` (the collection's
    /// inverse document frequency of a word; `None` for a word it does not
    /// index).
    pub fn weighted(text: &str, weight: &dyn Fn(&str) -> Option<f32>) -> Self {
        let mut q = Self::new(text);
        for (term, word) in crate::terms::terms_with_words(text) {
            let w = weight(&word)
                .unwrap_or(MIN_TERM_WEIGHT)
                .max(MIN_TERM_WEIGHT);
            let e = q.weights.entry(term).or_insert(w);
            *e = e.max(w);
        }
        q
    }

    /// Reads a question.
    pub fn new(text: &str) -> Self {
        let lower = text.to_lowercase();
        let w = words(&lower);
        let mut seen = HashSet::new();
        let terms: Vec<String> = terms(text)
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect();
        let mut answer_type = AnswerType::Other;
        let mut counted = None;
        if let Some((at, kind)) = CUES
            .iter()
            .find_map(|(cue, kind)| cue_at(&w, cue).map(|at| (at, *kind)))
        {
            answer_type = kind;
            if lower.contains("how much") && w.iter().any(|x| MONEY_WORDS.contains(x)) {
                answer_type = AnswerType::Money;
            }
            if kind == AnswerType::Count && w.get(at) == Some(&"how") {
                counted = w
                    .get(at + 2)
                    .filter(|x| !crate::terms::is_stopword(x))
                    .map(|x| stem(x));
            }
        }
        let facts = facts(text);
        let named: HashSet<String> = facts
            .iter()
            .filter_map(|f| match f {
                Fact::Name { norm, .. } => Some(stem(norm)),
                Fact::Number { .. } => None,
            })
            .collect();
        let mut seen_focus = HashSet::new();
        let focus_words: Vec<(String, String)> = crate::terms::terms_with_words(text)
            .into_iter()
            .filter(|(t, w)| {
                !named.contains(t)
                    && !t.chars().next().is_some_and(|c| c.is_ascii_digit())
                    && !FRAME_WORDS.contains(&w.to_lowercase().as_str())
                    && seen_focus.insert(t.clone())
            })
            .collect();
        let focus = focus_words.iter().map(|(t, _)| t.clone()).collect();
        Self {
            terms,
            facts,
            answer_type,
            counted,
            units: units_for(&lower),
            focus,
            focus_words,
            weights: HashMap::new(),
        }
    }
}

/// A passage offered as evidence: its number in the answer's citations,
/// title, text, and how similar the retriever found it.
#[derive(Debug, Clone, Copy)]
pub struct PassageText<'a> {
    /// Its citation number, from 1.
    pub number: u32,
    /// The document's title (may be empty).
    pub title: &'a str,
    /// The passage.
    pub text: &'a str,
    /// Its cosine similarity to the question.
    pub similarity: f32,
}

/// One candidate sentence of the passages, with its signals.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredSentence {
    /// Index of the candidate (in [`Candidates::sentences`] order).
    pub index: usize,
    /// Index of its passage in the list given.
    pub passage: usize,
    /// Its passage's citation number.
    pub number: u32,
    /// The sentence, verbatim.
    pub text: String,
    /// What kind of span it is.
    pub kind: SentenceKind,
    /// Cosine similarity to the question.
    pub cosine: f32,
    /// Weighted share of question terms found.
    pub lexical: f32,
    /// Weighted share of the question's focus terms (not names) its
    /// passage lacks.
    pub missing: f32,
    /// How well it holds what the question asks for: 1 the right kind, 0.5
    /// a related kind (any number for a year question) or an unknown
    /// question kind, 0 nothing of the kind.
    pub answer_type: f32,
    /// Share of the question's names and numbers its passage holds.
    pub coverage: f32,
    /// Its passage's cosine similarity to the question.
    pub passage_cosine: f32,
    /// 1 / (1 + the passage's rank).
    pub rank: f32,
    /// How well its words match the question's focus words, 0 to 1: a
    /// focus word found (by stem) counts 1, else its best embedding cosine
    /// with a word of the sentence, scaled from 0 at cosine
    /// [`ALIGN_FLOOR`] to 1 at cosine 1. Computed for the best few
    /// sentences only ([`Evidence::align`]); 0.5 until then.
    pub alignment: f32,
    /// The probability-like score, 0 to 1.
    pub score: f32,
}

/// Word cosines at or below this count as no match in the alignment.
pub const ALIGN_FLOOR: f32 = 0.55;

/// Sentences re-scored with their alignment.
pub const ALIGNED: usize = 4;

/// The logistic model over a sentence's signals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvidenceWeights {
    /// The intercept.
    pub bias: f32,
    /// Weight of the cosine similarity.
    pub cosine: f32,
    /// Weight of the lexical overlap.
    pub lexical: f32,
    /// Weight of the missing-term share.
    pub missing: f32,
    /// Weight of the answer-type match.
    pub answer_type: f32,
    /// Weight of the question-fact coverage.
    pub coverage: f32,
    /// Weight of the passage's cosine.
    pub passage_cosine: f32,
    /// Weight of the passage's rank prior.
    pub rank: f32,
    /// Weight of the focus-word alignment.
    pub alignment: f32,
}

impl Default for EvidenceWeights {
    /// Fitted by `scripts/tune_grounding.py` on eval/qa/msmarco-5k-dev.jsonl
    /// and eval/qa/wfb.jsonl (docs/answers.md has the figures).
    fn default() -> Self {
        Self {
            bias: -5.222,
            cosine: 1.432,
            lexical: 1.373,
            missing: 0.079,
            answer_type: 1.039,
            coverage: 0.86,
            passage_cosine: 0.431,
            rank: 0.826,
            alignment: 2.21,
        }
    }
}

impl EvidenceWeights {
    /// The score of a sentence's signals, 0 to 1.
    pub fn score(&self, s: &ScoredSentence) -> f32 {
        let z = self.bias
            + self.cosine * s.cosine
            + self.lexical * s.lexical
            + self.missing * s.missing
            + self.answer_type * s.answer_type
            + self.coverage * s.coverage
            + self.passage_cosine * s.passage_cosine
            + self.rank * s.rank
            + self.alignment * s.alignment;
        1.0 / (1.0 + (-z).exp())
    }
}

/// The candidate sentences of some passages, before scoring: what the
/// caller embeds.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// Each candidate: passage index, citation number, text, kind.
    pub sentences: Vec<(usize, u32, String, SentenceKind)>,
}

/// Sentences shorter than this many words say too little to quote.
const MIN_WORDS: usize = 3;

impl Candidates {
    /// Splits the passages into candidate sentences (headings and very
    /// short fragments left out).
    pub fn of(passages: &[PassageText]) -> Self {
        let mut sentences = Vec::new();
        for (i, p) in passages.iter().enumerate() {
            for span in split(p.text) {
                let text = span.text(p.text);
                if span.kind == SentenceKind::Heading || text.split_whitespace().count() < MIN_WORDS
                {
                    continue;
                }
                sentences.push((i, p.number, text.to_owned(), span.kind));
            }
        }
        Self { sentences }
    }

    /// Keeps at most `keep` candidates for embedding: every sentence of the
    /// first `whole` passages (the retriever's best), then the others that
    /// score best on every signal but the cosine (which needs their
    /// vectors). For answers that must be fast (extractive): embedding is
    /// most of their cost.
    pub fn prune(
        &mut self,
        question: &Question,
        passages: &[PassageText],
        weights: &EvidenceWeights,
        whole: usize,
        keep: usize,
    ) {
        if self.sentences.len() <= keep {
            return;
        }
        let zero = vec![0.0; self.sentences.len()];
        let pre = Evidence::score(question, passages, self.clone(), &zero, weights);
        let mut chosen: HashSet<usize> = self
            .sentences
            .iter()
            .enumerate()
            .filter(|(_, s)| s.0 < whole)
            .map(|(i, _)| i)
            .collect();
        for s in &pre.ranked {
            if chosen.len() >= keep {
                break;
            }
            chosen.insert(s.index);
        }
        let mut i = 0;
        self.sentences.retain(|_| {
            i += 1;
            chosen.contains(&(i - 1))
        });
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sentences.is_empty()
    }

    /// The texts to embed, in order.
    pub fn texts(&self) -> Vec<String> {
        self.sentences.iter().map(|s| s.2.clone()).collect()
    }
}

/// The scored sentences of some passages, best first.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// Every candidate, best first.
    pub ranked: Vec<ScoredSentence>,
}

/// The least weight a question term gets.
const MIN_TERM_WEIGHT: f32 = 0.2;

/// Each question term's weight: the collection's rarity when the question
/// carries it, else the rarity among the candidate sentences.
fn term_weights(question: &Question, sentence_terms: &[HashSet<String>]) -> HashMap<String, f32> {
    let n = sentence_terms.len() as f32;
    question
        .terms
        .iter()
        .map(|t| {
            let w = question.weights.get(t).copied().unwrap_or_else(|| {
                let df = sentence_terms.iter().filter(|s| s.contains(t)).count() as f32;
                ((n + 1.0) / (df + 0.5)).ln()
            });
            (t.clone(), w.max(MIN_TERM_WEIGHT))
        })
        .collect()
}

/// Whether two facts are the same (value and kind, or word).
pub fn same_fact(a: &Fact, b: &Fact) -> bool {
    match (a, b) {
        (
            Fact::Number {
                value: x,
                percent: p,
                ..
            },
            Fact::Number {
                value: y,
                percent: q,
                ..
            },
        ) => p == q && (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        (Fact::Name { norm: x, .. }, Fact::Name { norm: y, .. }) => x == y,
        _ => false,
    }
}

fn is_year(f: &Fact) -> bool {
    matches!(f, Fact::Number { value, percent: false, decimals: 0, .. }
        if (1000.0..=2100.0).contains(value) && value.fract() == 0.0)
}

/// Adjectives of nationality, region and religion, by ending or by name.
const DEMONYM_ENDINGS: &[&str] = &["ish", "ese", "ian", "ean", "can"];
const DEMONYMS: &[&str] = &[
    "french",
    "dutch",
    "czech",
    "swiss",
    "greek",
    "thai",
    "welsh",
    "german",
    "roman",
    "soviet",
    "arab",
    "arabic",
    "israeli",
    "iraqi",
    "saudi",
    "pakistani",
    "bangladeshi",
    "nepali",
    "somali",
    "kuwaiti",
    "qatari",
    "omani",
    "yemeni",
    "afghan",
    "filipino",
    "latino",
    "latina",
    "hispanic",
    "european",
    "asian",
    "african",
    "american",
    "nordic",
    "baltic",
    "slavic",
    "catholic",
    "muslim",
    "jewish",
    "islamic",
    "hindu",
    "buddhist",
    "western",
    "eastern",
    "northern",
    "southern",
    "norse",
    "inuit",
    "maori",
];

/// Whether a name fact is an adjective of nationality or the like.
fn is_demonym(f: &Fact) -> bool {
    matches!(f, Fact::Name { norm, .. }
        if DEMONYMS.contains(&norm.as_str())
            || (norm.len() > 4 && DEMONYM_ENDINGS.iter().any(|e| norm.ends_with(e))))
}

/// Whether fact `f` is of the kind `question` asks for (a name for "who",
/// a year for "what year", any number for "how many"...): what an answer
/// would have to state.
pub fn answers_kind(f: &Fact, question: &Question) -> bool {
    question.answer_type != AnswerType::Other
        && !question.facts.iter().any(|q| same_fact(q, f))
        && fact_fit(f, question) >= 0.5
}

fn is_month(f: &Fact) -> bool {
    matches!(f, Fact::Name { norm, .. } if MONTHS.contains(&norm.as_str()))
}

/// How well fact `f` (not in the question) answers a question of `kind`:
/// 1 the right kind, 0.5 a related one, 0 not at all.
fn fact_fit(f: &Fact, question: &Question) -> f32 {
    let number = matches!(f, Fact::Number { .. });
    match question.answer_type {
        AnswerType::Year => {
            if is_year(f) {
                1.0
            } else if number {
                0.25
            } else {
                0.0
            }
        }
        AnswerType::Date => {
            if is_year(f) || is_month(f) {
                1.0
            } else if number {
                0.25
            } else {
                0.0
            }
        }
        AnswerType::Percent => match f {
            Fact::Number { percent: true, .. } => 1.0,
            Fact::Number { .. } => 0.5,
            Fact::Name { .. } => 0.0,
        },
        AnswerType::Money => match f {
            Fact::Number { money: true, .. } => 1.0,
            Fact::Number { .. } => 0.5,
            Fact::Name { .. } => 0.0,
        },
        AnswerType::Count => match f {
            Fact::Number { unit, .. } => {
                let counts = match (&question.counted, unit) {
                    (Some(c), Some(u)) => stem(u) == *c,
                    _ => false,
                };
                if counts {
                    1.0
                } else if is_year(f) {
                    0.25
                } else {
                    0.6
                }
            }
            Fact::Name { .. } => 0.0,
        },
        AnswerType::Number => match (f, &question.units) {
            (Fact::Number { unit: Some(u), .. }, Some(units)) if units.contains(&u.as_str()) => 1.0,
            (Fact::Number { unit: Some(_), .. }, None) if !is_year(f) => 1.0,
            (Fact::Number { .. }, _) => 0.5,
            (Fact::Name { .. }, _) => 0.0,
        },
        AnswerType::Name => {
            if number || is_month(f) {
                0.0
            } else if is_demonym(f) {
                // "British", "Chilean": they describe, they do not name the
                // person or place asked for.
                0.3
            } else {
                1.0
            }
        }
        AnswerType::Other => 0.5,
    }
}

/// The facts of `text` that the question does not already hold and that
/// could answer it (of a kind that fits the question at least half, or any
/// kind when the question's is unknown): the candidate answers in it.
pub fn answer_facts(question: &Question, text: &str) -> Vec<Fact> {
    facts(text)
        .into_iter()
        .filter(|f| !question.facts.iter().any(|q| same_fact(q, f)))
        .filter(|f| question.answer_type == AnswerType::Other || fact_fit(f, question) >= 0.5)
        .collect()
}

/// How well `text` holds what `question` asks for.
fn answer_fit(question: &Question, text: &str) -> f32 {
    if question.answer_type == AnswerType::Other {
        return 0.5;
    }
    facts(text)
        .iter()
        .filter(|f| !question.facts.iter().any(|q| same_fact(q, f)))
        .map(|f| fact_fit(f, question))
        .fold(0.0, f32::max)
}

impl Evidence {
    /// Scores `candidates` (from [`Candidates::of`] over `passages`)
    /// against `question`; `cosines[i]` is candidate i's similarity to the
    /// question.
    pub fn score(
        question: &Question,
        passages: &[PassageText],
        candidates: Candidates,
        cosines: &[f32],
        weights: &EvidenceWeights,
    ) -> Self {
        let sentence_terms: Vec<HashSet<String>> = candidates
            .sentences
            .iter()
            .map(|s| terms(&s.2).into_iter().collect())
            .collect();
        let passage_terms: Vec<HashSet<String>> = passages
            .iter()
            .map(|p| {
                terms(p.title)
                    .into_iter()
                    .chain(terms(p.text))
                    .collect::<HashSet<_>>()
            })
            .collect();
        let coverage: Vec<f32> = passages
            .iter()
            .map(|p| {
                let set = FactSet::from_texts([p.title, p.text]);
                if question.facts.is_empty() {
                    1.0
                } else {
                    question.facts.iter().filter(|f| set.contains(f)).count() as f32
                        / question.facts.len() as f32
                }
            })
            .collect();
        let w = term_weights(question, &sentence_terms);
        let total: f32 = w.values().sum();
        // What the question asks about (its words other than names) that the
        // passage never says.
        let focus_total: f32 = question.focus.iter().map(|t| w[t]).sum();
        let missing: Vec<f32> = passage_terms
            .iter()
            .map(|pt| {
                if focus_total > 0.0 {
                    question
                        .focus
                        .iter()
                        .filter(|t| !pt.contains(*t))
                        .map(|t| w[t])
                        .sum::<f32>()
                        / focus_total
                } else {
                    0.0
                }
            })
            .collect();
        let mut ranked: Vec<ScoredSentence> = candidates
            .sentences
            .into_iter()
            .enumerate()
            .map(|(i, (passage, number, text, kind))| {
                let lexical = if total > 0.0 {
                    question
                        .terms
                        .iter()
                        .map(|t| {
                            if sentence_terms[i].contains(t) {
                                w[t]
                            } else if passage_terms[passage].contains(t) {
                                0.5 * w[t]
                            } else {
                                0.0
                            }
                        })
                        .sum::<f32>()
                        / total
                } else {
                    0.0
                };
                let mut s = ScoredSentence {
                    index: i,
                    passage,
                    number,
                    answer_type: answer_fit(question, &text),
                    text,
                    kind,
                    cosine: cosines.get(i).copied().unwrap_or(0.0),
                    lexical,
                    missing: missing[passage],
                    coverage: coverage[passage],
                    passage_cosine: passages[passage].similarity,
                    rank: 1.0 / (1.0 + passage as f32),
                    alignment: 0.5,
                    score: 0.0,
                };
                s.score = weights.score(&s);
                s
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
        Self { ranked }
    }

    /// The words to embed for [`Evidence::align`]: the question's focus
    /// words, then the content words of the best [`ALIGNED`] sentences
    /// (each once).
    pub fn alignment_words(&self, question: &Question) -> Vec<String> {
        let mut words: Vec<String> = question
            .focus_words
            .iter()
            .map(|(_, w)| w.to_lowercase())
            .collect();
        let mut seen: HashSet<String> = words.iter().cloned().collect();
        for s in self.ranked.iter().take(ALIGNED) {
            for (t, w) in crate::terms::terms_with_words(&s.text) {
                let w = w.to_lowercase();
                if !t.chars().next().is_some_and(|c| c.is_ascii_digit()) && seen.insert(w.clone()) {
                    words.push(w);
                }
            }
        }
        words
    }

    /// Scores the best [`ALIGNED`] sentences again with their alignment to
    /// the question's focus words, given the vectors of
    /// [`Evidence::alignment_words`] (in that order), and re-sorts them.
    pub fn align(&mut self, question: &Question, vectors: &[Vec<f32>], weights: &EvidenceWeights) {
        let words = self.alignment_words(question);
        let vector: HashMap<&str, &[f32]> = words
            .iter()
            .map(String::as_str)
            .zip(vectors.iter().map(Vec::as_slice))
            .collect();
        let n = self.ranked.len().min(ALIGNED);
        for s in self.ranked.iter_mut().take(n) {
            let sentence: Vec<(String, String)> = crate::terms::terms_with_words(&s.text)
                .into_iter()
                .filter(|(t, _)| !t.chars().next().is_some_and(|c| c.is_ascii_digit()))
                .collect();
            s.alignment = if question.focus_words.is_empty() || sentence.is_empty() {
                1.0
            } else {
                let per_word: f32 = question
                    .focus_words
                    .iter()
                    .map(|(t, w)| {
                        if sentence.iter().any(|(st, _)| st == t) {
                            return 1.0;
                        }
                        let Some(fv) = vector.get(w.to_lowercase().as_str()) else {
                            return 0.0;
                        };
                        let best = sentence
                            .iter()
                            .filter_map(|(_, sw)| vector.get(sw.to_lowercase().as_str()))
                            .map(|sv| fv.iter().zip(sv.iter()).map(|(a, b)| a * b).sum::<f32>())
                            .fold(f32::MIN, f32::max);
                        ((best - ALIGN_FLOOR) / (1.0 - ALIGN_FLOOR)).clamp(0.0, 1.0)
                    })
                    .sum();
                per_word / question.focus_words.len() as f32
            };
            s.score = weights.score(s);
        }
        self.ranked[..n].sort_by(|a, b| b.score.total_cmp(&a.score));
    }

    /// The best sentence, if any.
    pub fn best(&self) -> Option<&ScoredSentence> {
        self.ranked.first()
    }

    /// The best `n` sentences whose score is at least `min_score`.
    pub fn top(&self, n: usize, min_score: f32) -> Vec<&ScoredSentence> {
        self.ranked
            .iter()
            .filter(|s| s.score >= min_score)
            .take(n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_know_what_they_ask_for() {
        for (q, t) in [
            ("How many lanterns are floated?", AnswerType::Count),
            ("When was the lighthouse built?", AnswerType::Date),
            ("What percentage of banks failed?", AnswerType::Percent),
            ("In what year did it open?", AnswerType::Year),
            ("How much does a yard of concrete cost?", AnswerType::Money),
            ("How much rain falls in May?", AnswerType::Number),
            ("How tall is the tree?", AnswerType::Number),
            ("Who built the oven?", AnswerType::Name),
            ("Where is the observatory?", AnswerType::Name),
            ("In which English town was she born?", AnswerType::Name),
            ("What is a monotonic function?", AnswerType::Other),
            ("How does photosynthesis work?", AnswerType::Other),
        ] {
            assert_eq!(Question::new(q).answer_type, t, "{q}");
        }
        assert_eq!(
            Question::new("How many species of fleas exist?").counted,
            Some(stem("species"))
        );
    }

    fn score(question: &str, passages: &[PassageText], cosines: &[f32]) -> Evidence {
        let q = Question::new(question);
        let c = Candidates::of(passages);
        Evidence::score(&q, passages, c, cosines, &EvidenceWeights::default())
    }

    #[test]
    fn the_sentence_with_the_answer_ranks_first() {
        let passages = [
            PassageText {
                number: 1,
                title: "Greyhaven Lighthouse",
                text: "The Greyhaven Lighthouse stands on the north cape. It was built in 1874 by the harbour board. Its lamp was electrified later.",
                similarity: 0.6,
            },
            PassageText {
                number: 2,
                title: "Other lighthouses",
                text: "Many lighthouses were built along the coast. Some are museums today.",
                similarity: 0.4,
            },
        ];
        // Equal cosines: the lexical, answer-type and coverage signals decide.
        let e = score(
            "When was the Greyhaven Lighthouse built?",
            &passages,
            &[0.5; 5],
        );
        let best = e.best().unwrap();
        assert_eq!(best.text, "It was built in 1874 by the harbour board.");
        assert_eq!(best.number, 1);
        assert_eq!(best.answer_type, 1.0);
        assert!(e.ranked.iter().all(|s| s.kind != SentenceKind::Heading));
    }

    #[test]
    fn a_passage_without_the_questions_names_or_terms_scores_lower() {
        let passages = [PassageText {
            number: 1,
            title: "",
            text: "Japan's unemployment rate was 2.3% in July 2025. It fell from 2.5%.",
            similarity: 0.7,
        }];
        let asked = score(
            "What was Japan's unemployment rate in July 2025?",
            &passages,
            &[0.7, 0.4],
        );
        let off = score(
            "What was Japan's unemployment rate in August 2025?",
            &passages,
            &[0.7, 0.4],
        );
        assert_eq!(asked.best().unwrap().coverage, 1.0);
        assert!(off.best().unwrap().coverage < 1.0);
        assert!(off.best().unwrap().score < asked.best().unwrap().score);
    }

    #[test]
    fn alignment_rewards_the_sentence_that_says_what_was_asked() {
        let passages = [PassageText {
            number: 1,
            title: "",
            text: "The Lusitania was a liner sunk in 1915. Its captain was William Turner.",
            similarity: 0.7,
        }];
        let q = Question::new("Who was the captain of the Lusitania?");
        let c = Candidates::of(&passages);
        let weights = EvidenceWeights::default();
        // The first sentence is (made) more similar; alignment decides.
        let mut e = Evidence::score(&q, &passages, c, &[0.8, 0.5], &weights);
        let words = e.alignment_words(&q);
        assert_eq!(words[0], "captain");
        // Orthogonal word vectors: only exact stems align.
        let vectors: Vec<Vec<f32>> = (0..words.len())
            .map(|i| (0..words.len()).map(|j| f32::from(i == j)).collect())
            .collect();
        e.align(&q, &vectors, &weights);
        let best = e.best().unwrap();
        assert_eq!(best.text, "Its captain was William Turner.");
        assert_eq!(best.alignment, 1.0);
        assert_eq!(e.ranked[1].alignment, 0.0);
    }

    #[test]
    fn pruning_keeps_the_best_passages_and_the_likeliest_others() {
        let passages = [
            PassageText {
                number: 1,
                title: "",
                text: "One sentence here. Another sentence there.",
                similarity: 0.6,
            },
            PassageText {
                number: 2,
                title: "",
                text: "The mine closed in 1971 after a fire. Weather was mild that spring. Cats slept on the porch all day.",
                similarity: 0.5,
            },
        ];
        let q = Question::new("When did the mine close?");
        let mut c = Candidates::of(&passages);
        c.prune(&q, &passages, &EvidenceWeights::default(), 1, 3);
        let texts: Vec<&str> = c.sentences.iter().map(|s| s.2.as_str()).collect();
        assert_eq!(
            texts,
            [
                "One sentence here.",
                "Another sentence there.",
                "The mine closed in 1971 after a fire."
            ]
        );
    }

    #[test]
    fn nationalities_do_not_answer_who() {
        let q = Question::new("Who was the captain of the Lusitania?");
        assert!(answer_facts(&q, "The Lusitania was a British ship.").is_empty());
        assert_eq!(
            answer_facts(&q, "Its captain was William Turner.")
                .iter()
                .map(|f| f.text().to_owned())
                .collect::<Vec<_>>(),
            ["William", "Turner"]
        );
    }

    #[test]
    fn answer_facts_are_new_facts_of_the_asked_kind() {
        let q = Question::new("How deep is the mine built in 1874?");
        let found: Vec<String> = answer_facts(&q, "The 1874 mine is 640 m deep.")
            .iter()
            .map(|f| f.text().to_owned())
            .collect();
        assert_eq!(found, ["640"]);
        let q = Question::new("How many species of fleas are there?");
        assert_eq!(answer_fit(&q, "There are 2,500 species of fleas."), 1.0);
        assert!(answer_fit(&q, "Fleas are 1-2 mm long.") < 1.0);
        let q = Question::new("How fast can a bluefin tuna swim?");
        assert_eq!(answer_fit(&q, "It swims at 43 mph."), 1.0);
        assert!(answer_fit(&q, "The bluefin averages 2 m.") < 1.0);
        assert_eq!(
            q.focus,
            [stem("fast"), stem("bluefin"), stem("tuna"), stem("swim")]
        );
        let q = Question::new("What year did Du Pont invent nylon?");
        assert_eq!(answer_fit(&q, "Du Pont invented nylon in 1938."), 1.0);
        assert!(answer_fit(&q, "It costs $5.") < 1.0);
    }
}
