//! The one place where engine errors become gRPC statuses.
//!
//! This is a function rather than `impl From<EngineError> for Status`
//! because both types are foreign to this crate (the orphan rule), and the
//! engine must not depend on tonic.

use quarry_engine::EngineError;
use tonic::{Code, Status};

/// Maps an engine error to the status a client sees. Internal errors are
/// logged here with their detail and reported without it.
pub fn to_status(err: EngineError) -> Status {
    let code = match &err {
        EngineError::InvalidArgument(_) => Code::InvalidArgument,
        EngineError::NotFound(_) => Code::NotFound,
        EngineError::AlreadyExists(_) => Code::AlreadyExists,
        EngineError::ResourceExhausted(_) => Code::ResourceExhausted,
        EngineError::Unimplemented(_) => Code::Unimplemented,
        EngineError::Unavailable(_) => Code::Unavailable,
        EngineError::DeadlineExceeded(_) => Code::DeadlineExceeded,
        EngineError::Internal(_) => {
            tracing::error!(error = %err, "internal error");
            return Status::internal("internal error; the server log has the details");
        }
    };
    Status::new(code, err.to_string())
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
        let hidden = to_status(EngineError::Internal("secret path /x".into()));
        assert_eq!(hidden.code(), Code::Internal);
        assert!(!hidden.message().contains("secret"));
    }
}
