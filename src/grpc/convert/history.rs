//! Conversions of History's records, their filters and page requests.

use quarry_core::{InvalidArgument, Record, RecordId};
use quarry_engine::{AskFinish, RecordFilter, RecordSelector};

use super::rag::{answer_mode_from_proto, answer_mode_to_proto, finish_to_proto};
use crate::proto;

impl From<Record> for proto::Record {
    fn from(r: Record) -> Self {
        let Record {
            id,
            created_at,
            collection,
            question,
            answer,
            session_id,
            principal,
            retrieved,
            prompt,
            citations,
            generator_model,
            embedding_model,
            generation_json,
            prompt_tokens,
            answer_tokens,
            timings,
            finish_reason,
            rating,
            comment,
            previous_record_id,
            answer_mode,
            generated_answer,
            evidence,
            sentences,
            supported_share,
            replaced_sentences,
            dropped_sentences,
        } = r;
        // Parameters are stored as JSON so that new ones need no migration.
        let g: serde_json::Value = serde_json::from_str(&generation_json).unwrap_or_default();
        let generation = g.is_object().then(|| proto::GenerationParams {
            max_new_tokens: g["max_new_tokens"].as_u64().map(|v| v as u32),
            temperature: g["temperature"].as_f64().map(|v| v as f32),
            top_k: g["top_k"].as_u64().map(|v| v as u32),
            top_p: g["top_p"].as_f64().map(|v| v as f32),
            repetition_penalty: g["repetition_penalty"].as_f64().map(|v| v as f32),
            seed: g["seed"].as_u64(),
            stop: g["stop"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        });
        Self {
            id: id.to_string(),
            question,
            answer,
            session_id,
            created_at,
            collection,
            principal,
            retrieved: retrieved
                .into_iter()
                .map(|c| proto::RetrievedChunk {
                    chunk_id: c.chunk_id,
                    document_id: c.document_id,
                    score: c.score,
                })
                .collect(),
            prompt,
            citations: citations.into_iter().map(Into::into).collect(),
            generator_model,
            embedding_model,
            generation,
            prompt_tokens,
            answer_tokens,
            timings: Some(timings.into()),
            finish_reason: AskFinish::parse(&finish_reason)
                .map_or(proto::FinishReason::Unspecified, finish_to_proto)
                as i32,
            rating,
            comment,
            previous_record_id: previous_record_id
                .map(|p| p.to_string())
                .unwrap_or_default(),
            answer_mode: answer_mode_to_proto(answer_mode) as i32,
            generated_answer,
            evidence: evidence.into_iter().map(Into::into).collect(),
            sentences: sentences.into_iter().map(Into::into).collect(),
            supported_share,
            replaced_sentences,
            dropped_sentences,
        }
    }
}

/// The shared filters of ListRecords and ExportRecords.
pub fn record_filter_from_proto(
    f: Option<proto::RecordFilter>,
) -> Result<RecordFilter, InvalidArgument> {
    let Some(proto::RecordFilter {
        collection,
        session_id,
        created_after,
        created_before,
        min_rating,
        max_rating,
        text_contains,
        rated,
        unsupported,
        answer_mode,
        finish_reason,
    }) = f
    else {
        return Ok(RecordFilter::default());
    };
    let some = |s: String| (!s.is_empty()).then_some(s);
    let answer_mode = match answer_mode {
        0 => None,
        m => Some(answer_mode_from_proto(m, "filter.answer_mode")?),
    };
    let finish_reason = match proto::FinishReason::try_from(finish_reason) {
        Ok(proto::FinishReason::Unspecified) => None,
        Ok(r) => Some(finish_from_proto(r).as_str().to_owned()),
        Err(_) => {
            return Err(InvalidArgument::new(
                "filter.finish_reason",
                format!("{finish_reason} is not a FinishReason"),
            ))
        }
    };
    Ok(RecordFilter {
        unsupported,
        answer_mode,
        finish_reason,
        collection: some(collection),
        session_id: some(session_id),
        created_after,
        created_before,
        min_rating,
        max_rating,
        text_contains: some(text_contains),
        rated,
        principal: None,
    })
}

fn finish_from_proto(r: proto::FinishReason) -> AskFinish {
    match r {
        proto::FinishReason::Unspecified | proto::FinishReason::Stop => AskFinish::Stop,
        proto::FinishReason::Length => AskFinish::Length,
        proto::FinishReason::StopSequence => AskFinish::StopSequence,
        proto::FinishReason::NoContext => AskFinish::NoContext,
        proto::FinishReason::NotSupported => AskFinish::NotSupported,
        proto::FinishReason::Cancelled => AskFinish::Cancelled,
    }
}

/// A ListRecords request: filters, page size, page token.
pub fn list_from_proto(
    req: proto::ListRecordsRequest,
) -> Result<(RecordFilter, usize, String), InvalidArgument> {
    let proto::ListRecordsRequest {
        collection,
        session_id,
        page_size,
        page_token,
        filter,
    } = req;
    let mut f = record_filter_from_proto(filter)?;
    // The request's own fields and the filter's must not disagree.
    for (field, outer, inner) in [
        ("collection", collection, &mut f.collection),
        ("session_id", session_id, &mut f.session_id),
    ] {
        if outer.is_empty() {
            continue;
        }
        match inner {
            Some(v) if *v != outer => {
                return Err(InvalidArgument::new(
                    field,
                    format!("is {outer:?} but filter.{field} is {v:?}"),
                ))
            }
            _ => *inner = Some(outer),
        }
    }
    Ok((f, page_size as usize, page_token))
}

/// A record id field.
pub fn record_id(id: &str, field: &str) -> Result<RecordId, InvalidArgument> {
    id.parse::<RecordId>()
        .map_err(|e| InvalidArgument::new(field, e.reason))
}

/// A DeleteRecords request.
pub fn delete_from_proto(
    req: proto::DeleteRecordsRequest,
) -> Result<RecordSelector, InvalidArgument> {
    let proto::DeleteRecordsRequest { ids, session_id } = req;
    match (ids.is_empty(), session_id.is_empty()) {
        (false, true) => Ok(RecordSelector::Ids(
            ids.iter()
                .enumerate()
                .map(|(i, id)| record_id(id, &format!("ids[{i}]")))
                .collect::<Result<_, _>>()?,
        )),
        (true, false) => Ok(RecordSelector::Session(session_id)),
        (false, false) => Err(InvalidArgument::new(
            "session_id",
            "set ids or session_id, not both",
        )),
        (true, true) => Err(InvalidArgument::new(
            "ids",
            "set ids (records to delete) or session_id (a whole conversation)",
        )),
    }
}
