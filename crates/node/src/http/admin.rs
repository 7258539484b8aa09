//! `GET /v1/health`, `GET /v1/cluster` and `GET /metrics`: for operators.

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

/// Nodes, their addresses, capacities, zones and ring ownership.
pub async fn cluster(State(state): State<Arc<NodeState>>) -> Response {
    let ring = &state.coordinator.ring;
    let ownership = ring.ownership();
    let config = &state.config;
    let rpc_of = |id: &ringkv_core::NodeId| {
        if *id == config.id {
            Some(config.rpc.clone())
        } else {
            config
                .peers
                .iter()
                .find(|p| p.id == *id)
                .map(|p| p.rpc.clone())
        }
    };
    let nodes: Vec<_> = ring
        .members()
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id.as_str(),
                "rpc": rpc_of(&m.id),
                "capacity": m.capacity,
                "zone": m.zone,
                "ownership": ownership.get(&m.id).copied().unwrap_or(0.0),
            })
        })
        .collect();
    Json(serde_json::json!({
        "node": config.id.as_str(),
        "cluster": config.cluster,
        "replication": config.replication,
        "buckets": config.buckets,
        "nodes": nodes,
        "ring": { "tokens": ring.token_count(), "members": ring.members().len() },
        "fsync": config.fsync.to_string(),
    }))
    .into_response()
}

pub async fn metrics(State(state): State<Arc<NodeState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.encode(),
    )
        .into_response()
}

pub async fn method_not_allowed() -> Response {
    let message = "method not allowed: /v1/kv takes GET, PUT and DELETE; the rest take GET";
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
        "no such endpoint; see /v1/kv/{bucket}/{key}, /v1/health, /v1/cluster, /metrics",
    )
    .into_response()
}
