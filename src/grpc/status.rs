//! The one place where errors become gRPC statuses, and where their
//! messages are capped.
//!
//! Messages quote client input (a field's value, an id); an unbounded one
//! would be echoed whole into the `grpc-message` header, and past the
//! client's header limit (8 KiB by default) the client sees
//! RESOURCE_EXHAUSTED instead of the real code. [`status`] caps every
//! message at [`MAX_MESSAGE_BYTES`].
//!
//! This is a function rather than `impl From<EngineError> for Status`
//! because both types are foreign to this crate (the orphan rule), and the
//! engine must not depend on tonic.

use quarry_engine::{EngineError, ErrorKind};
use tonic::{Code, Status};

/// Longest status message, in bytes; longer ones are cut at a character
/// boundary and say how long they were.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// A status with `message` capped at [`MAX_MESSAGE_BYTES`]. Every status
/// the server builds goes through here.
pub fn status(code: Code, message: impl Into<String>) -> Status {
    Status::new(code, cap(message.into()))
}

fn cap(message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    // Room for the note on the length.
    let mut end = MAX_MESSAGE_BYTES - 48;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}... (message cut; {} bytes in all)",
        &message[..end],
        message.len()
    )
}

/// Maps an engine error to the status a client sees. Internal errors are
/// logged here with their detail and reported without it.
pub fn to_status(err: EngineError) -> Status {
    let code = match err.kind() {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unimplemented => Code::Unimplemented,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Internal => {
            // The whole chain goes to the log; the client gets no detail.
            tracing::error!(error = %error_chain(&err), "internal error");
            return status(
                Code::Internal,
                "internal error; the server log has the details",
            );
        }
    };
    status(code, err.to_string())
}

/// An error and its sources, `: `-separated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        // A transparent or wrapping variant repeats its source's text.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

/// INVALID_ARGUMENT for a request that failed conversion.
pub fn invalid(e: quarry_core::InvalidArgument) -> Status {
    to_status(EngineError::InvalidArgument(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_core::InvalidArgument;

    #[test]
    fn codes_follow_the_error_kind() {
        let cases = [
            (
                EngineError::InvalidArgument(InvalidArgument::new("name", "bad")),
                Code::InvalidArgument,
                "name: bad",
            ),
            (EngineError::NotFound("gone".into()), Code::NotFound, "gone"),
            (
                EngineError::AlreadyExists("taken".into()),
                Code::AlreadyExists,
                "taken",
            ),
            (
                EngineError::ResourceExhausted("full".into()),
                Code::ResourceExhausted,
                "full",
            ),
            (
                EngineError::Unimplemented("later".into()),
                Code::Unimplemented,
                "later",
            ),
            (
                EngineError::Unavailable("disk".into()),
                Code::Unavailable,
                "disk",
            ),
        ];
        for (err, code, message) in cases {
            let status = to_status(err);
            assert_eq!(status.code(), code);
            assert_eq!(status.message(), message);
        }
        let long = to_status(EngineError::InvalidArgument(InvalidArgument::new(
            "id",
            format!("{:?} is not a record id", "é".repeat(10_000)),
        )));
        assert_eq!(long.code(), Code::InvalidArgument);
        assert!(
            long.message().len() <= MAX_MESSAGE_BYTES,
            "{}",
            long.message().len()
        );
        assert!(long.message().starts_with("id: \"éé"));
        assert!(long.message().ends_with(" bytes in all)"));
        let hidden = to_status(EngineError::Internal("secret path /x".into()));
        assert_eq!(hidden.code(), Code::Internal);
        assert!(!hidden.message().contains("secret"));
    }
}
