//! Group commit: making acknowledged writes durable, many per fsync (F6).
//!
//! A write goes into the storage engine at once (fast, in memory and the
//! engine's journal buffer) and then, under [`FsyncPolicy::Always`], waits
//! for a sync that started after it. One syncer task runs syncs back to back:
//! every write that arrived while one sync was running shares the next one,
//! so under load one fsync covers a whole batch. Under
//! [`FsyncPolicy::Periodic`] writes are acknowledged at once and a timer syncs
//! every `interval_ms`: a crash can lose up to that much acknowledged data,
//! in exchange for far fewer fsyncs.
//!
//! No engine call runs on an async worker: batches are applied on the
//! storage write lane ([`Committer::write_on_lane`] demands the lane's
//! [`WriteTurn`]; [`Committer::write`] queues a batch there) and syncs run on
//! the sync lane (see [`crate::storage_lanes`]). The write lane is one
//! thread, so tickets are handed out in write order. For the in-memory
//! engine the lanes run inline, which keeps the simulation deterministic.
//!
//! No lock is held across the sync or any await: writers take a ticket (a
//! sequence number) and park a oneshot in a waiter list; after each sync the
//! syncer wakes exactly the writers whose tickets it covered. A failed sync
//! is sticky: no write is acknowledged or accepted after it.

use crate::metrics::Metrics;
use crate::storage_lanes::{LaneError, StorageLanes, WriteTurn};
use ringkv_storage::{Storage, StorageError, WriteBatch};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

/// When a write counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FsyncPolicy {
    /// A write is acknowledged only after an fsync that covers it.
    #[default]
    Always,
    /// Writes are acknowledged at once; an fsync runs every `interval_ms`.
    Periodic { interval_ms: u64 },
}

impl FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "always" => Ok(FsyncPolicy::Always),
            Some(("periodic", ms)) => match ms.parse::<u64>() {
                Ok(interval_ms) if interval_ms > 0 => Ok(FsyncPolicy::Periodic { interval_ms }),
                _ => Err(format!(
                    "bad fsync interval {ms:?}: expected milliseconds > 0"
                )),
            },
            _ => Err(format!(
                "bad fsync policy {s:?}: expected 'always' or 'periodic:<ms>'"
            )),
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Periodic { interval_ms } => write!(f, "periodic:{interval_ms}"),
        }
    }
}

impl TryFrom<String> for FsyncPolicy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<FsyncPolicy> for String {
    fn from(p: FsyncPolicy) -> String {
        p.to_string()
    }
}

/// What the syncer has made durable so far, and who is waiting for more.
#[derive(Debug, Default)]
struct SyncState {
    /// Every ticket up to this one is durable. Never moves backwards.
    synced: u64,
    /// The first failed sync. Sticky: after an fsync error the kernel may have
    /// dropped the dirty pages, so nothing written since the last good sync
    /// can be called durable again, and the committer refuses new writes.
    poisoned: Option<String>,
    /// Writers waiting for their ticket to be synced. Only the writers a sync
    /// covers are woken, never the whole queue.
    waiters: Vec<(u64, oneshot::Sender<Result<(), String>>)>,
}

impl SyncState {
    /// The outcome for `ticket` if it is already decided.
    fn outcome(&self, ticket: u64) -> Option<Result<(), String>> {
        if self.synced >= ticket {
            return Some(Ok(()));
        }
        self.poisoned.clone().map(Err)
    }
}

/// Writes batches and makes them durable according to the policy.
pub struct Committer {
    storage: Arc<dyn Storage>,
    policy: FsyncPolicy,
    written: AtomicU64,
    /// Set by [`Committer::close`]: no write is accepted after it.
    closing: AtomicBool,
    wake: Notify,
    state: Mutex<SyncState>,
    metrics: Arc<Metrics>,
    /// Where engine calls run (see [`crate::storage_lanes`]).
    lanes: Arc<StorageLanes>,
}

impl Committer {
    /// Creates a committer and starts its syncer task, which stops (after a
    /// final sync) when `shutdown` is cancelled. Engine calls run on `lanes`.
    pub fn start(
        storage: Arc<dyn Storage>,
        policy: FsyncPolicy,
        metrics: Arc<Metrics>,
        lanes: Arc<StorageLanes>,
        shutdown: CancellationToken,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let committer = Arc::new(Committer {
            storage,
            policy,
            written: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            wake: Notify::new(),
            state: Mutex::new(SyncState::default()),
            metrics,
            lanes,
        });
        let task = tokio::spawn(committer.clone().run(shutdown));
        (committer, task)
    }

    /// The storage engine behind this committer.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The lanes engine calls run on.
    pub fn lanes(&self) -> &Arc<StorageLanes> {
        &self.lanes
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `batch` to storage on the write lane; returns its ticket for
    /// [`Committer::durable`].
    pub async fn write(self: &Arc<Self>, batch: WriteBatch) -> Result<u64, StorageError> {
        let this = self.clone();
        self.lanes
            .write(move |turn| this.write_on_lane(batch, turn))
            .await
            .map_err(lane_error)?
    }

    /// Applies `batch` to storage and returns a ticket to wait on with
    /// [`Committer::durable`]. Runs only on the write lane (hence `turn`),
    /// so the ticket order matches the write order; await durability off it.
    pub fn write_on_lane(&self, batch: WriteBatch, _turn: &WriteTurn) -> Result<u64, StorageError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(StorageError::Engine("node is shutting down".into()));
        }
        if let Some(e) = &self.state().poisoned {
            return Err(StorageError::Engine(format!(
                "storage refuses writes after a failed sync: {e}"
            )));
        }
        self.storage.write(batch)?;
        Ok(self.written.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// The ticket of the latest write applied so far (0 before the first).
    /// Waiting on it covers every write applied until now.
    pub fn last_ticket(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Waits until the write with `ticket` is durable as the policy promises.
    pub async fn durable(&self, ticket: u64) -> Result<(), StorageError> {
        if let FsyncPolicy::Periodic { .. } = self.policy {
            return Ok(());
        }
        let waiting = {
            let mut state = self.state();
            match state.outcome(ticket) {
                Some(done) => Err(done),
                None => {
                    let (tx, rx) = oneshot::channel();
                    state.waiters.push((ticket, tx));
                    Ok(rx)
                }
            }
        };
        let outcome = match waiting {
            Err(done) => done,
            Ok(rx) => {
                self.wake.notify_one();
                rx.await
                    .unwrap_or_else(|_| Err("node is shutting down".into()))
            }
        };
        outcome.map_err(|e| StorageError::Engine(format!("sync failed: {e}")))
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let period = match self.policy {
            FsyncPolicy::Always => None,
            FsyncPolicy::Periodic { interval_ms } => Some(Duration::from_millis(interval_ms)),
        };
        loop {
            let stop = tokio::select! {
                biased;
                _ = self.wake.notified(), if period.is_none() => false,
                _ = tokio::time::sleep(period.unwrap_or_default()), if period.is_some() => false,
                _ = shutdown.cancelled() => true,
            };
            self.sync_pending().await;
            if stop {
                // Nothing syncs after this: answer every writer still waiting.
                let mut state = self.state();
                for (ticket, tx) in std::mem::take(&mut state.waiters) {
                    let _ = tx.send(
                        state
                            .outcome(ticket)
                            .unwrap_or_else(|| Err("node is shutting down".into())),
                    );
                }
                return;
            }
        }
    }

    /// Syncs everything written so far, if anything is unsynced.
    async fn sync_pending(&self) {
        let target = self.written.load(Ordering::Acquire);
        let (synced, poisoned) = {
            let state = self.state();
            (state.synced, state.poisoned.is_some())
        };
        if target <= synced || poisoned {
            return;
        }
        let started = tokio::time::Instant::now();
        let simulated_ms = self.storage.simulated_sync_ms();
        if simulated_ms > 0 {
            // A simulated disk's fsync latency (0 for real engines): writes
            // made meanwhile stay unsynced, and are covered by this sync.
            tokio::time::sleep(Duration::from_millis(simulated_ms)).await;
        }
        let storage = self.storage.clone();
        let result = match self.lanes.sync(move || storage.sync()).await {
            Ok(synced) => synced,
            Err(e) => Err(lane_error(e)),
        };
        self.metrics
            .observe_sync(target - synced, started.elapsed());
        let mut state = self.state();
        match result {
            Ok(()) if state.poisoned.is_none() => state.synced = state.synced.max(target),
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "storage sync failed; refusing writes from now on");
                state.poisoned.get_or_insert_with(|| e.to_string());
            }
        }
        let waiters = std::mem::take(&mut state.waiters);
        for (ticket, tx) in waiters {
            match state.outcome(ticket) {
                Some(done) => {
                    let _ = tx.send(done);
                }
                None => state.waiters.push((ticket, tx)),
            }
        }
    }

    /// Refuses further writes and makes everything written so far durable.
    /// An error means some acknowledged-or-not write may not be on disk.
    pub async fn close(&self) -> Result<(), String> {
        self.closing.store(true, Ordering::Release);
        // A write already on the lane may still reach the engine: wait for
        // it with an empty job queued behind it (FIFO). Every write queued
        // later is refused by the `closing` check.
        while let Err(LaneError::Overloaded { .. }) = self.lanes.write(|_| ()).await {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.sync_pending().await;
        let state = self.state();
        match &state.poisoned {
            Some(e) => Err(e.clone()),
            None if state.synced < self.written.load(Ordering::Acquire) => {
                Err("the final sync did not cover every write".into())
            }
            None => Ok(()),
        }
    }
}

fn lane_error(e: LaneError) -> StorageError {
    StorageError::Engine(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_storage::{Keyspace, MemStorage};

    #[test]
    fn policy_parses_and_prints() {
        assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
        assert_eq!(
            "periodic:10".parse(),
            Ok(FsyncPolicy::Periodic { interval_ms: 10 })
        );
        for bad in ["", "sometimes", "periodic:", "periodic:0", "periodic:x"] {
            assert!(bad.parse::<FsyncPolicy>().is_err(), "{bad}");
        }
        assert_eq!(
            FsyncPolicy::Periodic { interval_ms: 5 }.to_string(),
            "periodic:5"
        );
    }

    #[tokio::test]
    async fn always_acknowledges_only_synced_writes_and_batches_them() {
        let mem = MemStorage::new();
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let (c, task) = Committer::start(
            Arc::new(mem.clone()),
            FsyncPolicy::Always,
            metrics,
            Arc::new(StorageLanes::inline()),
            shutdown.clone(),
        );
        let mut tickets = Vec::new();
        for i in 0..10u8 {
            let mut b = WriteBatch::new();
            b.put(Keyspace::Data, vec![i], vec![i]);
            tickets.push(c.write(b).await.unwrap());
        }
        let waits = tickets.iter().map(|t| c.durable(*t));
        for r in futures_util::future::join_all(waits).await {
            r.unwrap();
        }
        mem.crash();
        for i in 0..10u8 {
            assert_eq!(mem.get(Keyspace::Data, &[i]).unwrap(), Some(vec![i]));
        }
        shutdown.cancel();
        task.await.unwrap();
    }

    /// An engine whose syncs fail while `failing` is set.
    struct FlakySync {
        inner: MemStorage,
        failing: std::sync::atomic::AtomicBool,
    }

    impl Storage for FlakySync {
        fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            self.inner.get(ks, key)
        }
        fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
            self.inner.write(batch)
        }
        fn sync(&self) -> Result<(), StorageError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StorageError::Engine("EIO".into()));
            }
            self.inner.sync()
        }
        fn sync_blocks(&self) -> bool {
            false
        }
        fn scan_skipping_corrupt(
            &self,
            ks: Keyspace,
            start: &[u8],
            end: Option<&[u8]>,
            limit: usize,
        ) -> Result<ringkv_storage::Scanned, StorageError> {
            self.inner.scan_skipping_corrupt(ks, start, end, limit)
        }
        fn approximate_len(&self, ks: Keyspace) -> Result<u64, StorageError> {
            self.inner.approximate_len(ks)
        }
    }

    #[tokio::test]
    async fn a_failed_sync_is_sticky_refuses_writes_and_fails_close() {
        let flaky = Arc::new(FlakySync {
            inner: MemStorage::new(),
            failing: true.into(),
        });
        let shutdown = CancellationToken::new();
        let (c, task) = Committer::start(
            flaky.clone(),
            FsyncPolicy::Always,
            Arc::new(Metrics::new()),
            Arc::new(StorageLanes::inline()),
            shutdown.clone(),
        );
        let batch = || {
            let mut b = WriteBatch::new();
            b.put(Keyspace::Data, b"k".to_vec(), b"v".to_vec());
            b
        };
        let ticket = c.write(batch()).await.unwrap();
        assert!(
            c.durable(ticket).await.is_err(),
            "a failed fsync is not an acknowledgement"
        );
        flaky.failing.store(false, Ordering::SeqCst);
        assert!(
            c.write(batch()).await.is_err(),
            "no writes after a failed sync"
        );
        assert!(
            c.durable(ticket).await.is_err(),
            "a later good sync does not bless the lost write"
        );
        assert!(c.close().await.is_err());
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn close_syncs_everything_and_refuses_later_writes() {
        let mem = MemStorage::new();
        let shutdown = CancellationToken::new();
        let (c, task) = Committer::start(
            Arc::new(mem.clone()),
            FsyncPolicy::Periodic {
                interval_ms: 60_000,
            },
            Arc::new(Metrics::new()),
            Arc::new(StorageLanes::inline()),
            shutdown.clone(),
        );
        let mut b = WriteBatch::new();
        b.put(Keyspace::Data, b"k".to_vec(), b"v".to_vec());
        c.write(b.clone()).await.unwrap();
        c.close().await.unwrap();
        assert!(c.write(b).await.is_err());
        mem.crash();
        assert_eq!(
            mem.get(Keyspace::Data, b"k").unwrap(),
            Some(b"v".to_vec()),
            "close synced it"
        );
        shutdown.cancel();
        task.await.unwrap();
    }
}
