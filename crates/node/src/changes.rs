//! Applying an operator's membership change, and making sure it sticks.
//!
//! The change becomes the next layout version on this node at once
//! ([`ClusterState::apply`]) and spreads by gossip. Two operators changing
//! the cluster through different nodes at the same moment make two
//! versions with the same number; gossip keeps one of them everywhere (the
//! core's deterministic rule), so the other change would be lost. It is
//! not lost silently: after a few gossip rounds this node checks that its
//! change is reflected in the newest layout and, if a concurrent change
//! won, applies it again on top of the winner ([`MAX_REAPPLY`] times at
//! most, with a WARN each time). A change the winner already made (the
//! same node joined or left) needs nothing.

use crate::cluster_state::ClusterState;
use ringkv_core::layout::Layout;
use ringkv_core::layout_history::{ChangeError, LayoutChange};
use std::sync::Arc;
use std::time::Duration;

/// How many times a change that lost a conflict is applied again.
pub const MAX_REAPPLY: usize = 3;

/// Gossip rounds to wait before checking a change stuck.
const ROUNDS_BEFORE_CHECK: u64 = 3;

/// Applies `change` and watches it in the background; returns the layout
/// version it made.
pub async fn apply(
    state: &Arc<ClusterState>,
    change: LayoutChange,
    gossip_interval_ms: u64,
) -> Result<Arc<Layout>, ChangeError> {
    let layout = state.apply(std::slice::from_ref(&change)).await?;
    tracing::info!(change = ?change, version = layout.version(), digest = format!("{:016x}", layout.digest()), "layout change applied");
    let state = state.clone();
    let wait = Duration::from_millis(gossip_interval_ms.saturating_mul(ROUNDS_BEFORE_CHECK));
    tokio::spawn(async move {
        for _ in 0..MAX_REAPPLY {
            tokio::time::sleep(wait).await;
            if state.read(|_, history| reflected(&change, history)) {
                return;
            }
            tracing::warn!(change = ?change, "a concurrent layout change won; applying this one again on top of it");
            if let Err(e) = state.apply(std::slice::from_ref(&change)).await {
                tracing::warn!(change = ?change, error = %e, "could not apply the change again");
                return;
            }
        }
    });
    Ok(layout)
}

/// Whether the newest layout shows `change` done.
fn reflected(change: &LayoutChange, history: &ringkv_core::layout_history::LayoutHistory) -> bool {
    change.is_reflected_in(&history.newest().layout)
}
