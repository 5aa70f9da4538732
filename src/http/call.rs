//! How an HTTP request becomes a call of the gRPC service implementations
//! (so that every rule, limit, role and metric is the same one): its
//! headers become the call's metadata (the API key, the deadline), the
//! same [`Authenticator`] finds the caller, the JSON body becomes the proto
//! message through its proto3 JSON mapping (pbjson), with the path's
//! parameters set in it; the reply goes back the same way.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::service::Interceptor;

use super::error::ApiError;
use crate::auth::Authenticator;

/// The header that carries a REST call's deadline, in milliseconds (a
/// gRPC client's `grpc-timeout` is honoured too).
pub const TIMEOUT_HEADER: &str = "x-timeout-ms";

/// The call's metadata from the HTTP headers: authorization and deadline.
fn metadata(headers: &HeaderMap) -> Result<MetadataMap, ApiError> {
    let mut metadata = MetadataMap::new();
    if let Some(v) = headers.get("authorization") {
        let v = MetadataValue::try_from(v.as_bytes())
            .map_err(|_| tonic::Status::unauthenticated("the authorization header is not text"))?;
        metadata.insert("authorization", v);
    }
    if let Some(ms) = headers.get(TIMEOUT_HEADER) {
        let ms: u64 = ms
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|ms| (1..=99_999_999).contains(ms))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "header {TIMEOUT_HEADER} must be whole milliseconds, 1 to 99999999"
                ))
            })?;
        if let Ok(v) = format!("{ms}m").parse() {
            metadata.insert("grpc-timeout", v);
        }
    } else if let Some(v) = headers.get("grpc-timeout") {
        if let Ok(v) = MetadataValue::try_from(v.as_bytes()) {
            metadata.insert("grpc-timeout", v);
        }
    }
    Ok(metadata)
}

/// The deadline the call's metadata carries.
pub fn deadline(metadata: &MetadataMap) -> Option<Duration> {
    let at = crate::grpc::deadline(metadata)?;
    Some(at.saturating_duration_since(std::time::Instant::now()))
}

/// A gRPC request carrying `message`, the caller found by `auth` from the
/// headers (UNAUTHENTICATED without a valid key when keys are on).
pub fn request<T>(
    auth: &Authenticator,
    headers: &HeaderMap,
    message: T,
) -> Result<tonic::Request<T>, ApiError> {
    let mut bare = tonic::Request::from_parts(metadata(headers)?, tonic::Extensions::default(), ());
    bare = auth.clone().call(bare)?;
    let (metadata, extensions, ()) = bare.into_parts();
    Ok(tonic::Request::from_parts(metadata, extensions, message))
}

/// Reads a whole request body, refusing more than `limit` bytes with 413.
pub async fn body_bytes(body: Body, limit: usize) -> Result<Bytes, Response> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Err(e) => {
            Err(ApiError::invalid(format!("cannot read the request body: {e}")).into_response())
        }
    }
}

/// 413 naming the limit.
pub fn too_large(limit: usize) -> Response {
    ApiError::from(super::error::too_large(format!(
        "the request body is larger than the limit of {limit} bytes (--max-message-bytes)"
    )))
    .into_response()
}

/// The proto message of a JSON body (an empty body is `{}`), with `set`
/// (the path's parameters) written into it; a body that names another
/// value for one of them is refused.
pub fn message<T: DeserializeOwned>(
    body: &[u8],
    set: &[(&str, serde_json::Value)],
) -> Result<T, ApiError> {
    let mut value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("the request body is not JSON: {e}")))?
    };
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::invalid("the request body must be a JSON object"));
    };
    for (key, v) in set {
        match object.get(*key) {
            Some(old) if old != v => {
                return Err(ApiError::invalid(format!(
                    "{key}: the body says {old}, the path says {v}"
                )))
            }
            _ => {
                object.insert((*key).to_owned(), v.clone());
            }
        }
    }
    from_json(value)
}

/// A proto message from a JSON value (INVALID_ARGUMENT with serde's
/// message, which names the field).
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| {
        let mut message = e.to_string();
        message.truncate(512);
        ApiError::invalid(format!("the request body does not fit the API: {message}"))
    })
}

/// The JSON of a proto message.
pub fn to_json<T: Serialize>(message: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(message)
        .map_err(|e| tonic::Status::internal(format!("cannot encode the reply: {e}")).into())
}

/// A call's reply as JSON, with its request id.
pub fn reply<T: Serialize>(response: tonic::Response<T>) -> Result<Response, ApiError> {
    let id = response.metadata().get("x-request-id").cloned();
    let body = to_json(response.get_ref())?;
    let mut http = axum::Json(body).into_response();
    if let Some(id) = id.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
        http.headers_mut().insert("x-request-id", id);
    }
    Ok(http)
}
