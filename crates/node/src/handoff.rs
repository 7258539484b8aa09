//! Hinted handoff (F3): hands the hints this node holds back to their homes.
//!
//! A background task wakes every `interval` and walks the homes this node
//! holds hints for ([`HintStore::held`]):
//!
//! - a home that is no longer a member of the layout: its hints are dropped
//!   (counted as `left_cluster`); anti-entropy among the remaining replicas
//!   is what keeps the data;
//! - a home this node judges down: skipped this round (the liveness probe,
//!   [`crate::probe`], notices when it answers again);
//! - otherwise its hints are read in key order, a batch at a time, and each
//!   is sent to the home as an ordinary replica write (`ReplicaWrite`
//!   without a hint: the home merges it like any write, so a hint delivered
//!   twice changes nothing). A hint is deleted only after the home
//!   acknowledged it, and only if it did not change meanwhile
//!   ([`HintStore::remove_if_unchanged`]). A hint whose oldest content is
//!   older than `max_age_ms` is dropped instead (counted as `expired`).
//!   The first failure ends the home's turn until the next round.
//!
//! Delivery is paced by one [`TokenBucket`] over all homes, at
//! `delivery_bytes_per_sec` of encoded hints, so a node coming back is not
//! flooded by every stand-in at once. The decisions (expiry, pacing, what a
//! hint key means) are the core's ([`ringkv_core::hints`]); this module only
//! carries them out.

use crate::coordinator::WallClock;
use crate::hint_store::{HintStore, StoredHint};
use crate::metrics::Metrics;
use crate::view::{Peer, ViewCell};
use ringkv_core::health::PeerStatus;
use ringkv_core::hints::{parse_hint_key, HintRecord, TokenBucket};
use ringkv_core::key::ObjectKey;
use ringkv_core::protocol::{Request, Response};
use ringkv_core::NodeId;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the handoff task looks for hints to deliver.
pub const HANDOFF_INTERVAL_MS: u64 = 1000;
/// Hints read per scan.
pub const HANDOFF_BATCH: usize = 64;
/// How long one delivery call may take.
pub const HANDOFF_CALL_TIMEOUT_MS: u64 = 5000;

/// What the handoff task needs.
pub struct Handoff {
    pub store: Arc<HintStore>,
    pub view: Arc<ViewCell>,
    pub metrics: Arc<Metrics>,
    pub wall_clock: WallClock,
    /// The origin of the milliseconds health records see.
    pub origin: Instant,
    pub interval: Duration,
}

/// Why a home's turn ended.
enum TurnEnd {
    /// Nothing left to deliver.
    Done,
    /// A call or storage failed; try again next round.
    Failed,
    Stopped,
}

impl Handoff {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut bucket =
            TokenBucket::new(self.store.limits().delivery_bytes_per_sec, self.now_ms());
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            let view = self.view.load();
            for (target, _) in self.store.held() {
                // A member of any active layout version (a joining node
                // too) gets its hints; a node that left for good does not.
                let outcome = if !view.history.is_active_member(&target) {
                    self.drop_all(&target, &stop).await
                } else {
                    match view.peer(&target) {
                        Some(peer) if peer.status() != PeerStatus::Down => {
                            self.deliver(peer, &mut bucket, &stop).await
                        }
                        _ => TurnEnd::Failed,
                    }
                };
                if matches!(outcome, TurnEnd::Stopped) {
                    return;
                }
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Delivers `peer`'s hints until none are left or one fails.
    async fn deliver(
        &self,
        peer: &Arc<Peer>,
        bucket: &mut TokenBucket,
        stop: &CancellationToken,
    ) -> TurnEnd {
        let target = &peer.id;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = match self.page(target, after.as_deref()).await {
                Ok(page) => page,
                Err(end) => return end,
            };
            for hint in page {
                after = Some(hint.hint_key.clone());
                let Some(record) = self.live_record(target, &hint) else {
                    self.remove(target, hint, "expired").await;
                    continue;
                };
                let Some(key) = parse_hint_key(&hint.hint_key)
                    .and_then(|(_, storage_key)| ObjectKey::from_storage_key(storage_key).ok())
                else {
                    self.remove(target, hint, "malformed").await;
                    continue;
                };
                while let Err(wait_ms) = bucket.take(hint.raw.len() as u64, self.now_ms()) {
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => return TurnEnd::Stopped,
                        _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
                    }
                }
                let request = Request::ReplicaWrite {
                    key,
                    object: record.object,
                    hint_for: None,
                };
                let timeout = Duration::from_millis(HANDOFF_CALL_TIMEOUT_MS);
                let failure = match peer.call(request, timeout, self.origin).await {
                    Ok(Response::ReplicaWrite(Ok(()))) => None,
                    Ok(Response::ReplicaWrite(Err(e))) => {
                        Some(ringkv_core::failure::ReplicaFailure::Replica(e))
                    }
                    Ok(_) => Some(ringkv_core::failure::ReplicaFailure::UnexpectedAnswer),
                    Err(why) => Some(why),
                };
                if let Some(why) = failure {
                    tracing::debug!(%target, %why, "hint delivery failed; retrying next round");
                    return TurnEnd::Failed;
                }
                self.metrics.hint_delivered(target.as_str());
                if let Err(e) = self.store.remove_if_unchanged(target, hint).await {
                    tracing::warn!(%target, error = %e, "cannot delete a delivered hint");
                    return TurnEnd::Failed;
                }
            }
        }
    }

    /// The next page of `target`'s hints after `after`; `Done` when none
    /// are left, `Failed` when they cannot be read.
    async fn page(
        &self,
        target: &NodeId,
        after: Option<&[u8]>,
    ) -> Result<Vec<StoredHint>, TurnEnd> {
        match self.store.next_hints(target, after, HANDOFF_BATCH).await {
            Ok(page) if page.is_empty() => Err(TurnEnd::Done),
            Ok(page) => Ok(page),
            Err(e) => {
                tracing::warn!(%target, error = %e, "cannot read hints");
                Err(TurnEnd::Failed)
            }
        }
    }

    /// The hint's record if it decodes and has not expired.
    fn live_record(&self, target: &NodeId, hint: &StoredHint) -> Option<HintRecord> {
        let record = HintRecord::decode(&hint.raw).ok()?;
        let max_age_ms = self.store.limits().max_age_ms;
        if record.is_expired((self.wall_clock)(), max_age_ms) {
            tracing::debug!(%target, "dropping an expired hint");
            return None;
        }
        Some(record)
    }

    /// Drops every hint for a home that left the cluster.
    async fn drop_all(&self, target: &NodeId, stop: &CancellationToken) -> TurnEnd {
        let mut after: Option<Vec<u8>> = None;
        loop {
            if stop.is_cancelled() {
                return TurnEnd::Stopped;
            }
            let page = match self.page(target, after.as_deref()).await {
                Ok(page) => page,
                Err(end) => return end,
            };
            for hint in page {
                after = Some(hint.hint_key.clone());
                self.remove(target, hint, "left_cluster").await;
            }
        }
    }

    async fn remove(&self, target: &NodeId, hint: StoredHint, reason: &'static str) {
        match self.store.remove_if_unchanged(target, hint).await {
            Ok(true) => self.metrics.hint_dropped(target.as_str(), reason),
            Ok(false) => {}
            Err(e) => tracing::warn!(%target, error = %e, "cannot delete a hint"),
        }
    }
}
