//! HTTP errors: every failure as a status and a JSON body with a stable code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ringkv_core::context::ContextError;
use ringkv_core::key::KeyError;
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
