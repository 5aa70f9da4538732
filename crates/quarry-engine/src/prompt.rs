//! The blocking preparation of an Ask: the relevance gate over the
//! retrieved hits, the session's earlier turns, the numbered passages, and
//! the two prompts: whole passages packed into the model's window
//! (generative mode) and numbered evidence sentences (grounded mode).

use std::collections::HashMap;

use quarry_core::{AnswerMode, InvalidArgument, RecordId};
use quarry_generate::{GenerateQueue, Message};

use crate::ask::{AskRequest, SYSTEM_PROMPT};
use crate::context::{self, Candidate};
use crate::grounding::{GroundPassage, Grounding, GROUNDED_EXAMPLE, GROUNDED_SYSTEM_PROMPT};
use crate::storage::CollectionStorage;
use crate::{Result, SearchHit};

/// Tokens kept free between the packed prompt and the context window:
/// the template's joins can tokenize a little differently from the parts.
const PROMPT_SLACK: usize = 16;

/// A passage given to the answer: its number, the hit, the text given
/// (the whole chunk, or its first sentences when packing cut it) and its
/// cosine similarity to the question.
#[derive(Debug, Clone)]
pub(crate) struct Given {
    pub number: u32,
    pub hit: SearchHit,
    pub text: String,
    pub similarity: f64,
}

/// What the blocking part of an Ask prepares.
pub(crate) struct Prepared {
    /// The passages given, numbered from 1.
    pub given: Vec<Given>,
    /// The generative prompt (empty in the other modes, or when nothing
    /// relevant was found).
    pub prompt: String,
    /// The session's earlier turns, oldest first.
    pub turns: Vec<Message>,
    /// The session's newest record.
    pub previous: Option<RecordId>,
    /// How rare each word of the question is in the collection.
    pub word_weights: HashMap<String, f32>,
}

impl Prepared {
    /// The passages as the grounding reads them.
    pub fn ground_passages(&self) -> Vec<GroundPassage> {
        self.given
            .iter()
            .map(|g| GroundPassage {
                number: g.number,
                title: g.hit.title.clone(),
                text: g.text.clone(),
                similarity: g.similarity as f32,
            })
            .collect()
    }
}

/// The blocking part of an Ask: the relevance gate, the session's earlier
/// turns, numbering (near-duplicates dropped) and, in generative mode,
/// packing and rendering.
pub(crate) fn prepare(
    inner: &crate::Inner,
    coll: &dyn CollectionStorage,
    queue: Option<&GenerateQueue>,
    req: &AskRequest,
    hits: Vec<SearchHit>,
    vector: &[f32],
    max_new_tokens: usize,
) -> Result<Prepared> {
    let cfg = &inner.ask;
    let count = |text: &str| {
        queue
            .and_then(|q| q.count_tokens(text).ok())
            .unwrap_or(usize::MAX / 4)
    };
    // Cosine similarity of every hit (stored vectors are normalised), also
    // for hits only the keyword retriever found.
    let mut relevant = Vec::new();
    for hit in hits {
        let sim = match hit.dense {
            Some((_, s)) => s as f64,
            None => match coll.vector(hit.chunk_id)? {
                Some(v) => v.iter().zip(vector).map(|(a, b)| a * b).sum::<f32>() as f64,
                None => continue,
            },
        };
        if sim >= cfg.min_similarity as f64 {
            relevant.push((hit, sim));
        }
    }

    let mut previous = None;
    let mut turns: Vec<Message> = Vec::new();
    if let Some(session) = &req.session_id {
        let mut used = 0;
        let records = inner.storage.records();
        for id in records.session_ids(session) {
            let record = records.get(id?)?;
            previous.get_or_insert(record.id);
            let Some(queue) = queue else { break };
            if record.answer.trim().is_empty() {
                continue;
            }
            let cost = count(&record.question) + count(&record.answer);
            if used + cost > cfg.history_tokens {
                break;
            }
            used += cost;
            turns.push(Message::new("assistant", queue.defuse(&record.answer)));
            turns.push(Message::new("user", queue.defuse(&record.question)));
        }
        turns.reverse();
    } else if let Some(queue) = queue {
        // The client's own turns, newest first into the same budget.
        let mut used = 0;
        for (question, answer) in req.history.iter().rev() {
            if answer.trim().is_empty() {
                continue;
            }
            let cost = count(question) + count(answer);
            if used + cost > cfg.history_tokens {
                break;
            }
            used += cost;
            turns.push(Message::new("assistant", queue.defuse(answer)));
            turns.push(Message::new("user", queue.defuse(question)));
        }
        turns.reverse();
    }
    let mut prepared = Prepared {
        given: Vec::new(),
        prompt: String::new(),
        turns,
        previous,
        word_weights: HashMap::new(),
    };
    if relevant.is_empty() {
        return Ok(prepared);
    }
    let words: Vec<String> = quarry_ground::terms::terms_with_words(&req.question)
        .into_iter()
        .map(|(_, w)| w)
        .collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let weights = coll.word_weights(&refs)?;
    prepared.word_weights = words
        .into_iter()
        .zip(weights)
        .filter_map(|(w, x)| x.map(|x| (w, x)))
        .collect();
    match (req.answer_mode, queue) {
        (AnswerMode::Generative, Some(queue)) => {
            let (given, prompt) = pack_passages(
                queue,
                &prepared.turns,
                req,
                &relevant,
                max_new_tokens,
                &count,
            )?;
            prepared.given = given;
            prepared.prompt = prompt;
        }
        _ => {
            // Evidence comes from sentences, not from the packed window:
            // every relevant passage is given, near-duplicates dropped.
            for (hit, sim) in relevant {
                if prepared
                    .given
                    .iter()
                    .any(|g| context::near_duplicate(&g.text, &hit.text))
                {
                    continue;
                }
                prepared.given.push(Given {
                    number: prepared.given.len() as u32 + 1,
                    text: hit.text.trim().to_owned(),
                    hit,
                    similarity: sim,
                });
            }
        }
    }
    Ok(prepared)
}

/// The generative prompt: the system instructions, the session's turns,
/// and as many whole passages as fit the window.
fn pack_passages(
    queue: &GenerateQueue,
    turns: &[Message],
    req: &AskRequest,
    relevant: &[(SearchHit, f64)],
    max_new_tokens: usize,
    count: &dyn Fn(&str) -> usize,
) -> Result<(Vec<Given>, String)> {
    let messages = |passages: &str| {
        let mut m = vec![Message::new("system", SYSTEM_PROMPT)];
        m.extend(turns.iter().cloned());
        m.push(Message::new(
            "user",
            format!(
                "Passages:\n{passages}Question: {}",
                queue.defuse(req.question.trim())
            ),
        ));
        m
    };
    let frame = queue.render(&messages(""))?;
    let overhead = count(&frame) + 1 + PROMPT_SLACK;
    let window = queue.context_length();
    let budget = window.saturating_sub(max_new_tokens + overhead);
    // Defused before packing, so that the token counts are the prompt's.
    let safe: Vec<(String, String)> = relevant
        .iter()
        .map(|(h, _)| {
            (
                queue.defuse(&h.title).into_owned(),
                queue.defuse(&h.text).into_owned(),
            )
        })
        .collect();
    let candidates: Vec<Candidate> = safe
        .iter()
        .map(|(title, text)| Candidate { title, text })
        .collect();
    let packed = context::pack(&candidates, budget, count);
    if packed.is_empty() {
        return Err(no_room(max_new_tokens, overhead, window).into());
    }
    let passages: String = packed
        .iter()
        .map(|p| context::format_passage(p.number, candidates[p.candidate].title, &p.text))
        .collect();
    let prompt = queue.render(&messages(&passages))?;
    let given = packed
        .into_iter()
        .map(|p| {
            let (hit, sim) = relevant[p.candidate].clone();
            Given {
                number: p.number,
                hit,
                text: p.text,
                similarity: sim,
            }
        })
        .collect();
    Ok((given, prompt))
}

fn no_room(max_new_tokens: usize, overhead: usize, window: usize) -> InvalidArgument {
    InvalidArgument::new(
        "generation.max_new_tokens",
        format!(
            "is {max_new_tokens}; with the question and conversation ({overhead} tokens) it leaves no room for a passage in the model's context window of {window} tokens"
        ),
    )
}

/// The grounded prompt: short instructions, one example exchange of the
/// citation format, the session's turns, the numbered evidence sentences
/// and the question. The evidence shrinks until the prompt fits the
/// window.
pub(crate) fn grounded_prompt(
    queue: &GenerateQueue,
    turns: &[Message],
    question: &str,
    grounding: &Grounding,
    max_new_tokens: usize,
) -> Result<String> {
    let defuse = |s: &str| queue.defuse(s).into_owned();
    let window = queue.context_length();
    let mut n = grounding.config.evidence_sentences.max(1);
    loop {
        let block = grounding.prompt_block(n, &defuse);
        let mut m = vec![
            Message::new("system", GROUNDED_SYSTEM_PROMPT),
            Message::new("user", GROUNDED_EXAMPLE.0),
            Message::new("assistant", GROUNDED_EXAMPLE.1),
        ];
        m.extend(turns.iter().cloned());
        m.push(Message::new(
            "user",
            format!(
                "Evidence:\n{block}\nQuestion: {}",
                queue.defuse(question.trim())
            ),
        ));
        let prompt = queue.render(&m)?;
        let tokens = queue.count_tokens(&prompt)?;
        if tokens + 1 + PROMPT_SLACK + max_new_tokens <= window {
            return Ok(prompt);
        }
        if n == 1 {
            return Err(no_room(max_new_tokens, tokens, window).into());
        }
        n -= 1;
    }
}
