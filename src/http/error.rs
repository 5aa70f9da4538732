//! The one mapping of a call's `tonic::Status` (every engine error has
//! already become one, in `grpc::status`) onto an HTTP response: the
//! status code that matches the gRPC code, and a JSON body
//! `{"error": {"code": "NOT_FOUND", "message": "...", "requestId": "..."}}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tonic::Code;

/// An HTTP API error: a gRPC status with the request id of the call.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: tonic::Status,
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self { status }
    }
}

impl ApiError {
    /// An INVALID_ARGUMENT naming what is wrong with the HTTP request.
    pub fn invalid(message: impl Into<String>) -> Self {
        tonic::Status::invalid_argument(message).into()
    }
}

/// The HTTP status of a gRPC code (as Google's HTTP/JSON transcoding maps
/// them).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Internal | Code::Unknown | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The code's name as the proto enum spells it (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The metadata that marks a RESOURCE_EXHAUSTED status as a request
/// (body or line) over the size limit, answered 413 rather than 429.
const TOO_LARGE: &str = "x-quarry-too-large";

/// RESOURCE_EXHAUSTED for a request larger than the limit: 413 over HTTP
/// (the mark survives the loader passing the status through).
pub fn too_large(message: String) -> tonic::Status {
    let mut status = tonic::Status::resource_exhausted(message);
    status
        .metadata_mut()
        .insert(TOO_LARGE, tonic::metadata::MetadataValue::from_static("1"));
    status
}

/// The request id a status carries (set by `metrics::observed`).
pub fn request_id(status: &tonic::Status) -> Option<String> {
    status
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The JSON body of an error.
pub fn error_body(status: &tonic::Status) -> serde_json::Value {
    let mut error = serde_json::json!({
        "code": code_name(status.code()),
        "message": status.message(),
    });
    if let Some(id) = request_id(status) {
        error["requestId"] = serde_json::Value::String(id);
    }
    serde_json::json!({ "error": error })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = if self.status.metadata().contains_key(TOO_LARGE) {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            http_status(self.status.code())
        };
        let mut response = (code, axum::Json(error_body(&self.status))).into_response();
        if let Some(id) = request_id(&self.status).and_then(|id| HeaderValue::from_str(&id).ok()) {
            response.headers_mut().insert("x-request-id", id);
        }
        if code == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_statuses_clients_expect() {
        for (code, http) in [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Internal, 500),
        ] {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
        let mut status = tonic::Status::not_found("collection \"x\" does not exist");
        status
            .metadata_mut()
            .insert("x-request-id", "abc-1".parse().unwrap());
        let body = error_body(&status);
        assert_eq!(body["error"]["code"], "NOT_FOUND");
        assert_eq!(body["error"]["requestId"], "abc-1");
        assert_eq!(body["error"]["message"], "collection \"x\" does not exist");
    }
}
