//! HTTP errors: every failure as a status and a JSON body with a stable code.
//!
//! The only place that knows status codes. It also adds what only the HTTP
//! layer knows: that a failed quorum was a write ([`ApiError::from_write`]),
//! whose outcome is then unknown, so the message says to read before retrying.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ringkv_core::context::ContextError;
use ringkv_core::key::KeyError;
use ringkv_core::layout_history::ChangeError;
use ringkv_core::protocol::OpError;

/// A failed request, ready to send.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        let (status, code) = match &e {
            ChangeError::NotAMember(_) => (StatusCode::NOT_FOUND, "not_a_member"),
            ChangeError::AlreadyMember(_) => (StatusCode::CONFLICT, "already_a_member"),
            ChangeError::WasRemoved(_) => (StatusCode::CONFLICT, "was_removed"),
            ChangeError::TooManyActive { .. } => (StatusCode::CONFLICT, "changes_in_flight"),
            ChangeError::Empty
            | ChangeError::Repeated(_)
            | ChangeError::TooFewMembers { .. }
            | ChangeError::Layout(_) => (StatusCode::BAD_REQUEST, "bad_change"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let (status, code) = match &e {
            OpError::Quorum(_) => (StatusCode::SERVICE_UNAVAILABLE, "quorum_not_met"),
            OpError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            OpError::TooManySiblings { .. } => (StatusCode::CONFLICT, "too_many_siblings"),
            OpError::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            OpError::ForwardFailed { .. } | OpError::NotCoordinator { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            OpError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl ApiError {
    /// A failed put or delete (`what` names it for the message). A failed
    /// write quorum is still `quorum_not_met`, but its message says whether
    /// the write may have been applied ([`ringkv_core::quorum::QuorumError::write_may_have_applied`]):
    /// the coordinator writes its own copy first, and replicas that got the
    /// request apply it even after the deadline.
    pub fn from_write(e: OpError, what: &str) -> Self {
        let advice = match &e {
            OpError::Quorum(q) if q.write_may_have_applied() => format!(
                "; the {what} may have been applied (replicas that got it keep it): read the key before retrying"
            ),
            OpError::Quorum(_) => format!("; no replica applied the {what}, so it is safe to retry"),
            _ => String::new(),
        };
        let mut error = ApiError::from(e);
        error.message.push_str(&advice);
        error
    }
}

impl From<ContextError> for ApiError {
    fn from(e: ContextError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_context", e.to_string())
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::KeyTooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "key_too_large",
                e.to_string(),
            ),
            _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_key", e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::failure::ReplicaFailure;
    use ringkv_core::quorum::QuorumError;
    use ringkv_core::NodeId;

    fn quorum(acks: usize, why: ReplicaFailure) -> OpError {
        OpError::Quorum(QuorumError {
            needed: 3,
            asked: 3,
            acks,
            failures: vec![(NodeId::new("n2").unwrap(), why)],
        })
    }

    #[test]
    fn a_failed_write_quorum_says_whether_the_write_may_have_applied() {
        let cases = [
            (
                quorum(0, ReplicaFailure::QuorumUnreachable),
                "put",
                "the put may have been applied",
            ),
            (
                quorum(1, ReplicaFailure::ConnectRefused),
                "delete",
                "the delete may have been applied",
            ),
            (
                quorum(0, ReplicaFailure::ConnectRefused),
                "put",
                "no replica applied the put",
            ),
        ];
        for (error, what, says) in cases {
            let api = ApiError::from_write(error, what);
            assert_eq!(
                (api.status, api.code),
                (StatusCode::SERVICE_UNAVAILABLE, "quorum_not_met")
            );
            assert!(
                api.message.starts_with("quorum not met: needed 3 of 3"),
                "{}",
                api.message
            );
            assert!(api.message.contains(says), "{}", api.message);
        }
        let other = ApiError::from_write(OpError::Overloaded { limit: 1 }, "put");
        assert!(!other.message.contains("applied"), "{}", other.message);
    }

    #[test]
    fn a_bad_context_is_400_bad_context_and_says_to_read_again() {
        let api = ApiError::from(ContextError::UnknownFormat(158));
        assert_eq!(
            (api.status, api.code),
            (StatusCode::BAD_REQUEST, "bad_context")
        );
        assert!(
            api.message.contains("read the key again"),
            "{}",
            api.message
        );
    }
}
