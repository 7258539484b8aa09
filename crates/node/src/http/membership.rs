//! Membership for operators: `GET /v1/cluster`, `GET /v1/cluster/ring`, and
//! `POST /v1/admin/{join,decommission,remove}/{node}` (P4, O1–O3).
//!
//! `/v1/cluster` is this node's view: every node it knows (members of the
//! active layout versions, nodes known through gossip waiting to join, and
//! removed ones) with its state, whether *this* node judges it up, its
//! addresses, capacity, zone, share of the newest layout's replica slots,
//! the versions it acknowledged and holds, and its transfer in progress;
//! plus the layout versions and the health details of each peer.
//!
//! A change is applied on this node as the next layout version, then
//! spreads by gossip. If another operator applied a different change
//! through another node at the same moment, one of the two layouts wins
//! everywhere (`layout_history`); [`crate::changes`] re-applies a change
//! that lost on top of the winner, so neither is silently dropped.

use super::error::ApiError;
use crate::node::NodeState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ringkv_core::layout::{Layout, Member};
use ringkv_core::layout_history::LayoutChange;
use ringkv_core::NodeId;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// `GET /v1/cluster`.
pub async fn cluster(State(state): State<Arc<NodeState>>) -> Response {
    let view = state.coordinator.view.load();
    let config = &state.config;
    let now_ms = state.coordinator.origin.elapsed().as_millis() as u64;
    let held = state.hints.held();
    let newest = view.history.newest().layout.clone();
    let slots = newest.slot_counts();
    let balance = newest.balance();
    let total: u64 = slots.iter().map(|&s| u64::from(s)).sum();
    let records = state.cluster.read(|membership, history| {
        let mut ids: BTreeSet<NodeId> = membership.entries().keys().cloned().collect();
        ids.extend(
            history
                .layouts()
                .flat_map(|l| l.members().iter().map(|m| m.id.clone())),
        );
        ids.extend(history.removed().iter().cloned());
        let records: Vec<_> = ids
            .into_iter()
            .map(|id| {
                let member = history
                    .entries()
                    .iter()
                    .rev()
                    .find_map(|e| e.layout.member(&id).cloned());
                let record = membership.entry(&id).map(|e| e.record.clone());
                let node_state = history.state_of(&id);
                (id, node_state, member, record)
            })
            .collect();
        records
    });
    let listed: Vec<Value> = records
        .into_iter()
        .map(|(id, node_state, member, record)| {
            let me = id == config.id;
            let peer = view.peer(&id);
            let at = newest.members().binary_search_by(|m| m.id.cmp(&id)).ok();
            let node_slots = at.map_or(0, |i| slots[i]);
            let share = at.and_then(|i| balance.nodes.get(i));
            let (capacity, zone) = match (&record, &member) {
                (Some(r), _) => (r.capacity, r.zone.clone()),
                (None, Some(Member { capacity, zone, .. })) => (*capacity, zone.clone()),
                (None, None) => (0, None),
            };
            let health = peer.map(|p| {
                let h = p.health();
                let (connected, retry_in) = p.client.connection_state();
                json!({
                    "connected": connected,
                    "reconnect_in_ms": retry_in.map(|d| d.as_millis() as u64),
                    "status": p.status(),
                    "phi": p.phi(),
                    "consecutive_failures": h.consecutive_failures,
                    "last_success_ms_ago": h.last_success_ms.map(|t| now_ms.saturating_sub(t)),
                    "last_failure": h.last_failure.as_ref().map(|(t, why)| json!({
                        "ms_ago": now_ms.saturating_sub(*t),
                        "reason": why.to_string(),
                        "kind": why.kind(),
                    })),
                })
            });
            let up = me || peer.is_some_and(|p| view.is_up(&p.id));
            let hints = held.iter().find(|(t, _)| *t == id).map(|(_, h)| *h);
            json!({
                "id": id.as_str(),
                "state": node_state,
                "up": up,
                "self": me,
                "rpc": record.as_ref().map(|r| r.rpc.clone()).or_else(|| peer.map(|p| p.rpc.clone())),
                "http": record.as_ref().and_then(|r| r.http.clone()),
                "capacity": capacity,
                "zone": zone,
                "slots": node_slots,
                "share": if total == 0 { 0.0 } else { f64::from(node_slots) / total as f64 },
                "ideal_slots": share.map(|b| b.ideal),
                // Why the node's slots differ from its capacity share, if
                // they do: capped at one replica per partition, or by its zone.
                "balance_notes": share.map_or(Vec::new(), |b| b.notes.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>()),
                "acked": record.as_ref().and_then(|r| r.acked).map(|s| s.version),
                "synced": record.as_ref().and_then(|r| r.synced).map(|s| s.version),
                "transfer": record.as_ref().and_then(|r| r.transfer.clone()),
                "health": health,
                // Hints this node holds as a stand-in for that node.
                "hints_pending": hints.map_or(0, |h| h.hints),
                "hint_bytes_pending": hints.map_or(0, |h| h.bytes),
            })
        })
        .collect();
    let history = &view.history;
    Json(json!({
        "node": config.id.as_str(),
        "cluster": config.cluster,
        "layout": {
            "version": newest.version(),
            "digest": format!("{:016x}", newest.digest()),
            "partitions": newest.partitions(),
            "replication": newest.replication(),
            "slots": total,
            "read_version": view.layout.version(),
            "in_transition": history.in_transition(),
            "active_versions": history.entries().iter().map(|e| json!({
                "version": e.stamp.version,
                "digest": format!("{:016x}", e.stamp.digest),
                "members": e.layout.members().iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "removed": history.removed().iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        },
        "replication": view.settings.replication,
        "buckets": view.settings.buckets,
        "nodes": listed,
        "fsync": config.fsync.to_string(),
        // Started with `serve --rebuild` and still pulling its partitions:
        // it refuses reads until then (`crate::refill`).
        "refilling": state.coordinator.replica.is_refilling(),
        // Anti-entropy per partition, read repairs and tombstones reaped.
        "repairs": state.metrics.repairs(),
        "hints": {
            "limits": state.hints.limits(),
            // Hints for nodes that are not members (dropped at the next round).
            "pending_for_non_members": held
                .iter()
                .filter(|(t, _)| !history.is_active_member(t))
                .map(|(t, h)| json!({ "target": t.as_str(), "hints": h.hints, "bytes": h.bytes }))
                .collect::<Vec<_>>(),
        },
    }))
    .into_response()
}

/// `GET /v1/cluster/ring`: every partition's replicas, per active version.
pub async fn ring(State(state): State<Arc<NodeState>>) -> Response {
    let view = state.coordinator.view.load();
    let versions: Vec<Value> = view
        .history
        .layouts()
        .map(|l| {
            json!({
                "version": l.version(),
                "partitions": partitions(l),
            })
        })
        .collect();
    Json(json!({ "versions": versions })).into_response()
}

fn partitions(layout: &Layout) -> Vec<Value> {
    (0..layout.partitions())
        .map(|p| {
            let replicas: Vec<&str> = layout
                .replicas(p, layout.replication())
                .map(|n| n.as_str())
                .collect();
            json!({ "partition": p, "replicas": replicas })
        })
        .collect()
}

/// `POST /v1/admin/{op}/{node}`.
pub async fn change(
    State(state): State<Arc<NodeState>>,
    Path((op, node)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id: NodeId = node
        .parse()
        .map_err(|e| ApiError::bad_request(format!("node id {node:?}: {e}")))?;
    let change = match op.as_str() {
        "join" => {
            let record = state
                .cluster
                .read(|m, _| m.entry(&id).map(|e| e.record.clone()))
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "node {id} is not known through gossip: start it with `ringkv serve --seed` first"
                    ))
                })?;
            LayoutChange::Join(Member {
                id: id.clone(),
                capacity: record.capacity,
                zone: record.zone,
            })
        }
        "decommission" => LayoutChange::Decommission(id.clone()),
        "remove" => LayoutChange::Remove(id.clone()),
        other => {
            return Err(ApiError::not_found(format!(
                "no such change {other:?}: join, decommission or remove"
            )))
        }
    };
    let before = state
        .coordinator
        .view
        .load()
        .history
        .newest()
        .layout
        .clone();
    let layout = crate::changes::apply(&state.cluster, change, state.config.gossip_interval_ms)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({
        "change": op,
        "node": id.as_str(),
        "layout_version": layout.version(),
        "digest": format!("{:016x}", layout.digest()),
        "moved_slots": layout.moved_slots(&before),
    }))
    .into_response())
}
