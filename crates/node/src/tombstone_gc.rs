//! The tombstone collector (D4, D5): reaps deleted and expired keys once
//! every home holds the same delete and the grace period has passed.
//!
//! The rule and why it is safe are the core's ([`ringkv_core::tombstones`]);
//! this task carries it out. Every `interval` it reads the next page of this
//! node's `data` keyspace (a cursor walks the whole keyspace round and round,
//! [`GC_SCAN_PAGE`] records a round), and for each key that
//! [`reapable`] says has been deleted long enough, and that this node is
//! the first home of (so one node per key does the work):
//!
//! 1. reads the other homes' copies; any failure or disagreement
//!    ([`homes_agree`]) leaves the key for a later round (anti-entropy makes
//!    the homes agree meanwhile);
//! 2. asks each home that holds the delete to reap it (`Request::Reap`, a
//!    compare-and-delete), then reaps its own copy the same way.
//!
//! A crash between the steps leaves some homes with the delete and some
//! without; the next round sees "the same object or nothing" and finishes.
//!
//! No round runs while a layout change is in flight: a node that is
//! gaining the key may not hold the delete yet, and reaping it on the old
//! homes could let that node's older copy come back once it is a home.
//! Reaped keys are counted in `ringkv_tombstones_reaped_total` on the node
//! that deleted its copy.

use crate::metrics::Metrics;
use crate::replica::LocalReplica;
use crate::view::ViewCell;
use ringkv_core::codec::decode_object;
use ringkv_core::key::ObjectKey;
use ringkv_core::protocol::{Request, Response};
use ringkv_core::siblings::Siblings;
use ringkv_core::tombstones::{homes_agree, reapable};
use ringkv_core::NodeId;
use ringkv_storage::Keyspace;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Default pause between collector rounds.
pub const GC_INTERVAL_MS: u64 = 10_000;
/// Records read per round.
pub const GC_SCAN_PAGE: usize = 1024;
/// How long one call to a peer may take.
const CALL_TIMEOUT_MS: u64 = 5_000;

/// What the collector needs.
pub struct TombstoneCollector {
    pub id: NodeId,
    pub replica: Arc<LocalReplica>,
    pub view: Arc<ViewCell>,
    pub metrics: Arc<Metrics>,
    pub wall_clock: crate::coordinator::WallClock,
    pub grace_ms: u64,
    pub interval: Duration,
    /// The origin of the milliseconds health records see.
    pub origin: Instant,
}

impl TombstoneCollector {
    /// Runs rounds until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut cursor: Vec<u8> = Vec::new();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            if self.view.load().history.in_transition() {
                continue;
            }
            let candidates = match self.next_page(&mut cursor).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "tombstone collector cannot read storage");
                    continue;
                }
            };
            for (key, object) in candidates {
                if stop.is_cancelled() {
                    return;
                }
                self.collect(key, object).await;
            }
        }
    }

    /// Reads the next page from `cursor` (wrapping to the start at the end)
    /// and keeps the reapable keys this node is the first home of.
    async fn next_page(
        &self,
        cursor: &mut Vec<u8>,
    ) -> Result<Vec<(ObjectKey, Siblings)>, ringkv_storage::StorageError> {
        let storage = self.replica.storage().clone();
        let start = cursor.clone();
        let page = self
            .replica
            .lanes()
            .read(move || storage.scan_skipping_corrupt(Keyspace::Data, &start, None, GC_SCAN_PAGE))
            .await
            .map_err(|e| ringkv_storage::StorageError::Engine(e.to_string()))??;
        *cursor = page.resume_after().unwrap_or_default();
        let page = page.records;
        let now = (self.wall_clock)();
        let view = self.view.load();
        Ok(page
            .into_iter()
            .filter_map(|(raw_key, raw)| {
                let object = decode_object(&raw).ok()?;
                if !reapable(&object, now, self.grace_ms) {
                    return None;
                }
                let key = ObjectKey::from_storage_key(&raw_key).ok()?;
                let first_home = view.preference_list(&key, 1).into_iter().next();
                (first_home.as_ref() == Some(&self.id)).then_some((key, object))
            })
            .collect())
    }

    /// Reaps `key` everywhere if every home agrees (module docs).
    async fn collect(&self, key: ObjectKey, object: Siblings) {
        let view = self.view.load();
        let n = view
            .settings
            .buckets
            .get(&key.bucket)
            .and_then(|p| p.n)
            .unwrap_or(view.settings.replication.n);
        let others: Vec<NodeId> = view
            .preference_list(&key, n)
            .into_iter()
            .filter(|h| *h != self.id)
            .collect();
        let mut copies = Vec::with_capacity(others.len());
        for home in &others {
            let read = Request::ReplicaRead {
                key: key.clone(),
                hint_for: None,
            };
            match self.call(&view, home, read).await {
                Some(Response::ReplicaRead(Ok(copy))) => copies.push(copy),
                _ => return,
            }
        }
        if !homes_agree(&object, &copies) {
            return;
        }
        for (home, copy) in others.iter().zip(&copies) {
            if copy.is_none() {
                continue;
            }
            let reap = Request::Reap {
                key: key.clone(),
                object: object.clone(),
            };
            if !matches!(
                self.call(&view, home, reap).await,
                Some(Response::Reap(Ok(_)))
            ) {
                return;
            }
        }
        match self.replica.reap_if_unchanged(&key, object).await {
            Ok(true) => self.metrics.tombstone_reaped(),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "could not reap a tombstone"),
        }
    }

    async fn call(
        &self,
        view: &crate::view::ClusterView,
        to: &NodeId,
        request: Request,
    ) -> Option<Response> {
        let peer = view.peer(to)?;
        let timeout = Duration::from_millis(CALL_TIMEOUT_MS);
        peer.call(request, timeout, self.origin).await.ok()
    }
}
