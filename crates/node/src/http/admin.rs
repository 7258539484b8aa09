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

/// The cluster as this node sees it: the layout (version, partitions,
/// digest), per node its address, capacity, zone, replica-slot count and
/// share, health as this node judges it and the hints held here for it, and
/// the hint limits.
pub async fn cluster(State(state): State<Arc<NodeState>>) -> Response {
    let view = state.coordinator.view.load();
    let layout = &view.layout;
    let config = &state.config;
    let slots = layout.slot_counts();
    let balance = layout.balance();
    let total: u64 = slots.iter().map(|&s| u64::from(s)).sum();
    let now_ms = state.coordinator.origin.elapsed().as_millis() as u64;
    let held = state.hints.held();
    let nodes: Vec<_> = layout
        .members()
        .iter()
        .zip(&slots)
        .zip(&balance.nodes)
        .map(|((m, &slots), share)| {
            let peer = view.peer(&m.id);
            let rpc = match peer {
                Some(p) => p.rpc.clone(),
                None if m.id == config.id => config.rpc.clone(),
                None => String::new(),
            };
            let health = peer.map(|p| {
                let h = p.health();
                let (connected, retry_in) = p.client.connection_state();
                serde_json::json!({
                    "connected": connected,
                    "reconnect_in_ms": retry_in.map(|d| d.as_millis() as u64),
                    "status": h.status(),
                    "consecutive_failures": h.consecutive_failures,
                    "last_success_ms_ago": h.last_success_ms.map(|t| now_ms.saturating_sub(t)),
                    "last_failure": h.last_failure.as_ref().map(|(t, why)| serde_json::json!({
                        "ms_ago": now_ms.saturating_sub(*t),
                        "reason": why.to_string(),
                        "kind": why.kind(),
                    })),
                })
            });
            serde_json::json!({
                "id": m.id.as_str(),
                "rpc": rpc,
                "capacity": m.capacity,
                "zone": m.zone,
                "slots": slots,
                "share": if total == 0 { 0.0 } else { f64::from(slots) / total as f64 },
                "ideal_slots": share.ideal,
                // Why the node's slots differ from its capacity share, if
                // they do: capped at one replica per partition, or by its zone.
                "balance_notes": share.notes.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>(),
                "self": m.id == config.id,
                "health": health,
                // Hints this node holds as a stand-in for this node.
                "hints_pending": held.iter().find(|(t, _)| *t == m.id).map_or(0, |(_, h)| h.hints),
                "hint_bytes_pending": held.iter().find(|(t, _)| *t == m.id).map_or(0, |(_, h)| h.bytes),
            })
        })
        .collect();
    Json(serde_json::json!({
        "node": config.id.as_str(),
        "cluster": config.cluster,
        "layout": {
            "version": layout.version(),
            "partitions": layout.partitions(),
            "replication": layout.replication(),
            "digest": format!("{:016x}", layout.digest()),
            "slots": total,
        },
        "replication": view.settings.replication,
        "buckets": view.settings.buckets,
        "nodes": nodes,
        "fsync": config.fsync.to_string(),
        // Anti-entropy per partition, read repairs and tombstones reaped.
        "repairs": state.metrics.repairs(),
        "hints": {
            "limits": state.hints.limits(),
            // Hints for nodes that are not members (dropped at the next round).
            "pending_for_non_members": held
                .iter()
                .filter(|(t, _)| layout.member(t).is_none())
                .map(|(t, h)| serde_json::json!({ "target": t.as_str(), "hints": h.hints, "bytes": h.bytes }))
                .collect::<Vec<_>>(),
        },
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
