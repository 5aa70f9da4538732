//! Grounding: what makes an answer's every sentence checkable against the
//! passages it was drawn from.
//!
//! Pure functions over text (and over vectors the caller computed), so
//! that every rule is unit- and property-tested without a model:
//! - [`sentences`]: a sentence segmenter for retrieved passages and model
//!   output (abbreviations, decimals, list items, headings);
//! - [`facts`]: the numbers, amounts, percentages, years and names a
//!   sentence asserts, normalised so that "$5.5 trillion" matches
//!   "5.5 trillion" and "40 percent" matches "40%";
//! - [`terms`]: content words for lexical overlap;
//! - [`evidence`]: scoring every passage sentence against the question;
//! - [`verify`]: checking a generated sentence against the passages and
//!   choosing the passage it cites.

pub mod evidence;
pub mod facts;
pub mod sentences;
pub mod terms;
pub mod verify;

pub use evidence::{
    answer_facts, answers_kind, AnswerType, Candidates, Evidence, EvidenceWeights, PassageText,
    Question, ScoredSentence,
};
pub use facts::{Fact, FactSet};
pub use sentences::{split, SentenceKind, Span};
pub use verify::{markers, with_citations, Check, CitationChange, Verifier, VerifyConfig};
