//! The cluster view: one snapshot of what this node knows about the cluster,
//! swapped atomically when it changes.
//!
//! A [`ClusterView`] holds the layout (which nodes hold which partition), the
//! settings every node must share, and one [`Peer`] per other member: its
//! RPC address, its connection ([`PeerClient`]) and its health as this node
//! sees it. A request loads the current view once at its start
//! ([`ViewCell::load`], one atomic increment) and uses that snapshot to the
//! end, so a view change never splits one request across two layouts. A
//! change builds a whole new view ([`ClusterView::rebuild`]) and swaps it in;
//! peers that stay (same id, same address) keep their connection and health
//! record, new ones are added, and departed ones are dropped with the old
//! view once no request holds it. That is the peer pool: it grows and shrinks
//! with the view, looked up by member id.
//!
//! Liveness is recorded in place (a short mutex per peer), not by swapping
//! the view: it changes on every call outcome and gossip heartbeat. Each
//! peer has a [`Liveness`] (the core's phi-accrual detector fed by gossip
//! heartbeats, [`Peer::heartbeat`], plus typed call outcomes, with
//! hysteresis so a flapping peer does not flap); the status it gives orders
//! whom a request asks first and picks stand-ins; it never changes
//! placement. A peer's passage to `Down` logs one WARN line and its return
//! to `Up` one INFO line ([`Peer::record`]); calls in between log nothing, so
//! an outage reads as two lines however many requests it failed.
//!
//! This module holds state; it makes no placement or quorum decisions (the
//! core's layout and coordination machines do), and its only IO is
//! [`Peer::call`], one recorded call for background tasks.

use crate::rpc::{failure_of, PeerClient};
use arc_swap::ArcSwap;
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::health::{PeerHealth, PeerStatus};
use ringkv_core::key::ObjectKey;
use ringkv_core::layout::{partition_of, Layout};
use ringkv_core::layout_history::LayoutHistory;
use ringkv_core::liveness::{Liveness, LivenessConfig};
use ringkv_core::protocol::{Request, Response};
use ringkv_core::settings::ClusterSettings;
use ringkv_core::NodeId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Another member, as this node reaches and judges it.
pub struct Peer {
    pub id: NodeId,
    /// Its RPC address, `host:port`.
    pub rpc: String,
    pub client: PeerClient,
    origin: Instant,
    health: Mutex<Judged>,
}

/// How peers are judged: the origin of the milliseconds their liveness
/// sees, and the failure detector's settings.
#[derive(Debug, Clone)]
pub struct Judge {
    pub origin: Instant,
    pub liveness: LivenessConfig,
}

/// A peer's liveness (phi-accrual detector and call outcomes) and whether
/// its being down was logged.
struct Judged {
    liveness: Liveness,
    /// A WARN said the peer is down, and no INFO has said it is back.
    reported_down: bool,
}

/// A status change worth one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transition {
    WentDown,
    CameBack,
}

/// Whether a peer now `status` crossed a logged boundary, given whether its
/// going down was already reported; updates `reported_down`.
fn transition(reported_down: &mut bool, status: PeerStatus) -> Option<Transition> {
    match (status, *reported_down) {
        (PeerStatus::Down, false) => {
            *reported_down = true;
            Some(Transition::WentDown)
        }
        (PeerStatus::Up, true) => {
            *reported_down = false;
            Some(Transition::CameBack)
        }
        _ => None,
    }
}

impl Peer {
    pub fn new(id: NodeId, rpc: String, client: PeerClient, judge: &Judge) -> Self {
        let now_ms = judge.origin.elapsed().as_millis() as u64;
        Peer {
            id,
            rpc,
            client,
            origin: judge.origin,
            health: Mutex::new(Judged {
                liveness: Liveness::new(now_ms, &judge.liveness),
                reported_down: false,
            }),
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Gossip saw the peer's heartbeat advance: feeds its failure detector.
    pub fn heartbeat(&self) {
        let now_ms = self.now_ms();
        let changed = {
            let mut judged = self.judged();
            judged.liveness.on_heartbeat(now_ms);
            let status = judged.liveness.status(now_ms);
            transition(&mut judged.reported_down, status)
        };
        if changed == Some(Transition::CameBack) {
            tracing::info!(peer = %self.id, rpc = %self.rpc, "peer is back up");
        }
    }

    /// Records a call outcome at `now_ms` (the node's clock origin), and
    /// logs when the peer goes down (WARN) or comes back (INFO).
    pub fn record(&self, now_ms: u64, outcome: Result<(), &ReplicaFailure>) {
        let changed = {
            let mut judged = self.judged();
            judged.liveness.record(now_ms, outcome);
            let status = judged.liveness.status(now_ms);
            transition(&mut judged.reported_down, status)
        };
        match changed {
            Some(Transition::WentDown) => tracing::warn!(
                peer = %self.id,
                rpc = %self.rpc,
                reason = %outcome.err().map_or(String::new(), |f| f.to_string()),
                "peer is down: requests ask it last until it answers again"
            ),
            Some(Transition::CameBack) => {
                tracing::info!(peer = %self.id, rpc = %self.rpc, "peer is back up")
            }
            None => {}
        }
    }

    /// Calls the peer (background work: hint delivery, anti-entropy, the
    /// collector, the probe), records the outcome in its health at the
    /// time since `origin`, and returns it as a typed failure.
    pub async fn call(
        &self,
        request: Request,
        timeout: Duration,
        origin: Instant,
    ) -> Result<Response, ReplicaFailure> {
        let outcome = self
            .client
            .call(request, timeout)
            .await
            .map_err(|e| failure_of(&e));
        let now_ms = origin.elapsed().as_millis() as u64;
        self.record(now_ms, outcome.as_ref().map(|_| ()));
        outcome
    }

    fn judged(&self) -> std::sync::MutexGuard<'_, Judged> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the call-outcome record.
    pub fn health(&self) -> PeerHealth {
        self.judged().liveness.health().clone()
    }

    /// How this node judges the peer now.
    pub fn status(&self) -> PeerStatus {
        let now_ms = self.now_ms();
        self.judged().liveness.status(now_ms)
    }

    /// The failure detector's suspicion level now.
    pub fn phi(&self) -> f64 {
        let now_ms = self.now_ms();
        self.judged().liveness.phi(now_ms)
    }
}

/// The active layout versions and the one reads use.
pub struct Layouts {
    pub history: Arc<LayoutHistory>,
    pub read: Arc<Layout>,
}

/// Everything a request needs to know about the cluster, as of one moment.
pub struct ClusterView {
    /// This node.
    pub me: NodeId,
    /// The active layout versions ([`ringkv_core::layout_history`]).
    pub history: Arc<LayoutHistory>,
    /// The read version: the newest active layout whose data has arrived
    /// ([`LayoutHistory::readable`]). Reads, coordination, forwarding,
    /// anti-entropy and collection place keys with it.
    pub layout: Arc<Layout>,
    pub settings: ClusterSettings,
    /// Every other member, by id.
    peers: BTreeMap<NodeId, Arc<Peer>>,
}

impl ClusterView {
    /// A view of `layout` with the given peer addresses. `connect` makes the
    /// client for a peer that `previous` does not already have at the same
    /// address; peers of `previous` at the same address are reused.
    pub fn rebuild(
        me: NodeId,
        layouts: Layouts,
        settings: ClusterSettings,
        addresses: &BTreeMap<NodeId, String>,
        previous: Option<&ClusterView>,
        judge: &Judge,
        connect: impl Fn(&NodeId, &str) -> PeerClient,
    ) -> ClusterView {
        let peers = addresses
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, rpc)| {
                let kept = previous
                    .and_then(|v| v.peers.get(id))
                    .filter(|p| p.rpc == *rpc)
                    .cloned();
                let peer = kept.unwrap_or_else(|| {
                    Arc::new(Peer::new(id.clone(), rpc.clone(), connect(id, rpc), judge))
                });
                (id.clone(), peer)
            })
            .collect();
        ClusterView {
            me,
            layout: layouts.read,
            history: layouts.history,
            settings,
            peers,
        }
    }

    pub fn peer(&self, id: &NodeId) -> Option<&Arc<Peer>> {
        self.peers.get(id)
    }

    pub fn peers(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.peers.values()
    }

    /// Whether this node judges `id` up (or suspect): not down.
    pub fn is_up(&self, id: &NodeId) -> bool {
        self.status(id) != PeerStatus::Down
    }

    /// How this node judges `id` (itself: always up; unknown nodes: down).
    pub fn status(&self, id: &NodeId) -> PeerStatus {
        if *id == self.me {
            return PeerStatus::Up;
        }
        self.peers.get(id).map_or(PeerStatus::Down, |p| p.status())
    }

    /// The first `len` nodes of the key's partition's preference list, in
    /// the read version.
    pub fn preference_list(&self, key: &ObjectKey, len: usize) -> Vec<NodeId> {
        let partition = partition_of(key.position(), self.layout.partitions());
        self.layout
            .preference_list(partition)
            .take(len)
            .cloned()
            .collect()
    }

    /// The key's `n` homes in each other active layout version than the
    /// read version (none when no change is in flight): a write needs W
    /// among each group too.
    pub fn other_homes(&self, key: &ObjectKey, n: usize) -> Vec<Vec<NodeId>> {
        let partition = partition_of(key.position(), self.layout.partitions());
        self.history
            .layouts()
            .filter(|l| l.version() != self.layout.version())
            .map(|l| l.preference_list(partition).take(n).cloned().collect())
            .collect()
    }
}

/// The current view, swapped atomically.
pub struct ViewCell {
    current: ArcSwap<ClusterView>,
}

impl ViewCell {
    pub fn new(view: ClusterView) -> Self {
        ViewCell {
            current: ArcSwap::from_pointee(view),
        }
    }

    /// The current snapshot; hold it for the whole request.
    pub fn load(&self) -> Arc<ClusterView> {
        self.current.load_full()
    }

    /// Makes `view` current; requests already running keep the old one.
    pub fn swap(&self, view: ClusterView) {
        self.current.store(Arc::new(view));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::TcpNetwork;
    use ringkv_core::layout::{compute_layout, LayoutParams, Member};
    use ringkv_core::replication::Replication;
    use std::time::Duration;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn view_of(ids: &[&str], previous: Option<&ClusterView>) -> ClusterView {
        let members: Vec<Member> = ids
            .iter()
            .map(|i| Member {
                id: id(i),
                capacity: 1,
                zone: None,
            })
            .collect();
        let params = LayoutParams {
            partitions: 16,
            replication: 2,
        };
        let layout = compute_layout(&members, params, None).unwrap();
        let settings = ClusterSettings {
            partitions: 16,
            replication: Replication { n: 2, r: 1, w: 1 },
            buckets: Default::default(),
        };
        let addresses = ids
            .iter()
            .enumerate()
            .map(|(i, n)| (id(n), format!("127.0.0.1:{}", 1000 + i)))
            .collect();
        // These clients never connect: any greeting will do.
        let hello = crate::rpc::Greeting::client("c", ringkv_core::auth::ClusterKey::open());
        let layout = Arc::new(layout);
        let layouts = Layouts {
            history: Arc::new(LayoutHistory::new(layout.clone())),
            read: layout,
        };
        ClusterView::rebuild(
            id("a"),
            layouts,
            settings,
            &addresses,
            previous,
            &Judge {
                origin: Instant::now(),
                liveness: LivenessConfig::default(),
            },
            |peer, rpc| {
                PeerClient::new(
                    peer.clone(),
                    rpc.to_string(),
                    hello.clone(),
                    Arc::new(TcpNetwork),
                    Duration::from_millis(100),
                )
            },
        )
    }

    #[test]
    fn a_rebuilt_view_keeps_staying_peers_adds_new_ones_and_drops_departed_ones() {
        let first = view_of(&["a", "b", "c"], None);
        let ids = |v: &ClusterView| v.peers().map(|p| p.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&first), ["b", "c"], "this node is not its own peer");
        first.peer(&id("b")).unwrap().record(5, Ok(()));

        let second = view_of(&["a", "b", "d"], Some(&first));
        assert_eq!(ids(&second), ["b", "d"]);
        assert!(Arc::ptr_eq(
            first.peer(&id("b")).unwrap(),
            second.peer(&id("b")).unwrap()
        ));
        assert_eq!(
            second.peer(&id("b")).unwrap().health().last_success_ms,
            Some(5),
            "a staying peer keeps its health record"
        );
        assert!(second.peer(&id("c")).is_none());
    }

    #[test]
    fn the_cell_swaps_views_and_running_requests_keep_theirs() {
        let cell = ViewCell::new(view_of(&["a", "b"], None));
        let held = cell.load();
        let next = view_of(&["a", "b", "c"], Some(&held));
        cell.swap(next);
        assert_eq!(held.peers().count(), 1, "the old snapshot is unchanged");
        assert_eq!(cell.load().peers().count(), 2);
    }

    #[test]
    fn status_of_self_is_up_and_of_strangers_down() {
        let view = view_of(&["a", "b"], None);
        assert_eq!(view.status(&id("a")), PeerStatus::Up);
        assert_eq!(view.status(&id("b")), PeerStatus::Up);
        assert_eq!(view.status(&id("zz")), PeerStatus::Down);
        view.peer(&id("b"))
            .unwrap()
            .record(1, Err(&ReplicaFailure::ConnectRefused));
        assert_eq!(view.status(&id("b")), PeerStatus::Down);
    }

    #[test]
    fn an_outage_is_one_went_down_and_one_came_back() {
        use PeerStatus::{Down, Suspect, Up};
        let mut reported = false;
        let statuses = [Up, Suspect, Down, Down, Suspect, Down, Up, Up, Down];
        let lines: Vec<_> = statuses
            .iter()
            .filter_map(|s| transition(&mut reported, *s))
            .collect();
        assert_eq!(
            lines,
            [
                Transition::WentDown,
                Transition::CameBack,
                Transition::WentDown
            ]
        );
    }
}
