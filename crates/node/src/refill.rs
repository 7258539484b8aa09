//! Refilling a rebuilt store: a node started with `ringkv serve --rebuild`
//! runs on a fresh, empty store and pulls every partition it is a home of
//! from the other replicas before it answers reads again.
//!
//! **Why reads are refused meanwhile.** An empty replica that answered
//! reads would count toward R with "not found": with N = 3, R = W = 2, a
//! write acknowledged by this node's lost store and one other replica
//! could then be read as absent from this node and the third one. So,
//! like a joiner before it reports `synced` (and like Cassandra's
//! replace/rebuild, where the node does not serve reads until streaming
//! finished), the rebuilt replica refuses every read with
//! [`ReplicaError::Refilling`](ringkv_core::protocol::ReplicaError::Refilling):
//! coordinators count it as a failed replica and take R from the others.
//! It still accepts writes, merges, hints and anti-entropy, so it misses
//! nothing written while it refills.
//!
//! **What it pulls.** [`LayoutHistory::refill_transfers`]: every partition
//! it holds in any active layout version, from *every* other replica of
//! it (the union of their copies holds every acknowledged write). The pull
//! is the ordinary partition stream ([`Streamer`]): bounded, rate-limited,
//! resumable from cursors stored with the data. It starts a few gossip
//! rounds after the node starts, so the node has learned the cluster's
//! newest layout first, and runs again if the newest version changed
//! while it ran. A pull that could not reach every source is retried; the
//! node keeps refusing reads until one complete pass.
//!
//! **Durable state.** The `Meta` key [`REFILL_KEY`] is written (and
//! synced) on the fresh store before the node starts, and deleted only
//! after a complete pass is durable, so a node stopped while refilling
//! refuses reads and refills again when it restarts.

use crate::cluster_state::ClusterState;
use crate::replica::LocalReplica;
use crate::streaming::{StreamError, StreamProgress, Streamer};
use ringkv_core::streaming::{StreamOutcome, StreamPlan};
use ringkv_storage::{Keyspace, Storage, StorageError, WriteBatch};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The `Meta` key that says the store was rebuilt and has not refilled yet.
pub const REFILL_KEY: &[u8] = b"refill_pending";

/// Gossip rounds the node waits before the first pass, to learn the
/// cluster's newest layout from its peers.
pub const REFILL_SETTLE_ROUNDS: u32 = 3;

/// Pause before a pass that could not reach every source starts again.
pub const RETRY_REFILL_AFTER_MS: u64 = 2000;

/// Marks a fresh store as rebuilt: the node will refuse reads and refill.
pub fn mark_pending(storage: &dyn Storage) -> Result<(), StorageError> {
    let mut batch = WriteBatch::new();
    batch.put(Keyspace::Meta, REFILL_KEY, [1u8]);
    storage.write(batch)?;
    storage.sync()
}

/// Whether the store was rebuilt and has not refilled yet.
pub fn is_pending(storage: &dyn Storage) -> Result<bool, StorageError> {
    Ok(storage.get(Keyspace::Meta, REFILL_KEY)?.is_some())
}

/// The refill task of a rebuilt node.
pub struct Refill {
    pub state: Arc<ClusterState>,
    pub streamer: Arc<Streamer>,
    pub replica: Arc<LocalReplica>,
    pub gossip_interval: Duration,
}

impl Refill {
    /// Pulls until one complete pass, then lets reads in; returns early
    /// when stopped (the marker stays, so the next start refills again).
    pub async fn run(self, stop: CancellationToken) {
        let settle = self.gossip_interval * REFILL_SETTLE_ROUNDS;
        if pause(settle, &stop).await {
            return;
        }
        loop {
            let me = self.state.me.clone();
            let width = self.state.transfer_width();
            let (version, transfers) = self
                .state
                .read(|_, h| (h.newest().stamp.version, h.refill_transfers(&me, width)));
            tracing::info!(
                version,
                partitions = transfers.len(),
                "refilling the rebuilt store from the other replicas"
            );
            let plan = StreamPlan {
                version,
                partitions: self.state.settings.partitions,
                local: me,
                transfers,
            };
            let progress = StreamProgress::default();
            match self.streamer.run(plan, &progress, &stop).await {
                Ok(StreamOutcome::Complete) => {
                    let newest = self.state.read(|_, h| h.newest().stamp.version);
                    if newest == version && self.finish(version, &progress).await {
                        return;
                    }
                }
                Ok(StreamOutcome::Incomplete { failed }) => {
                    tracing::warn!(
                        failed = failed.len(),
                        "refill could not reach every replica; trying again (reads stay refused)"
                    );
                }
                Err(StreamError::Stopped) => return,
                Err(e) => tracing::error!(error = %e, "refill failed; trying again"),
            }
            if pause(Duration::from_millis(RETRY_REFILL_AFTER_MS), &stop).await {
                return;
            }
        }
    }

    /// Deletes the marker durably and lets reads in. False: try again.
    async fn finish(&self, version: u64, progress: &StreamProgress) -> bool {
        let mut batch = WriteBatch::new();
        batch.delete(Keyspace::Meta, REFILL_KEY);
        let committer = self.replica.committer();
        let written = match committer.write(batch).await {
            Ok(ticket) => committer.durable(ticket).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "could not record the finished refill; trying again");
            return false;
        }
        self.replica.set_refilling(false);
        if let Err(e) = self.streamer.clear_cursors_before(version + 1).await {
            tracing::warn!(error = %e, "could not clear the refill's stream cursors");
        }
        let p = progress.snapshot();
        tracing::info!(
            version,
            partitions = p.partitions_done,
            keys = p.keys,
            bytes = p.bytes,
            "refill complete: this node answers reads again"
        );
        true
    }
}

/// Sleeps `how_long`; true if stopped first.
async fn pause(how_long: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(how_long) => false,
    }
}
