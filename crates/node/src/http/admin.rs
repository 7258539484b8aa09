//! `GET /v1/health` and `GET /metrics`: for operators (membership is in
//! [`super::membership`]).

use super::error::ApiError;
use crate::node::NodeState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

pub async fn health(State(state): State<Arc<NodeState>>) -> Response {
    Json(serde_json::json!({ "status": "ok", "node": state.config.id.as_str() })).into_response()
}

pub async fn metrics(State(state): State<Arc<NodeState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.encode(),
    )
        .into_response()
}

pub async fn method_not_allowed() -> Response {
    let message =
        "method not allowed: /v1/kv takes GET, PUT and DELETE, /v1/admin POST; the rest take GET";
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        message,
    )
    .into_response()
}

pub async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such endpoint; see /v1/kv/{bucket}/{key}, /v1/health, /v1/cluster, /v1/cluster/ring, /v1/admin/..., /metrics",
    )
    .into_response()
}
