//! The node's membership and layout history, kept together, persisted, and
//! turned into the [`ClusterView`] requests use.
//!
//! [`ClusterState`] owns the two things gossip converges (the core's
//! [`Membership`] table and [`LayoutHistory`]) behind one short mutex. Every
//! change to either goes through here, and here only:
//!
//! - it is **persisted** (the `Meta` keyspace, synced) as soon as it
//!   changes: a merged gossip message or an applied change before its answer
//!   goes back, a step of the barriers at the end of its round. A node acts
//!   on a new version (acknowledges it) only a request timeout after
//!   adopting it, so what it acted on is on disk, and a restarted node comes
//!   back with the layouts and members it knew ([`load`]);
//! - the **view is rebuilt** and swapped in: the history's active versions,
//!   and one peer per known node that is not removed (addresses from the
//!   members' own gossiped records, or from `--peer` before gossip has any);
//! - the history's **barriers** are stepped ([`ClusterState::step`], every
//!   gossip round): acknowledge the newest version once every request
//!   started with an older view has ended, read from the newest version
//!   whose data has arrived (and say so), retire versions no node reads any
//!   more, report this node synced when it has nothing to pull, and
//!   otherwise hand the streaming task the transfers to run.
//!
//! No lock is held across IO: persistence copies the state out first.
//! Decisions are the core's (`layout_history`, `membership`); this module
//! only carries them out and keeps them durable.

use crate::commit::Committer;
use crate::coordinator::WallClock;
use crate::rpc::PeerClient;
use crate::view::{ClusterView, Judge, Layouts, ViewCell};
use ringkv_core::layout::{Layout, LayoutParams, Member};
use ringkv_core::layout_history::{
    ChangeError, HistoryWire, LayoutChange, LayoutHistory, LayoutStamp, Progress,
};
use ringkv_core::membership::{Event, Membership, MembershipSnapshot};
use ringkv_core::settings::ClusterSettings;
use ringkv_core::streaming::Transfer;
use ringkv_core::NodeId;
use ringkv_storage::{Keyspace, Storage, StorageError, WriteBatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The `Meta` key the cluster state is persisted under.
const STATE_KEY: &[u8] = b"cluster_state";

/// The first byte of the persisted cluster state.
pub const CLUSTER_STATE_FORMAT_V1: u8 = 1;

/// Makes the connection for a peer (id, RPC address).
pub type Connect = Arc<dyn Fn(&NodeId, &str) -> PeerClient + Send + Sync>;

/// What a node persists about the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Persisted {
    /// Digest of the cluster's first layout: names this cluster instance.
    pub genesis: u64,
    /// The members of the first layout (for handshake diagnostics).
    pub founders: Vec<Member>,
    pub history: HistoryWire,
    pub membership: MembershipSnapshot,
}

/// Reads what the node persisted, if anything.
pub fn load(storage: &dyn Storage) -> Result<Option<Persisted>, String> {
    let Some(bytes) = storage
        .get(Keyspace::Meta, STATE_KEY)
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    match bytes.split_first() {
        Some((&CLUSTER_STATE_FORMAT_V1, body)) => postcard::from_bytes(body)
            .map(Some)
            .map_err(|e| format!("the persisted cluster state does not decode: {e}")),
        Some((format, _)) => Err(format!(
            "the persisted cluster state has format {format}; this release reads format {CLUSTER_STATE_FORMAT_V1}"
        )),
        None => Err("the persisted cluster state is empty".into()),
    }
}

/// The facts gossip gives about every node's progress.
struct Gossiped<'a>(&'a Membership);

impl Progress for Gossiped<'_> {
    fn acked(&self, id: &NodeId) -> Option<LayoutStamp> {
        self.0.entry(id).and_then(|e| e.record.acked)
    }
    fn synced(&self, id: &NodeId) -> Option<LayoutStamp> {
        self.0.entry(id).and_then(|e| e.record.synced)
    }
    fn read(&self, id: &NodeId) -> Option<LayoutStamp> {
        self.0.entry(id).and_then(|e| e.record.read)
    }
}

/// What one round of [`ClusterState::step`] asks of the streaming task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullPlan {
    /// Nothing to pull now.
    Idle,
    /// Pull these partitions, then report `target` synced.
    Pull {
        target: LayoutStamp,
        transfers: Vec<Transfer>,
    },
}

struct Inner {
    membership: Membership,
    history: LayoutHistory,
    genesis: u64,
    founders: Vec<Member>,
    /// When this node adopted its newest version (ms since `origin`).
    adopted_ms: u64,
}

/// See the module docs.
pub struct ClusterState {
    pub me: NodeId,
    pub settings: ClusterSettings,
    pub params: LayoutParams,
    /// Addresses from `--peer`, used until gossip says otherwise.
    configured: BTreeMap<NodeId, String>,
    inner: Mutex<Inner>,
    pub view: Arc<ViewCell>,
    committer: Arc<Committer>,
    connect: Connect,
    /// How long after adopting a version this node acknowledges it: every
    /// request started with an older view has ended by then.
    ack_after_ms: u64,
    /// The origin of the node's milliseconds and how peers are judged.
    pub judge: Judge,
    /// The wall clock (for forgotten-node marks).
    pub wall_clock: WallClock,
}

/// Everything [`ClusterState::new`] needs.
pub struct Founding {
    pub me: NodeId,
    pub settings: ClusterSettings,
    pub params: LayoutParams,
    pub configured: BTreeMap<NodeId, String>,
    pub membership: Membership,
    pub history: LayoutHistory,
    pub genesis: u64,
    pub founders: Vec<Member>,
    pub committer: Arc<Committer>,
    pub connect: Connect,
    pub ack_after_ms: u64,
    pub judge: Judge,
    pub wall_clock: WallClock,
}

impl ClusterState {
    /// The state, its first view built and nothing persisted yet (call
    /// [`ClusterState::persist`]).
    pub fn new(f: Founding) -> ClusterState {
        let inner = Inner {
            membership: f.membership,
            history: f.history,
            genesis: f.genesis,
            founders: f.founders,
            adopted_ms: 0,
        };
        let view = build_view(
            &f.me,
            &inner,
            &f.settings,
            &f.configured,
            None,
            &f.judge,
            &f.connect,
        );
        ClusterState {
            me: f.me,
            settings: f.settings,
            params: f.params,
            configured: f.configured,
            inner: Mutex::new(inner),
            view: Arc::new(ViewCell::new(view)),
            committer: f.committer,
            connect: f.connect,
            ack_after_ms: f.ack_after_ms,
            judge: f.judge,
            wall_clock: f.wall_clock,
        }
    }

    /// Milliseconds since the node's origin.
    pub fn now_ms(&self) -> u64 {
        self.judge.origin.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the membership and history; if it says something
    /// changed, rebuilds the view. Returns `f`'s result.
    pub fn with<T>(&self, f: impl FnOnce(&mut Membership, &mut LayoutHistory) -> (T, bool)) -> T {
        let mut inner = self.lock();
        let before = inner.history.stamps();
        let Inner {
            membership,
            history,
            ..
        } = &mut *inner;
        let (out, changed) = f(membership, history);
        if history.stamps() != before {
            inner.adopted_ms = self.now_ms();
            forget_removed(&mut inner, (self.wall_clock)());
        }
        if changed {
            self.rebuild(&inner);
        }
        out
    }

    /// Reads the membership and history.
    pub fn read<T>(&self, f: impl FnOnce(&Membership, &LayoutHistory) -> T) -> T {
        let inner = self.lock();
        f(&inner.membership, &inner.history)
    }

    pub fn genesis(&self) -> (u64, Vec<Member>) {
        let inner = self.lock();
        (inner.genesis, inner.founders.clone())
    }

    fn rebuild(&self, inner: &Inner) {
        let previous = self.view.load();
        let view = build_view(
            &self.me,
            inner,
            &self.settings,
            &self.configured,
            Some(&previous),
            &self.judge,
            &self.connect,
        );
        self.view.swap(view);
    }

    /// Applies an operator's changes as the next layout version.
    pub async fn apply(&self, changes: &[LayoutChange]) -> Result<Arc<Layout>, ChangeError> {
        let params = self.params;
        let layout = self.with(|_, history| match history.apply(changes, params) {
            Ok(l) => (Ok(l), true),
            Err(e) => (Err(e), false),
        })?;
        if let Err(e) = self.persist().await {
            tracing::error!(error = %e, "could not persist the new layout version");
        }
        Ok(layout)
    }

    /// Writes the state to the `Meta` keyspace and waits until it is
    /// durable (through the write lane and group commit, like any write, so
    /// the simulation stays deterministic).
    pub async fn persist(&self) -> Result<(), StorageError> {
        let persisted = {
            let inner = self.lock();
            Persisted {
                genesis: inner.genesis,
                founders: inner.founders.clone(),
                history: HistoryWire::of(&inner.history, |_| true),
                membership: inner.membership.snapshot(),
            }
        };
        let mut bytes = vec![CLUSTER_STATE_FORMAT_V1];
        postcard::to_io(&persisted, &mut bytes)
            .map_err(|e| StorageError::Engine(format!("encoding the cluster state: {e}")))?;
        let mut batch = WriteBatch::new();
        batch.put(Keyspace::Meta, STATE_KEY, bytes);
        let ticket = self.committer.write(batch).await?;
        self.committer.durable(ticket).await
    }

    /// One round of the history's barriers at `now_ms` (see the module
    /// docs). Returns what the streaming task should do, and whether the
    /// state changed (and should be persisted).
    pub fn step(&self, now_ms: u64) -> (PullPlan, bool) {
        let ack_after_ms = self.ack_after_ms;
        let me = self.me.clone();
        let width = self.transfer_width();
        let mut inner = self.lock();
        let newest = inner.history.newest().stamp;
        let mut changed = false;
        // 1. Acknowledge the newest version once old requests have ended.
        let acked = inner.membership.own().record.acked;
        if acked != Some(newest) && now_ms.saturating_sub(inner.adopted_ms) >= ack_after_ms {
            changed |= inner
                .membership
                .update_self(|r| r.acked = Some(newest))
                .unwrap_or(false);
        }
        // 2. Read from the newest version whose data has arrived, and say so.
        let readable = {
            let Inner {
                membership,
                history,
                ..
            } = &*inner;
            LayoutStamp::of(history.readable(&Gossiped(membership)))
        };
        if inner.membership.own().record.read != Some(readable) {
            changed |= inner
                .membership
                .update_self(|r| r.read = Some(readable))
                .unwrap_or(false);
        }
        // 3. Retire versions no node reads any more.
        let Inner {
            membership,
            history,
            ..
        } = &mut *inner;
        let retired = history.retire(&Gossiped(membership));
        if !retired.is_empty() {
            tracing::info!(retired = ?retired.iter().map(|s| s.version).collect::<Vec<_>>(), oldest = history.oldest().version(), "layout versions retired: every node reads a newer one");
            forget_removed(&mut inner, (self.wall_clock)());
            changed = true;
        }
        // 4. Pull what this node gained, once every node writes with it.
        let progress = Gossiped(&inner.membership);
        let waiting = !inner.history.in_transition() || !inner.history.all_acked(&progress);
        let sync = if waiting || inner.membership.own().record.synced == Some(newest) {
            PullPlan::Idle
        } else {
            let transfers = inner.history.transfers(&me, width);
            if transfers.is_empty() {
                changed |= inner
                    .membership
                    .update_self(|r| r.synced = Some(newest))
                    .unwrap_or(false);
                PullPlan::Idle
            } else {
                PullPlan::Pull {
                    target: newest,
                    transfers,
                }
            }
        };
        if changed {
            self.rebuild(&inner);
        }
        (sync, changed)
    }

    /// Reports this node's pull towards `target` done (the data is durable).
    pub fn synced(&self, target: LayoutStamp) {
        self.with(|membership, history| {
            let current = history.newest().stamp == target;
            let changed = current
                && membership
                    .update_self(|r| {
                        r.synced = Some(target);
                        r.transfer = None;
                    })
                    .unwrap_or(false);
            ((), changed)
        });
    }

    /// How far down each preference list a node must hold data: the
    /// largest N of the cluster and its buckets.
    pub fn transfer_width(&self) -> usize {
        self.settings
            .buckets
            .values()
            .filter_map(|b| b.n)
            .fold(self.settings.replication.n, usize::max)
    }
}

/// Drops the gossip entries of removed nodes (their marks travel, so they
/// do not come back).
fn forget_removed(inner: &mut Inner, wall_ms: u64) {
    let removed = inner.history.removed().clone();
    if removed.is_empty() {
        return;
    }
    inner.membership.retain(wall_ms, |id| !removed.contains(id));
}

/// The view of `inner`: the history, and a peer for every known node that
/// is not removed.
fn build_view(
    me: &NodeId,
    inner: &Inner,
    settings: &ClusterSettings,
    configured: &BTreeMap<NodeId, String>,
    previous: Option<&ClusterView>,
    judge: &Judge,
    connect: &Connect,
) -> ClusterView {
    let mut addresses: BTreeMap<NodeId, String> = configured.clone();
    for (id, entry) in inner.membership.entries() {
        // A node listening on every interface (0.0.0.0) says so; where
        // `--peer` gave a reachable address for it, that one is used.
        let rpc = &entry.record.rpc;
        if !(is_unspecified(rpc) && configured.contains_key(id)) {
            addresses.insert(id.clone(), rpc.clone());
        }
    }
    addresses.retain(|id, _| !inner.history.is_removed(id));
    let layouts = Layouts {
        read: inner.history.readable(&Gossiped(&inner.membership)).clone(),
        history: Arc::new(inner.history.clone()),
    };
    ClusterView::rebuild(
        me.clone(),
        layouts,
        settings.clone(),
        &addresses,
        previous,
        judge,
        |id, rpc| connect(id, rpc),
    )
}

/// Whether `addr` (`host:port`) names no particular host (0.0.0.0, [::]).
fn is_unspecified(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_unspecified())
}

/// Handles the events of a gossip merge: heartbeats feed the failure
/// detector; record changes rebuild the view. Returns whether the state
/// should be persisted.
pub fn on_events(view: &ClusterView, events: &[Event]) -> bool {
    let mut changed = false;
    for event in events {
        match event {
            Event::Heartbeat(id) => {
                if let Some(peer) = view.peer(id) {
                    peer.heartbeat();
                }
            }
            Event::IdentityConflict { theirs, generation } => {
                tracing::error!(?theirs, generation, "another process gossips with this node's id (or this node's clock went backwards); this node's record now wins with a newer generation")
            }
            Event::SelfForgotten { .. } => {
                tracing::warn!("the cluster has removed this node; it can be stopped")
            }
            Event::TableFull(id) => {
                tracing::warn!(node = %id, "membership table is full; a new node was not added")
            }
            Event::Changed(_) | Event::Forgotten(_) => changed = true,
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::layout::compute_layout;
    use ringkv_core::membership::NodeRecord;
    use ringkv_storage::MemStorage;

    fn stored(bytes: &[u8]) -> MemStorage {
        let storage = MemStorage::new();
        let mut batch = WriteBatch::new();
        batch.put(Keyspace::Meta, STATE_KEY, bytes.to_vec());
        storage.write(batch).unwrap();
        storage
    }

    #[test]
    fn the_persisted_state_round_trips_and_a_damaged_one_is_refused_with_a_reason() {
        let id = NodeId::new("n1").unwrap();
        let member = Member {
            id: id.clone(),
            capacity: 1,
            zone: None,
        };
        let params = LayoutParams {
            partitions: 4,
            replication: 1,
        };
        let layout = Arc::new(compute_layout(std::slice::from_ref(&member), params, None).unwrap());
        let history = LayoutHistory::new(layout.clone());
        let membership = Membership::new(NodeRecord::new(id, "127.0.0.1:9001", 1), 5).unwrap();
        let persisted = Persisted {
            genesis: layout.digest(),
            founders: vec![member],
            history: HistoryWire::of(&history, |_| true),
            membership: membership.snapshot(),
        };
        let mut bytes = vec![CLUSTER_STATE_FORMAT_V1];
        bytes.extend(postcard::to_allocvec(&persisted).unwrap());
        let back = load(&stored(&bytes)).unwrap().unwrap();
        assert_eq!(back.genesis, layout.digest());
        assert_eq!(back.history.restore(params).unwrap(), Some(history));

        assert!(load(&MemStorage::new()).unwrap().is_none());
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(load(&stored(&other)).unwrap_err().contains("format 9"));
        assert!(load(&stored(&bytes[..bytes.len() / 2]))
            .unwrap_err()
            .contains("does not decode"));
        assert!(load(&stored(&[])).unwrap_err().contains("empty"));
    }
}
