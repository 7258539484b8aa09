//! The rebalance task: pulls the partitions a layout change gave this node,
//! then reports the new version synced (P4).
//!
//! The gossip task steps the layout history's barriers every round and
//! publishes what this node must pull ([`PullPlan::Pull`]: the target
//! version and its transfers) on a watch channel. This task runs each pull
//! with the [`Streamer`] (bounded, rate-limited chunks whose cursors are
//! stored with their data, so a crash resumes where it stopped), publishes
//! its progress in this node's gossip record every second (so
//! `ringkv admin status` on any node shows it), and when every transfer is
//! complete reports the version synced ([`ClusterState::synced`]) and
//! clears the cursors of older versions. A newer target replaces the
//! running pull; a pull that gave up on a source is started again after a
//! pause, resuming from its cursors.

use crate::cluster_state::{ClusterState, PullPlan};
use crate::streaming::{StreamError, StreamProgress, Streamer};
use ringkv_core::layout_history::LayoutStamp;
use ringkv_core::membership::TransferProgress;
use ringkv_core::streaming::{StreamOutcome, StreamPlan};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Pause before a pull that gave up on a source starts again.
pub const RETRY_PULL_AFTER_MS: u64 = 2000;

/// How often a running pull's progress goes into the gossip record.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The rebalance task of one node.
pub struct Rebalance {
    pub state: Arc<ClusterState>,
    pub streamer: Arc<Streamer>,
}

/// The pull in progress.
struct Running {
    target: LayoutStamp,
    progress: StreamProgress,
    stop: CancellationToken,
    task: JoinHandle<Result<StreamOutcome, StreamError>>,
}

impl Rebalance {
    pub async fn run(self, mut pulls: watch::Receiver<PullPlan>, stop: CancellationToken) {
        let mut running: Option<Running> = None;
        let mut done: Option<LayoutStamp> = None;
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        loop {
            let wanted = pulls.borrow_and_update().clone();
            match wanted {
                PullPlan::Pull { target, transfers } if Some(target) != done => {
                    if running.as_ref().map(|r| r.target) != Some(target) {
                        if let Some(old) = running.take() {
                            old.stop.cancel();
                        }
                        running = Some(self.start(target, transfers));
                    }
                }
                _ => {
                    if let Some(old) = running.take() {
                        old.stop.cancel();
                    }
                }
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    if let Some(old) = running.take() {
                        old.stop.cancel();
                        let _ = old.task.await;
                    }
                    return;
                }
                changed = pulls.changed() => if changed.is_err() { return },
                _ = publish.tick(), if running.is_some() => {
                    if let Some(r) = &running {
                        self.publish(r.target, &r.progress);
                    }
                }
                finished = async { (&mut running.as_mut().expect("guarded").task).await }, if running.is_some() => {
                    let r = running.take().expect("guarded");
                    match finished {
                        Ok(Ok(StreamOutcome::Complete)) => {
                            self.complete(r.target).await;
                            done = Some(r.target);
                        }
                        Ok(Ok(StreamOutcome::Incomplete { failed })) => {
                            tracing::warn!(version = r.target.version, failed = failed.len(), "some partitions could not be pulled; trying again");
                            tokio::time::sleep(Duration::from_millis(RETRY_PULL_AFTER_MS)).await;
                        }
                        Ok(Err(StreamError::Stopped)) => {}
                        Ok(Err(e)) => {
                            tracing::error!(version = r.target.version, error = %e, "pulling partitions failed; trying again");
                            tokio::time::sleep(Duration::from_millis(RETRY_PULL_AFTER_MS)).await;
                        }
                        Err(e) => tracing::error!(error = %e, "the pull task failed"),
                    }
                }
            }
        }
    }

    fn start(
        &self,
        target: LayoutStamp,
        transfers: Vec<ringkv_core::streaming::Transfer>,
    ) -> Running {
        let plan = StreamPlan {
            version: target.version,
            partitions: self.state.settings.partitions,
            local: self.state.me.clone(),
            transfers,
        };
        tracing::info!(
            version = target.version,
            partitions = plan.transfers.len(),
            "pulling the partitions this node gained"
        );
        let progress = StreamProgress::default();
        let stop = CancellationToken::new();
        let (shown, stopped, streamer) = (progress.clone(), stop.clone(), self.streamer.clone());
        let task = tokio::spawn(async move { streamer.run(plan, &shown, &stopped).await });
        Running {
            target,
            progress,
            stop,
            task,
        }
    }

    /// Puts the pull's progress in this node's gossip record.
    fn publish(&self, target: LayoutStamp, progress: &StreamProgress) {
        let p = progress.snapshot();
        let summary = TransferProgress {
            version: target.version,
            partitions_done: p.partitions_done,
            partitions_total: p.partitions_total,
            keys: p.keys,
            bytes: p.bytes,
        };
        self.state.with(|membership, _| {
            let changed = membership
                .update_self(|r| r.transfer = Some(summary))
                .unwrap_or(false);
            ((), changed)
        });
    }

    /// Every transfer towards `target` is complete and durable.
    async fn complete(&self, target: LayoutStamp) {
        tracing::info!(
            version = target.version,
            "the partitions this node gained have arrived"
        );
        self.state.synced(target);
        if let Err(e) = self.state.persist().await {
            tracing::error!(error = %e, "could not persist the cluster state");
        }
        if let Err(e) = self.streamer.clear_cursors_before(target.version).await {
            tracing::warn!(error = %e, "could not clear old stream cursors");
        }
    }
}
