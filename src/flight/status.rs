//! Error mapping of the Flight SQL front door: a [`crate::Error`] from the session becomes a
//! gRPC [`Status`] whose code says whose fault it is, and whose message is the engine's own
//! rendering (so SQL errors keep their "line L, column C").

use tonic::{Code, Status};

use crate::error::{Error, ErrorCode, ErrorKind};

/// The gRPC code for an engine error.
///
/// - Syntax / Invalid / NotSupported (and other user errors) → `INVALID_ARGUMENT`
/// - NotFound → `NOT_FOUND`, AlreadyExists → `ALREADY_EXISTS`, Cancelled → `CANCELLED`
/// - External (I/O, corrupt data, remote services: may work once fixed outside) → `UNAVAILABLE`
/// - Internal (a bug in Weir) → `INTERNAL`
pub fn grpc_code(err: &Error) -> Code {
    match (err.kind, err.code) {
        (ErrorKind::Internal, _) => Code::Internal,
        (_, ErrorCode::Syntax | ErrorCode::Invalid | ErrorCode::NotSupported) => {
            Code::InvalidArgument
        }
        (_, ErrorCode::NotFound) => Code::NotFound,
        (_, ErrorCode::AlreadyExists) => Code::AlreadyExists,
        (_, ErrorCode::Cancelled) => Code::Cancelled,
        (ErrorKind::User, ErrorCode::Other) => Code::InvalidArgument,
        (ErrorKind::External, ErrorCode::Other) => Code::Unavailable,
    }
}

/// Converts an engine error into the gRPC status sent to the client.
pub fn to_status(err: &Error) -> Status {
    let code = grpc_code(err);
    if code == Code::Internal {
        tracing::error!(error = %err, "internal error answered to a Flight SQL client");
    }
    Status::new(code, err.to_string())
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        to_status(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Location, Span};

    #[test]
    fn codes_follow_kind_and_code() {
        let cases = [
            (
                Error::syntax("unexpected token", None),
                Code::InvalidArgument,
            ),
            (Error::invalid("bad type"), Code::InvalidArgument),
            (Error::not_supported("streaming"), Code::InvalidArgument),
            (Error::not_found("table t"), Code::NotFound),
            (Error::already_exists("table t"), Code::AlreadyExists),
            (Error::cancelled(), Code::Cancelled),
            (Error::external("disk full"), Code::Unavailable),
            (Error::internal("oops"), Code::Internal),
        ];
        for (err, code) in cases {
            assert_eq!(grpc_code(&err), code, "{err}");
        }
    }

    #[test]
    fn message_keeps_the_sql_position() {
        let at = Location { line: 1, column: 8 };
        let err = Error::syntax("Expected: an expression, found: FROM", None)
            .with_span(Span::new(at, at));
        let status = Status::from(err);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("line 1, column 8"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn message_keeps_context_lines() {
        let err = Error::external("no such file").context("while reading table `t`");
        let status = to_status(&err);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("while reading table `t`"));
    }
}
