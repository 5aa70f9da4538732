//! REST/JSON routes for the whole `quarry.v1` API, each mapped onto the
//! gRPC service implementation of the same method (see [`super::call`]):
//! the path names the resource, the body is the proto request in its
//! proto3 JSON mapping, the reply is the proto response. Ask streams
//! Server-Sent Events, ExportRecords JSON lines, and BulkIngest reads a
//! JSON-lines body as it arrives.

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_stream::{Stream, StreamExt};

use super::call::{self, body_bytes, message, reply};
use super::error::{error_body, ApiError};
use crate::auth::Authenticator;
use crate::grpc::Services;
use crate::proto;
use proto::collections_server::Collections;
use proto::documents_server::Documents;
use proto::history_server::History;
use proto::rag_server::Rag;
use proto::retrieval_server::Retrieval;

/// What every route needs.
#[derive(Clone)]
pub struct Api {
    inner: Arc<ApiInner>,
}

struct ApiInner {
    services: Services,
    auth: Authenticator,
    /// Largest request body.
    max_body: usize,
}

impl Api {
    /// The routes' state.
    pub fn new(services: Services, auth: Authenticator, max_body: usize) -> Self {
        Self {
            inner: Arc::new(ApiInner {
                services,
                auth,
                max_body,
            }),
        }
    }

    pub(super) fn services(&self) -> &Services {
        &self.inner.services
    }

    pub(super) fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    pub(super) fn max_body(&self) -> usize {
        self.inner.max_body
    }
}

/// The REST routes (under /v1).
pub fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/v1/collections",
            post(create_collection).get(list_collections),
        )
        .route(
            "/v1/collections/{name}",
            get(get_collection).delete(delete_collection),
        )
        .route("/v1/collections/{name}/documents", post(upsert))
        .route("/v1/collections/{name}/documents/bulk", post(bulk_ingest))
        .route(
            "/v1/collections/{name}/documents/delete",
            post(delete_documents),
        )
        .route(
            "/v1/collections/{name}/documents/{id}",
            get(get_document).delete(delete_document),
        )
        .route("/v1/collections/{name}/search", post(search))
        .route("/v1/collections/{name}/ask", post(ask))
        .route("/v1/embed", post(embed))
        .route("/v1/records", get(list_records))
        .route("/v1/records/export", get(export_records))
        .route("/v1/records/delete", post(delete_records))
        .route("/v1/records/{id}", get(get_record))
        .route("/v1/records/{id}/rating", post(rate_record))
}

/// Runs one unary call: body to message (with the path's fields set),
/// caller, the service method under the call's deadline, reply to JSON.
async fn unary<M, R, F, Fut>(
    api: &Api,
    headers: &HeaderMap,
    body: Bytes,
    set: &[(&str, Value)],
    call: F,
) -> Response
where
    M: DeserializeOwned,
    R: Serialize,
    F: FnOnce(tonic::Request<M>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
{
    let run = async {
        let msg: M = message(&body, set)?;
        let req = call::request(api.auth(), headers, msg)?;
        let response = within_deadline(call::deadline(req.metadata()), call(req)).await?;
        reply(response)
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Runs `call` under the deadline the request's metadata carries
/// (DEADLINE_EXCEEDED once it passes).
pub(super) async fn within_deadline<T>(
    left: Option<std::time::Duration>,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, ApiError> {
    match left {
        Some(left) => match tokio::time::timeout(left, call).await {
            Ok(out) => Ok(out?),
            Err(_) => Err(tonic::Status::deadline_exceeded(
                "the call's deadline passed before its reply started",
            )
            .into()),
        },
        None => Ok(call.await?),
    }
}

/// The body of a request, or the 413/400 response that refuses it.
macro_rules! read_body {
    ($api:expr, $body:expr) => {
        match body_bytes($body, $api.max_body()).await {
            Ok(bytes) => bytes,
            Err(response) => return response,
        }
    };
}

async fn create_collection(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let body = read_body!(api, body);
    unary(&api, &headers, body, &[], |r| {
        api.services().collections.create_collection(r)
    })
    .await
}

async fn list_collections(State(api): State<Api>, headers: HeaderMap) -> Response {
    unary(&api, &headers, Bytes::new(), &[], |r| {
        api.services().collections.list_collections(r)
    })
    .await
}

async fn get_collection(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    unary(
        &api,
        &headers,
        Bytes::new(),
        &[("name", json!(name))],
        |r| api.services().collections.get_collection(r),
    )
    .await
}

async fn delete_collection(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    unary(
        &api,
        &headers,
        Bytes::new(),
        &[("name", json!(name))],
        |r| api.services().collections.delete_collection(r),
    )
    .await
}

async fn upsert(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_body!(api, body);
    unary(&api, &headers, body, &[("collection", json!(name))], |r| {
        api.services().documents.upsert(r)
    })
    .await
}

async fn get_document(
    State(api): State<Api>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let set = [("collection", json!(name)), ("id", json!(id))];
    unary(&api, &headers, Bytes::new(), &set, |r| {
        api.services().documents.get_document(r)
    })
    .await
}

async fn delete_document(
    State(api): State<Api>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let set = [("collection", json!(name)), ("ids", json!([id]))];
    unary(&api, &headers, Bytes::new(), &set, |r| {
        api.services().documents.delete_documents(r)
    })
    .await
}

async fn delete_documents(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_body!(api, body);
    unary(&api, &headers, body, &[("collection", json!(name))], |r| {
        api.services().documents.delete_documents(r)
    })
    .await
}

async fn search(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_body!(api, body);
    unary(&api, &headers, body, &[("collection", json!(name))], |r| {
        api.services().retrieval.search(r)
    })
    .await
}

async fn embed(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let body = read_body!(api, body);
    unary(&api, &headers, body, &[], |r| {
        api.services().retrieval.embed(r)
    })
    .await
}

async fn get_record(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    unary(&api, &headers, Bytes::new(), &[("id", json!(id))], |r| {
        api.services().history.get_record(r)
    })
    .await
}

async fn rate_record(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_body!(api, body);
    unary(&api, &headers, body, &[("id", json!(id))], |r| {
        api.services().history.rate_record(r)
    })
    .await
}

async fn delete_records(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let body = read_body!(api, body);
    unary(&api, &headers, body, &[], |r| {
        api.services().history.delete_records(r)
    })
    .await
}

/// ListRecordsRequest's own fields; every other query parameter is one of
/// its filter's.
const LIST_FIELDS: [&str; 8] = [
    "collection",
    "session_id",
    "sessionId",
    "page_size",
    "pageSize",
    "page_token",
    "pageToken",
    "filter",
];

/// A query string as a JSON object: `true`/`false` become booleans (the
/// JSON mapping takes numbers as strings), parameters not in `top` go
/// into a `filter` object.
fn query_json(pairs: Vec<(String, String)>, top: &[&str]) -> Value {
    let mut object = serde_json::Map::new();
    let mut filter = serde_json::Map::new();
    for (key, value) in pairs {
        let value = match value.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(value),
        };
        if top.contains(&key.as_str()) {
            object.insert(key, value);
        } else {
            filter.insert(key, value);
        }
    }
    if !filter.is_empty() {
        object.insert("filter".into(), Value::Object(filter));
    }
    Value::Object(object)
}

async fn list_records(
    State(api): State<Api>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let body = query_json(pairs, &LIST_FIELDS).to_string();
    unary(&api, &headers, Bytes::from(body), &[], |r| {
        api.services().history.list_records(r)
    })
    .await
}

/// A stream of proto messages as a response body, one frame per message:
/// `frame` writes a message (or the error that ends the stream).
fn streamed<T, S>(
    stream: S,
    content_type: &'static str,
    id: Option<HeaderValue>,
    frame: fn(Result<Value, Value>) -> String,
) -> Response
where
    T: Serialize + Send + 'static,
    S: Stream<Item = Result<T, tonic::Status>> + Send + 'static,
{
    let body = stream.map(move |item| {
        let json = match item {
            Ok(message) => serde_json::to_value(&message)
                .map_err(|e| error_body(&tonic::Status::internal(e.to_string()))),
            Err(status) => Err(error_body(&status)),
        };
        Ok::<_, std::convert::Infallible>(Bytes::from(frame(json)))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(id) = id {
        headers.insert("x-request-id", id);
    }
    response
}

fn request_id<T>(response: &tonic::Response<T>) -> Option<HeaderValue> {
    response
        .metadata()
        .get("x-request-id")
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
}

/// One Server-Sent Event: `event: message|error` and the JSON.
fn sse_frame(item: Result<Value, Value>) -> String {
    match item {
        Ok(v) => format!("event: message\ndata: {v}\n\n"),
        Err(e) => format!("event: error\ndata: {e}\n\n"),
    }
}

/// One JSON line (an error line is `{"error": ...}`).
fn json_line(item: Result<Value, Value>) -> String {
    match item {
        Ok(v) | Err(v) => format!("{v}\n"),
    }
}

async fn ask(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_body!(api, body);
    let run = async {
        let msg: proto::AskRequest = message(&body, &[("collection", json!(name))])?;
        let req = call::request(api.auth(), &headers, msg)?;
        let response =
            within_deadline(call::deadline(req.metadata()), api.services().rag.ask(req)).await?;
        let id = request_id(&response);
        // A client that goes away drops the body, hence the stream: the
        // engine stops generating and records the answer as cancelled.
        Ok::<_, ApiError>(streamed(
            response.into_inner(),
            "text/event-stream",
            id,
            sse_frame,
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn export_records(
    State(api): State<Api>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let filter = query_json(pairs, &[]);
        let filter = filter.get("filter").cloned().unwrap_or_else(|| json!({}));
        let msg: proto::ExportRecordsRequest = call::from_json(json!({ "filter": filter }))?;
        let req = call::request(api.auth(), &headers, msg)?;
        let response = within_deadline(
            call::deadline(req.metadata()),
            api.services().history.export_records(req),
        )
        .await?;
        let id = request_id(&response);
        Ok::<_, ApiError>(streamed(
            response.into_inner(),
            "application/x-ndjson",
            id,
            json_line,
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// BulkIngest: a JSON-lines body, one BulkIngestRequest per line (the
/// collection comes from the path), read and loaded as it arrives with the
/// gRPC stream's flow control; a line that is not a valid message ends the
/// load with 400 naming the line (batches already loaded stay loaded).
async fn bulk_ingest(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let run = async {
        let req = call::request(api.auth(), &headers, ())?;
        let limit = api.max_body();
        let lines = super::lines::json_lines(body, limit);
        let collection = name.clone();
        let messages = lines.map(move |line| {
            let (number, line) = line?;
            let set = [("collection", json!(collection))];
            message::<proto::BulkIngestRequest>(&line, &set).map_err(|e| {
                tonic::Status::invalid_argument(format!("line {number}: {}", e.status.message()))
            })
        });
        let (metadata, extensions, ()) = req.into_parts();
        let req = tonic::Request::from_parts(metadata, extensions, messages);
        let left = call::deadline(req.metadata());
        let response = within_deadline(left, crate::grpc::bulk_ingest(api.services(), req)).await?;
        reply(response)
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
