//! The gossip task (M1): every round, one exchange of membership and layout
//! history with a random peer, then a step of the history's barriers.
//!
//! A round ([`Gossip::round`]):
//!
//! 1. bumps this node's heartbeat and publishes its streaming progress;
//! 2. picks its peers with the core's `gossip_targets`: a random live peer,
//!    sometimes one judged down (so a recovered node is noticed), and
//!    sometimes a seed address (always, while it knows no live peer), which
//!    keeps the cluster from splitting into groups that never meet;
//! 3. runs the three-message exchange with each: `GossipOpen` (digests and
//!    layout stamps) → `GossipReply` (newer entries, layouts the initiator
//!    lacks, what the receiver wants) → `GossipClose` (what was wanted).
//!    Whole layouts travel only to a node that lacks them;
//! 4. steps the barriers ([`ClusterState::step`]) and hands any pull to the
//!    streaming task.
//!
//! Every merge result is handled by [`ClusterState`]: heartbeats feed each
//! peer's failure detector, changes rebuild the view and are persisted.
//! [`answer_open`] and [`answer_close`] are the receiving side.

use crate::cluster_state::{on_events, ClusterState, PullPlan};
use crate::rpc::PeerClient;
use ringkv_core::layout_history::HistoryWire;
use ringkv_core::membership::Event;
use ringkv_core::protocol::{
    GossipClose, GossipOpen, GossipReply, ReplicaError, Request, Response,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Default pause between gossip rounds.
pub const GOSSIP_INTERVAL_MS: u64 = 1000;

/// The gossip task of one node.
pub struct Gossip {
    pub state: Arc<ClusterState>,
    /// Seed RPC addresses and a connection to each (made on first use).
    pub seeds: Vec<String>,
    pub seed_client: Arc<dyn Fn(&str) -> PeerClient + Send + Sync>,
    pub interval: Duration,
    /// How long one call of an exchange may take (the gossip interval: a
    /// peer slower than that is better skipped this round).
    pub timeout: Duration,
    /// Where pulls go (the streaming task watches it).
    pub pulls: watch::Sender<PullPlan>,
    pub rng_seed: u64,
}

impl Gossip {
    pub async fn run(self, stop: CancellationToken) {
        let mut rng = fastrand::Rng::with_seed(self.rng_seed);
        let mut seed_clients: BTreeMap<String, Arc<PeerClient>> = BTreeMap::new();
        loop {
            // A pause first (the node's listeners are bound meanwhile), with
            // a little jitter so rounds of different nodes do not align.
            let jitter = rng.u64(0..=self.interval.as_millis() as u64 / 10);
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval + Duration::from_millis(jitter)) => {}
            }
            self.round(&mut rng, &mut seed_clients).await;
        }
    }

    async fn round(
        &self,
        rng: &mut fastrand::Rng,
        seed_clients: &mut BTreeMap<String, Arc<PeerClient>>,
    ) {
        let wall = (self.state.wall_clock)();
        let view = self.state.view.load();
        let targets = self.state.with(|membership, _| {
            membership.tick(wall);
            let targets = membership.gossip_targets(rng.u64(..), |id| view.is_up(id));
            (targets, false)
        });
        let seed = (targets.seed && !self.seeds.is_empty()).then(|| {
            let addr = &self.seeds[rng.usize(..self.seeds.len())];
            seed_clients
                .entry(addr.clone())
                .or_insert_with(|| Arc::new((self.seed_client)(addr)))
                .clone()
        });
        let peers: Vec<Arc<crate::view::Peer>> = [targets.live, targets.unreachable]
            .into_iter()
            .flatten()
            .filter_map(|id| view.peer(&id).cloned())
            .collect();
        let clients: Vec<&PeerClient> = peers
            .iter()
            .map(|p| &p.client)
            .chain(seed.as_deref())
            .collect();
        // At once, each bounded by the timeout: a silent peer never holds up
        // the next round (and with it this node's heartbeat).
        futures_util::future::join_all(clients.into_iter().map(|c| self.exchange(c))).await;
        let (pull, changed) = self.state.step(self.state.now_ms());
        if changed {
            persist_logged(&self.state).await;
        }
        self.pulls.send_if_modified(|current| {
            let changed = *current != pull;
            *current = pull;
            changed
        });
    }

    /// One exchange as the initiator. Failures are only logged: gossip
    /// tries someone else next round.
    async fn exchange(&self, client: &PeerClient) {
        let open = self.state.read(|membership, history| GossipOpen {
            syn: membership.syn(),
            layouts: history.stamps(),
            oldest: history.oldest().version(),
            removed: history.removed().iter().cloned().collect(),
        });
        let reply = match client.call(Request::Gossip(open), self.timeout).await {
            Ok(Response::Gossip(Ok(reply))) => reply,
            Ok(Response::Gossip(Err(e))) => {
                tracing::debug!(peer = %client.peer(), error = %e, "gossip refused");
                return;
            }
            Ok(other) => {
                tracing::debug!(peer = %client.peer(), ?other, "unexpected gossip answer");
                return;
            }
            Err(e) => {
                tracing::debug!(peer = %client.peer(), error = %e, "gossip failed");
                return;
            }
        };
        let close = match on_reply(&self.state, reply).await {
            Ok(close) => close,
            Err(e) => {
                tracing::warn!(peer = %client.peer(), error = %e, "refused a peer's gossip");
                return;
            }
        };
        if let Err(e) = client.call(Request::GossipClose(close), self.timeout).await {
            tracing::debug!(peer = %client.peer(), error = %e, "gossip close failed");
        }
    }
}

/// Merges a reply (as the initiator) and builds the close.
async fn on_reply(state: &ClusterState, reply: GossipReply) -> Result<GossipClose, String> {
    let entries = reply
        .history
        .decode(state.params)
        .map_err(|e| e.to_string())?;
    let outcome = state.with(|membership, history| {
        let (ack2, events) = match membership.on_ack(reply.ack) {
            Ok(merged) => merged,
            Err(e) => return (Err(e.to_string()), false),
        };
        let merged = history.merge(entries, reply.history.oldest, &reply.history.removed);
        let changed = merged || has_changes(&events);
        let wanted = HistoryWire::of(history, |s| reply.want.contains(s));
        let close = GossipClose {
            ack2,
            history: wanted,
        };
        (Ok((close, events, merged)), changed)
    });
    let (close, events, merged) = outcome?;
    let view = state.view.load();
    if on_events(&view, &events) || merged {
        persist_logged(state).await;
    }
    Ok(close)
}

/// Answers a peer's `GossipOpen`.
pub async fn answer_open(
    state: &ClusterState,
    open: GossipOpen,
) -> Result<GossipReply, ReplicaError> {
    open.validate().map_err(|_| ReplicaError::BadGossip)?;
    let outcome = state.with(|membership, history| {
        let Ok((ack, events)) = membership.on_syn(&open.syn) else {
            return (Err(ReplicaError::BadGossip), false);
        };
        // What they have that we lack, and the other way round.
        let mine = history.stamps();
        let want = open
            .layouts
            .iter()
            .filter(|s| !mine.contains(s) && s.version >= history.oldest().version())
            .copied()
            .collect();
        let merged = history.merge(Vec::new(), open.oldest, &open.removed);
        let lacking = HistoryWire::of(history, |s| !open.layouts.contains(s));
        let changed = merged || has_changes(&events);
        let reply = GossipReply {
            ack,
            history: lacking,
            want,
        };
        (Ok((reply, events, merged)), changed)
    });
    let (reply, events, merged) = outcome?;
    let view = state.view.load();
    if on_events(&view, &events) || merged {
        persist_logged(state).await;
    }
    Ok(reply)
}

/// Answers a peer's `GossipClose`.
pub async fn answer_close(state: &ClusterState, close: GossipClose) -> Result<(), ReplicaError> {
    let entries = close
        .history
        .decode(state.params)
        .map_err(|_| ReplicaError::BadGossip)?;
    let outcome = state.with(|membership, history| {
        let Ok(events) = membership.on_ack2(close.ack2) else {
            return (Err(ReplicaError::BadGossip), false);
        };
        let merged = history.merge(entries, close.history.oldest, &close.history.removed);
        let changed = merged || has_changes(&events);
        (Ok((events, merged)), changed)
    });
    let (events, merged) = outcome?;
    let view = state.view.load();
    if on_events(&view, &events) || merged {
        persist_logged(state).await;
    }
    Ok(())
}

fn has_changes(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Changed(_) | Event::Forgotten(_)))
}

async fn persist_logged(state: &ClusterState) {
    if let Err(e) = state.persist().await {
        tracing::error!(error = %e, "could not persist the cluster state");
    }
}
