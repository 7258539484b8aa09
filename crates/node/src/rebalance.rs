//! The rebalance task: pulls the partitions a layout change gave this node,
//! then reports the new version synced (P4).
//!
//! The gossip task steps the layout history's barriers every round and
//! publishes what this node must pull ([`PullPlan::Pull`]: the target version
//! and its transfers) on a watch channel. This task runs each pull with
//! the streamer ([`crate::streaming`]: bounded, rate-limited chunks whose
//! cursors are persisted, so a crash resumes where it stopped), publishes
//! its progress in this node's gossip record (so `ringkv admin status` on
//! any node shows it), and when every transfer is done and durable reports
//! the version synced ([`ClusterState::synced`]). A newer target replaces
//! the running pull; the cursors of the old one are kept, so what was
//! already pulled from the same source is not pulled again.

use crate::cluster_state::{ClusterState, PullPlan};
use crate::metrics::Metrics;
use crate::replica::LocalReplica;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Default bytes per second a node pulls when streaming partitions.
pub const STREAM_BYTES_PER_SEC: u64 = 32 * 1024 * 1024;

/// The rebalance task of one node.
pub struct Rebalance {
    pub state: Arc<ClusterState>,
    pub replica: Arc<LocalReplica>,
    pub metrics: Arc<Metrics>,
    pub bytes_per_sec: u64,
    pub max_siblings: usize,
}

impl Rebalance {
    pub async fn run(self, mut pulls: watch::Receiver<PullPlan>, stop: CancellationToken) {
        loop {
            let current = pulls.borrow_and_update().clone();
            match current {
                PullPlan::Idle => {}
                PullPlan::Pull { target, transfers } => {
                    let _ = (target, transfers);
                    todo!("streaming")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = pulls.changed() => if changed.is_err() { return },
            }
        }
    }
}
