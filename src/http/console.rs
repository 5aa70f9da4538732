//! The web console at `/`: static files embedded in the binary (no build
//! step; plain JavaScript without dependencies, `console/app.js`), served
//! with a strict Content-Security-Policy, and `GET /v1/session`, which
//! tells the page who the key is (name, role, collections) so that a
//! reader's page shows no admin actions. The key stays in the tab's
//! session storage and travels only as a bearer header.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::call;
use super::error::ApiError;
use super::rest::Api;
use crate::auth::Principal;

const INDEX: &str = include_str!("console/index.html");
const APP: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/style.css");

/// The console's routes.
pub fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/",
            get(|| async { file(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { file(APP, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/style.css",
            get(|| async { file(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/v1/session", get(session))
}

fn file(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Scripts and styles from this origin only; no framing.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Who the key is: 401 without a valid key (when keys are on).
async fn session(State(api): State<Api>, headers: HeaderMap) -> Response {
    let run = async {
        let req = call::request(api.auth(), &headers, ())?;
        let who = Principal::of(&req)?;
        Ok::<_, ApiError>(
            axum::Json(json!({
                "name": who.name,
                "role": who.role.as_str(),
                "collections": who.collections,
            }))
            .into_response(),
        )
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
