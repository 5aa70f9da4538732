//! The layer every call's reply passes through: client deadlines answered
//! DEADLINE_EXCEEDED, and tonic's OUT_OF_RANGE for an oversized message
//! answered RESOURCE_EXHAUSTED (see [`ReplyPolicy`]).

use std::future::Future;
use std::time::Duration;

/// The longest any call may take, whatever its client asks: it bounds even
/// the longest bulk load.
const MAX_CALL: Duration = Duration::from_secs(24 * 3600);

/// What every call's reply gets, in one layer:
///
/// - Each client's `grpc-timeout` is honoured: a call whose response has
///   not started by its deadline is dropped (its handler cancelled) and
///   answered DEADLINE_EXCEEDED, as gRPC specifies. tonic's own server
///   timeout answers CANCELLED instead, so it is not used. A streamed
///   response (Ask) has started once its first message is ready; the
///   engine watches its deadline from there.
/// - tonic's OUT_OF_RANGE for a message over the size limit becomes
///   RESOURCE_EXHAUSTED, the code this API promises for a limit (the
///   message, which names both sizes, is kept). Nothing else in Quarry
///   answers OUT_OF_RANGE.
#[derive(Clone)]
pub(super) struct ReplyPolicy<S>(pub(super) S);

impl<S, B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for ReplyPolicy<S>
where
    S: tonic::codegen::Service<
        tonic::codegen::http::Request<B>,
        Response = tonic::codegen::http::Response<tonic::body::Body>,
    >,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        let limit = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(MAX_CALL, |t| t.min(MAX_CALL));
        let response = self.0.call(request);
        Box::pin(async move {
            let Ok(response) = tokio::time::timeout(limit, response).await else {
                return Ok(tonic::Status::deadline_exceeded(format!(
                    "the call's deadline ({} ms) passed before it finished",
                    limit.as_millis()
                ))
                .into_http());
            };
            let mut response = response?;
            let headers = response.headers_mut();
            if headers.get("grpc-status").is_some_and(|v| v == "11") {
                headers.insert(
                    "grpc-status",
                    tonic::codegen::http::HeaderValue::from_static("8"),
                );
            }
            Ok(response)
        })
    }
}

/// A `grpc-timeout` value: up to eight digits and a unit (H, M, S, m, u,
/// n); `None` when malformed (the call then runs without a deadline of its
/// own, as the gRPC spec leaves it).
pub(super) fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::codegen::http;
    use tonic::codegen::Service;

    /// A handler that never answers.
    struct Never;

    impl Service<http::Request<()>> for Never {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Pending<Result<Self::Response, Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            std::future::pending()
        }
    }

    /// The server's own answer at the deadline (a tonic client races it
    /// with its own timer and may report CANCELLED first, so the end-to-end
    /// tests accept either).
    #[tokio::test]
    async fn a_call_past_its_deadline_is_answered_deadline_exceeded() {
        let request = http::Request::builder()
            .header("grpc-timeout", "20m")
            .body(())
            .unwrap();
        let response = ReplyPolicy(Never).call(request).await.unwrap();
        assert_eq!(response.headers()["grpc-status"], "4");
        let message = response.headers()["grpc-message"].to_str().unwrap();
        assert!(message.contains("deadline"), "{message}");
    }

    #[test]
    fn grpc_timeouts_parse_by_the_spec() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "5", "123456789S", "-5S", "5s", "1.5S", "5 S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
