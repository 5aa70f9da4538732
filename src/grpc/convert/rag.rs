//! Conversions of Ask requests and events (History's records are in
//! `history.rs`).

use quarry_core::{
    AnswerMode, CollectionName, EvidenceSentence, InvalidArgument, SentenceCheck, SentenceStatus,
    Timings, UsedCitation,
};
use quarry_engine::{
    AskDone, AskEvent, AskFinish, AskRequest, Citation, Delta, GenerationOptions, Mode,
};

use super::documents::filter_from_proto;
use crate::proto;

fn mode_from_proto(mode: i32) -> Result<Mode, InvalidArgument> {
    match proto::SearchMode::try_from(mode) {
        Ok(proto::SearchMode::Unspecified | proto::SearchMode::Hybrid) => Ok(Mode::Hybrid),
        Ok(proto::SearchMode::Dense) => Ok(Mode::Dense),
        Ok(proto::SearchMode::Keyword) => Ok(Mode::Keyword),
        Err(_) => Err(InvalidArgument::new(
            "mode",
            format!("{mode} is not a SearchMode"),
        )),
    }
}

/// An answer mode field (`field` names it in errors); unset is GROUNDED.
pub fn answer_mode_from_proto(mode: i32, field: &str) -> Result<AnswerMode, InvalidArgument> {
    match proto::AnswerMode::try_from(mode) {
        Ok(proto::AnswerMode::Unspecified | proto::AnswerMode::Grounded) => {
            Ok(AnswerMode::Grounded)
        }
        Ok(proto::AnswerMode::Extractive) => Ok(AnswerMode::Extractive),
        Ok(proto::AnswerMode::Generative) => Ok(AnswerMode::Generative),
        Err(_) => Err(InvalidArgument::new(
            field,
            format!("{mode} is not an AnswerMode (1 GROUNDED, 2 EXTRACTIVE, 3 GENERATIVE)"),
        )),
    }
}

pub(super) fn answer_mode_to_proto(mode: AnswerMode) -> proto::AnswerMode {
    match mode {
        AnswerMode::Grounded => proto::AnswerMode::Grounded,
        AnswerMode::Extractive => proto::AnswerMode::Extractive,
        AnswerMode::Generative => proto::AnswerMode::Generative,
    }
}

fn status_to_proto(s: SentenceStatus) -> proto::SentenceStatus {
    match s {
        SentenceStatus::Supported => proto::SentenceStatus::Supported,
        SentenceStatus::Replaced => proto::SentenceStatus::Replaced,
        SentenceStatus::Dropped => proto::SentenceStatus::Dropped,
        SentenceStatus::Unsupported => proto::SentenceStatus::Unsupported,
        SentenceStatus::Quoted => proto::SentenceStatus::Quoted,
        SentenceStatus::Repeated => proto::SentenceStatus::Repeated,
    }
}

impl From<SentenceCheck> for proto::SentenceCheck {
    fn from(c: SentenceCheck) -> Self {
        let SentenceCheck {
            index,
            generated,
            shown,
            status,
            citations,
            written_citations,
            support,
            passage,
            unsupported_facts,
        } = c;
        Self {
            index,
            generated,
            shown,
            status: status_to_proto(status) as i32,
            citations,
            written_citations,
            support,
            passage,
            unsupported_facts,
        }
    }
}

impl From<EvidenceSentence> for proto::EvidenceSentence {
    fn from(e: EvidenceSentence) -> Self {
        let EvidenceSentence {
            passage,
            text,
            score,
        } = e;
        Self {
            passage,
            text,
            score,
        }
    }
}

impl From<proto::GenerationParams> for GenerationOptions {
    fn from(g: proto::GenerationParams) -> Self {
        let proto::GenerationParams {
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            seed,
            stop,
        } = g;
        Self {
            max_new_tokens: max_new_tokens.map(|n| n as usize),
            temperature,
            top_k: top_k.map(|k| k as usize),
            top_p,
            repetition_penalty,
            seed,
            stop,
        }
    }
}

/// An Ask request, who asks, and until when the client waits.
pub fn ask_from_proto(
    req: proto::AskRequest,
    principal: String,
    deadline: Option<std::time::Instant>,
) -> Result<AskRequest, InvalidArgument> {
    let proto::AskRequest {
        collection,
        question,
        session_id,
        top_k,
        filter,
        mode,
        generation,
        answer_mode,
        history,
    } = req;
    Ok(AskRequest {
        answer_mode: answer_mode_from_proto(answer_mode, "answer_mode")?,
        collection: CollectionName::parse_field(&collection, "collection")?,
        question,
        session_id: (!session_id.is_empty()).then_some(session_id),
        history: history
            .into_iter()
            .map(|t| (t.question, t.answer))
            .collect(),
        top_k: top_k as usize,
        filter: filter.map(|f| filter_from_proto(f, "filter")).transpose()?,
        mode: mode_from_proto(mode)?,
        generation: generation.map(Into::into).unwrap_or_default(),
        principal,
        deadline,
    })
}

pub(super) fn finish_to_proto(f: AskFinish) -> proto::FinishReason {
    match f {
        AskFinish::Stop => proto::FinishReason::Stop,
        AskFinish::Length => proto::FinishReason::Length,
        AskFinish::StopSequence => proto::FinishReason::StopSequence,
        AskFinish::NoContext => proto::FinishReason::NoContext,
        AskFinish::NotSupported => proto::FinishReason::NotSupported,
        AskFinish::Cancelled => proto::FinishReason::Cancelled,
        // The answer is cut short like a cancelled one; the log has why.
        AskFinish::Failed => proto::FinishReason::Cancelled,
    }
}

impl From<Timings> for proto::AskTimings {
    fn from(t: Timings) -> Self {
        Self {
            retrieve_ms: t.retrieve_ms,
            prefill_ms: t.prefill_ms,
            first_token_ms: t.first_token_ms,
            total_ms: t.total_ms,
        }
    }
}

impl From<UsedCitation> for proto::UsedCitation {
    fn from(c: UsedCitation) -> Self {
        Self {
            number: c.number,
            chunk_id: c.chunk_id,
            document_id: c.document_id,
        }
    }
}

impl From<Citation> for proto::Citation {
    fn from(c: Citation) -> Self {
        let Citation {
            number,
            chunk_id,
            document_id,
            title,
            snippet,
            score,
            dense_score,
            keyword_score,
        } = c;
        Self {
            number,
            chunk_id,
            document_id,
            title,
            snippet,
            score,
            dense_score,
            keyword_score,
        }
    }
}

impl From<AskEvent> for proto::AskEvent {
    fn from(e: AskEvent) -> Self {
        use proto::ask_event::Event;
        let event = match e {
            AskEvent::Citations(c) => Event::Citations(proto::Citations {
                citations: c.into_iter().map(Into::into).collect(),
            }),
            AskEvent::Delta(Delta {
                text,
                citations,
                support,
            }) => Event::Delta(proto::Delta {
                text,
                citations,
                support,
            }),
            AskEvent::Check(c) => Event::Check(c.into()),
            AskEvent::Done(d) => {
                let AskDone {
                    record_id,
                    finish,
                    prompt_tokens,
                    answer_tokens,
                    timings,
                    used,
                    invalid_citations,
                    model,
                    answer_mode,
                    supported_share,
                    replaced_sentences,
                    dropped_sentences,
                } = d;
                Event::Done(proto::Done {
                    record_id: record_id.to_string(),
                    finish_reason: finish_to_proto(finish) as i32,
                    prompt_tokens,
                    answer_tokens,
                    timings: Some(timings.into()),
                    used_citations: used.into_iter().map(Into::into).collect(),
                    invalid_citations,
                    model,
                    answer_mode: answer_mode_to_proto(answer_mode) as i32,
                    supported_share,
                    replaced_sentences,
                    dropped_sentences,
                })
            }
        };
        Self { event: Some(event) }
    }
}
