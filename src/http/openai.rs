//! OpenAI-compatible endpoints, so that OpenAI client libraries and the
//! tools built on them (LangChain, LlamaIndex, chat front ends) use Quarry
//! as they are: `POST /v1/chat/completions` (a grounded Ask: `model` names
//! the collection, the last user message is the question, earlier turns
//! the conversation), `POST /v1/embeddings`, `GET /v1/models` (the
//! collections the key may use). Each calls the gRPC service method, so
//! keys, roles, limits and records are those of gRPC.
//!
//! Quarry's own results ride in an extra `quarry` field: on a completion,
//! the citations (`quarry.citations`) and the end of the answer
//! (`quarry.done`: record id, finish reason, supported share...); in a
//! stream, on the first chunk (citations) and the last (done). Parameters
//! Quarry cannot honour are refused with 400 naming them, never ignored.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_stream::StreamExt;

use super::call::{self, body_bytes};
use super::error::{error_body, ApiError};
use super::rest::Api;
use crate::proto;
use proto::collections_server::Collections;
use proto::rag_server::Rag;
use proto::retrieval_server::Retrieval;

/// The OpenAI-compatible routes.
pub fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
}

/// Request fields accepted and ignored: they change nothing Quarry does.
const IGNORED: &[&str] = &[
    "user",
    "store",
    "metadata",
    "service_tier",
    "parallel_tool_calls",
];

/// A chat message's content: text, or text parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Map<String, Value>>),
}

impl Content {
    fn text(&self, field: &str) -> Result<String, ApiError> {
        match self {
            Content::Text(t) => Ok(t.clone()),
            Content::Parts(parts) => {
                let mut out = String::new();
                for (i, p) in parts.iter().enumerate() {
                    match (p.get("type").and_then(Value::as_str), p.get("text")) {
                        (Some("text"), Some(Value::String(t))) => out.push_str(t),
                        _ => {
                            return Err(ApiError::invalid(format!(
                                "{field}.content[{i}]: only text parts are supported"
                            )))
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Quarry's own options of a chat completion.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuarryOptions {
    /// GROUNDED (default), EXTRACTIVE or GENERATIVE (as the proto names
    /// them, with or without the ANSWER_MODE_ prefix).
    answer_mode: Option<String>,
    /// Passages to retrieve.
    top_k: Option<u32>,
    /// HYBRID, DENSE or KEYWORD.
    mode: Option<String>,
    /// A metadata filter, as in the REST API.
    filter: Option<Value>,
    /// A server-side conversation instead of the messages' turns.
    session_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stop: Option<Stop>,
    seed: Option<u64>,
    n: Option<u32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    #[serde(default)]
    quarry: Option<QuarryOptions>,
    /// Everything else: refused unless in [`IGNORED`].
    #[serde(flatten)]
    other: Map<String, Value>,
}

fn refuse_other(other: &Map<String, Value>) -> Result<(), ApiError> {
    for (key, value) in other {
        if IGNORED.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        let hint = match key.as_str() {
            "tools" | "tool_choice" | "functions" | "function_call" => {
                "tool calls are not supported: Quarry answers from its passages"
            }
            "response_format" => "only text answers are supported",
            "logprobs" | "top_logprobs" | "logit_bias" => "token probabilities are not exposed",
            _ => "not supported by this server",
        };
        if key == "logprobs" && value == &Value::Bool(false) {
            continue;
        }
        return Err(ApiError::invalid(format!("{key}: {hint}")));
    }
    Ok(())
}

/// The proto name of an enum value given with or without its prefix.
fn enum_name(prefix: &str, value: &str) -> String {
    let upper = value.to_ascii_uppercase();
    if upper.starts_with(prefix) {
        upper
    } else {
        format!("{prefix}{upper}")
    }
}

/// The Ask a chat completion asks, as the REST body would give it.
fn ask_request(req: &ChatRequest) -> Result<proto::AskRequest, ApiError> {
    refuse_other(&req.other)?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("n: only 1 choice is supported"));
    }
    for (name, v) in [
        ("frequency_penalty", req.frequency_penalty),
        ("presence_penalty", req.presence_penalty),
    ] {
        if v.is_some_and(|v| v != 0.0) {
            return Err(ApiError::invalid(format!(
                "{name}: not supported (Quarry's sampling has a repetition penalty; send quarry options or leave it 0)"
            )));
        }
    }
    // The conversation: system and developer messages are left out (the
    // server's grounded prompt governs); the last message is the question.
    let mut turns: Vec<(String, String)> = Vec::new();
    let mut question = None;
    for (i, m) in req.messages.iter().enumerate() {
        let field = format!("messages[{i}]");
        let text = match &m.content {
            Some(c) => c.text(&field)?,
            None => String::new(),
        };
        match m.role.as_str() {
            "system" | "developer" => {}
            "user" => {
                if let Some(q) = question.replace(text) {
                    turns.push((q, String::new()));
                }
            }
            "assistant" => {
                let q = question.take().unwrap_or_default();
                turns.push((q, text));
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "{field}.role: {other:?} is not supported (system, developer, user, assistant)"
                )))
            }
        }
    }
    let last_is_user = req.messages.last().is_some_and(|m| m.role == "user");
    let Some(question) = question.filter(|_| last_is_user) else {
        return Err(ApiError::invalid(
            "messages: the last message must be the user's question",
        ));
    };
    let q = req.quarry.as_ref();
    let mut ask = json!({
        "collection": req.model,
        "question": question,
        "history": turns
            .into_iter()
            .filter(|(q, a)| !(q.is_empty() && a.is_empty()))
            .map(|(q, a)| json!({"question": q, "answer": a}))
            .collect::<Vec<_>>(),
    });
    let mut generation = Map::new();
    if let Some(t) = req.temperature {
        generation.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        generation.insert("topP".into(), json!(p));
    }
    if let Some(n) = req.max_completion_tokens.or(req.max_tokens) {
        generation.insert("maxNewTokens".into(), json!(n));
    }
    if let Some(s) = req.seed {
        generation.insert("seed".into(), json!(s.to_string()));
    }
    match &req.stop {
        Some(Stop::One(s)) => {
            generation.insert("stop".into(), json!([s]));
        }
        Some(Stop::Many(s)) => {
            generation.insert("stop".into(), json!(s));
        }
        None => {}
    }
    if !generation.is_empty() {
        ask["generation"] = Value::Object(generation);
    }
    if let Some(q) = q {
        if let Some(m) = &q.answer_mode {
            ask["answerMode"] = json!(enum_name("ANSWER_MODE_", m));
        }
        if let Some(m) = &q.mode {
            ask["mode"] = json!(enum_name("SEARCH_MODE_", m));
        }
        if let Some(k) = q.top_k {
            ask["topK"] = json!(k);
        }
        if let Some(f) = &q.filter {
            ask["filter"] = f.clone();
        }
        if let Some(s) = &q.session_id {
            ask["sessionId"] = json!(s);
        }
    }
    call::from_json(ask)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// OpenAI's finish reason for Quarry's.
fn finish_reason(done: &proto::Done) -> &'static str {
    match proto::FinishReason::try_from(done.finish_reason) {
        Ok(proto::FinishReason::Length) => "length",
        _ => "stop",
    }
}

fn usage(done: &proto::Done) -> Value {
    json!({
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.answer_tokens,
        "total_tokens": done.prompt_tokens + done.answer_tokens,
    })
}

fn to_json<T: serde::Serialize>(m: &T) -> Value {
    serde_json::to_value(m).unwrap_or(Value::Null)
}

async fn chat_completions(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let body = match body_bytes(body, api.max_body()).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let run = async {
        let chat: ChatRequest = serde_json::from_slice(&body).map_err(|e| {
            let mut m = e.to_string();
            m.truncate(512);
            ApiError::invalid(format!(
                "the request body is not a chat completion request: {m}"
            ))
        })?;
        let ask = ask_request(&chat)?;
        let req = call::request(api.auth(), &headers, ask)?;
        let left = call::deadline(req.metadata());
        let response = super::rest::within_deadline(left, api.services().rag.ask(req)).await?;
        let events = response.into_inner();
        let model = chat.model.clone();
        let created = now_secs();
        if chat.stream {
            let include_usage = chat.stream_options.is_some_and(|o| o.include_usage);
            Ok(stream_chunks(events, model, created, include_usage))
        } else {
            complete(events, model, created).await
        }
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// A non-streamed completion: the whole answer once it is done.
async fn complete(
    mut events: <super::super::grpc::RagService as Rag>::AskStream,
    model: String,
    created: u64,
) -> Result<Response, ApiError> {
    let mut text = String::new();
    let mut citations = Value::Null;
    while let Some(event) = events.next().await {
        match event?.event {
            Some(proto::ask_event::Event::Citations(c)) => citations = to_json(&c),
            Some(proto::ask_event::Event::Delta(d)) => text.push_str(&d.text),
            Some(proto::ask_event::Event::Check(_)) | None => {}
            Some(proto::ask_event::Event::Done(done)) => {
                return Ok(axum::Json(json!({
                    "id": format!("chatcmpl-{}", done.record_id),
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish_reason(&done),
                        "logprobs": null,
                    }],
                    "usage": usage(&done),
                    "quarry": {"citations": citations["citations"].clone(), "done": to_json(&done)},
                }))
                .into_response());
            }
        }
    }
    Err(tonic::Status::internal("the answer ended without its end event").into())
}

/// A streamed completion: `chat.completion.chunk` events, then `[DONE]`.
fn stream_chunks(
    events: <super::super::grpc::RagService as Rag>::AskStream,
    model: String,
    created: u64,
    include_usage: bool,
) -> Response {
    let mut id = format!("chatcmpl-{created:x}");
    let chunk = move |id: &str, delta: Value, finish: Value, extra: Option<Value>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        });
        if let Some(extra) = extra {
            c["quarry"] = extra;
        }
        format!("data: {c}\n\n")
    };
    let mut ended = false;
    let frames = events.map(move |event| {
        if ended {
            return Ok::<_, std::convert::Infallible>(Bytes::new());
        }
        let frame = match event.map(|e| e.event) {
            Ok(Some(proto::ask_event::Event::Citations(c))) => chunk(
                &id,
                json!({"role": "assistant", "content": ""}),
                Value::Null,
                Some(json!({"citations": to_json(&c)["citations"].clone()})),
            ),
            Ok(Some(proto::ask_event::Event::Delta(d))) => {
                chunk(&id, json!({"content": d.text}), Value::Null, None)
            }
            Ok(Some(proto::ask_event::Event::Check(_)) | None) => String::new(),
            Ok(Some(proto::ask_event::Event::Done(done))) => {
                ended = true;
                id = format!("chatcmpl-{}", done.record_id);
                let mut out = chunk(
                    &id,
                    json!({}),
                    json!(finish_reason(&done)),
                    Some(json!({"done": to_json(&done)})),
                );
                if include_usage {
                    let u = json!({
                        "id": id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": "",
                        "choices": [],
                        "usage": usage(&done),
                    });
                    out.push_str(&format!("data: {u}\n\n"));
                }
                out.push_str("data: [DONE]\n\n");
                out
            }
            Err(status) => {
                ended = true;
                format!("data: {}\n\ndata: [DONE]\n\n", error_body(&status))
            }
        };
        Ok(Bytes::from(frame))
    });
    let mut response = Response::new(Body::from_stream(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
    /// Token arrays, or anything else: refused.
    Other(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    input: Input,
    #[serde(default)]
    model: String,
    encoding_format: Option<String>,
    dimensions: Option<u32>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

async fn embeddings(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let body = match body_bytes(body, api.max_body()).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let run = async {
        let req: EmbeddingsRequest = serde_json::from_slice(&body).map_err(|e| {
            let mut m = e.to_string();
            m.truncate(512);
            ApiError::invalid(format!(
                "the request body is not an embeddings request: {m}"
            ))
        })?;
        refuse_other(&req.other)?;
        let texts =
            match req.input {
                Input::One(t) => vec![t],
                Input::Many(t) => t,
                Input::Other(_) => return Err(ApiError::invalid(
                    "input: send a string or a list of strings (token arrays are not supported)",
                )),
            };
        let base64 = match req.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "encoding_format: {other:?} is not float or base64"
                )))
            }
        };
        let call_req = call::request(api.auth(), &headers, proto::EmbedRequest { texts })?;
        let left = call::deadline(call_req.metadata());
        let reply = super::rest::within_deadline(left, api.services().retrieval.embed(call_req))
            .await?
            .into_inner();
        if let Some(d) = req.dimensions {
            if d != reply.dimension {
                return Err(ApiError::invalid(format!(
                    "dimensions: the model's vectors have {} dimensions, not {d}",
                    reply.dimension
                )));
            }
        }
        let data: Vec<Value> = reply
            .embeddings
            .iter()
            .enumerate()
            .map(|(index, e)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = e.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(e.values)
                };
                json!({"object": "embedding", "index": index, "embedding": embedding})
            })
            .collect();
        // The server has one embedding model: `model` is accepted as any
        // name and the reply names the real one.
        let _ = req.model;
        Ok::<_, ApiError>(
            axum::Json(json!({
                "object": "list",
                "data": data,
                "model": reply.model,
                "usage": {"prompt_tokens": reply.token_count, "total_tokens": reply.token_count},
            }))
            .into_response(),
        )
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn models(State(api): State<Api>, headers: HeaderMap) -> Response {
    let run = async {
        let req = call::request(api.auth(), &headers, proto::ListCollectionsRequest {})?;
        let list = api
            .services()
            .collections
            .list_collections(req)
            .await?
            .into_inner();
        let data: Vec<Value> = list
            .collections
            .iter()
            .map(|c| {
                json!({
                    "id": c.name,
                    "object": "model",
                    "created": c.created_at_ms / 1000,
                    "owned_by": "quarry",
                })
            })
            .collect();
        Ok::<_, ApiError>(axum::Json(json!({"object": "list", "data": data})).into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> Result<proto::AskRequest, String> {
        let req: ChatRequest = serde_json::from_value(body).map_err(|e| e.to_string())?;
        ask_request(&req).map_err(|e| e.status.message().to_owned())
    }

    #[test]
    fn messages_become_the_question_and_the_conversation() {
        let ask = chat(json!({
            "model": "docs",
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "What is granite?"},
                {"role": "assistant", "content": "An igneous rock."},
                {"role": "user", "content": [{"type": "text", "text": "What is it made of?"}]},
            ],
            "temperature": 0.2,
            "max_tokens": 64,
            "stop": "END",
            "user": "someone",
            "quarry": {"answer_mode": "extractive", "top_k": 3},
        }))
        .unwrap();
        assert_eq!(ask.collection, "docs");
        assert_eq!(ask.question, "What is it made of?");
        assert_eq!(ask.history.len(), 1);
        assert_eq!(ask.history[0].question, "What is granite?");
        assert_eq!(ask.history[0].answer, "An igneous rock.");
        let g = ask.generation.unwrap();
        assert_eq!((g.temperature, g.max_new_tokens), (Some(0.2), Some(64)));
        assert_eq!(g.stop, vec!["END".to_owned()]);
        assert_eq!(ask.answer_mode, proto::AnswerMode::Extractive as i32);
        assert_eq!(ask.top_k, 3);
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        let base = |extra: Value| {
            let mut b = json!({"model": "docs", "messages": [{"role": "user", "content": "q"}]});
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            chat(b).unwrap_err()
        };
        assert!(base(json!({"n": 2})).contains("n:"));
        assert!(base(json!({"tools": [{"type": "function"}]})).contains("tools"));
        assert!(
            base(json!({"response_format": {"type": "json_object"}})).contains("response_format")
        );
        assert!(base(json!({"presence_penalty": 0.5})).contains("presence_penalty"));
        assert!(base(json!({"frobnicate": 1})).contains("frobnicate"));
        let last_assistant = chat(json!({"model": "docs", "messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}))
        .unwrap_err();
        assert!(last_assistant.contains("last message"), "{last_assistant}");
        let tool = chat(json!({"model": "docs", "messages": [{"role": "tool", "content": "x"}]}))
            .unwrap_err();
        assert!(tool.contains("messages[0].role"), "{tool}");
    }
}
