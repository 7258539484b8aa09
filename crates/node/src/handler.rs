//! How a node answers its peers: [`NodeState`]'s [`RpcHandler`]
//! implementation, and the replica-side work behind each request (reads as
//! a stand-in, hint storage, reaps, anti-entropy questions, gossip, joins,
//! layout changes and partition chunks).
//!
//! Reads are answered inline when the engine never blocks or the read gate
//! admits them, or detached on the storage read lane; everything else runs
//! in `handle`, one task per request. Also here: the hook that starts a
//! stream on a running node by hand ([`NodeState::start_streaming`], for
//! tests and benchmarks; the rebalance task starts the real ones).

use crate::node::NodeState;
use crate::rpc::server::Reply;
use crate::rpc::RpcHandler;
use crate::streaming::{StreamProgress, Streamer};
use ringkv_core::layout::Member;
use ringkv_core::layout_history::{ChangeError, HistoryWire, LayoutChange};
use ringkv_core::protocol::{
    HandshakeRefusal, JoinAccepted, JoinRefusal, JoinRequest, Request, Response,
};
use ringkv_core::streaming::StreamPlan;
use ringkv_core::NodeId;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

impl RpcHandler for NodeState {
    fn answer_now(&self, request: Request) -> Result<Response, Request> {
        match request {
            Request::Ping => Ok(Response::Pong),
            // Inline when the engine never blocks or the read gate admits
            // it; otherwise `answer_detached` sends it to the read lane.
            Request::ReplicaRead {
                key,
                hint_for: None,
            } => match self.coordinator.replica.read_now(&key) {
                Some(found) => Ok(Response::ReplicaRead(found)),
                None => Err(Request::ReplicaRead {
                    key,
                    hint_for: None,
                }),
            },
            other => Err(other),
        }
    }

    fn answer_detached(&self, request: Request, reply: Reply) -> Result<(), (Request, Reply)> {
        match request {
            // With a blocking engine: read on the storage read lane, and let
            // the lane thread queue the answer (no task, no wake-up hop).
            Request::ReplicaRead {
                key,
                hint_for: None,
            } => {
                self.coordinator
                    .replica
                    .read_detached(&key, move |found| reply.send(Response::ReplicaRead(found)));
                Ok(())
            }
            other => Err((other, reply)),
        }
    }

    fn connection_refused(&self) {
        self.metrics.rpc_connection_refused();
    }

    fn handshake_refused(&self, reason: &HandshakeRefusal) {
        self.metrics.rpc_handshake_refused(reason.label());
    }

    fn handle(
        self: Arc<Self>,
        _from: Option<NodeId>,
        request: Request,
    ) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(async move {
            let replica = &self.coordinator.replica;
            match request {
                // Normally answered inline by `answer_now`; kept for callers
                // that go straight to `handle`.
                Request::Ping => Response::Pong,
                Request::ReplicaRead { key, hint_for } => {
                    Response::ReplicaRead(self.read_as(&key, hint_for).await)
                }
                Request::ReplicaWrite {
                    key,
                    object,
                    hint_for,
                } => Response::ReplicaWrite(match self.stand_in_for(hint_for) {
                    Some(home) => self.hints.store(&home, &key, object).await,
                    None => {
                        replica
                            .merge(&key, object, self.config.limits.max_siblings)
                            .await
                    }
                }),
                Request::Reap { key, object } => {
                    let reaped = replica.reap_if_unchanged(&key, object).await;
                    if reaped == Ok(true) {
                        self.metrics.tombstone_reaped();
                    }
                    Response::Reap(reaped)
                }
                Request::AntiEntropy(question) => {
                    Response::AntiEntropy(crate::anti_entropy::answer(replica, question).await)
                }
                Request::Coordinate { request, forwarded } => {
                    Response::Coordinate(self.coordinator.execute(request, forwarded).await)
                }
                Request::Gossip(open) => {
                    Response::Gossip(crate::gossip::answer_open(&self.cluster, open).await)
                }
                Request::GossipClose(close) => {
                    Response::GossipClose(crate::gossip::answer_close(&self.cluster, close).await)
                }
                Request::Join(join) => Response::Join(self.join(join).await),
                Request::ChangeLayout(change) => Response::ChangeLayout(
                    crate::changes::apply(&self.cluster, change, self.config.gossip_interval_ms)
                        .await
                        .map(|l| ringkv_core::layout_history::LayoutStamp::of(&l)),
                ),
                Request::StreamChunk(ask) => {
                    let answer = crate::streaming::answer::answer(replica, ask, &self.metrics);
                    Response::StreamChunk(answer.await)
                }
            }
        })
    }
}

impl NodeState {
    /// Adds a node that asks to join (as the next layout version), or
    /// answers at once if the newest layout already holds it.
    async fn join(&self, request: JoinRequest) -> Result<JoinAccepted, JoinRefusal> {
        let record = request.record;
        record
            .validate()
            .map_err(|e| JoinRefusal::BadRecord(e.to_string()))?;
        let member = Member {
            id: record.id.clone(),
            capacity: record.capacity,
            zone: record.zone.clone(),
        };
        let known = self.cluster.read(|_, history| {
            (
                history.newest().layout.member(&member.id) == Some(&member),
                history.is_removed(&member.id),
            )
        });
        match known {
            (_, true) => return Err(JoinRefusal::WasRemoved),
            (true, false) => {}
            (false, false) => {
                let change = LayoutChange::Join(member);
                crate::changes::apply(&self.cluster, change, self.config.gossip_interval_ms)
                    .await
                    .map_err(|e| match e {
                        ChangeError::WasRemoved(_) => JoinRefusal::WasRemoved,
                        ChangeError::TooManyActive { active } => JoinRefusal::Busy { active },
                        other => JoinRefusal::Layout(other.to_string()),
                    })?;
            }
        }
        let (genesis, founders) = self.cluster.genesis();
        let history = self.cluster.read(|_, h| HistoryWire::of(h, |_| true));
        Ok(JoinAccepted {
            genesis,
            founders,
            history,
        })
    }

    /// A streamer over this node's replica, view and stream limits.
    pub fn streamer(&self) -> Streamer {
        Streamer {
            replica: self.coordinator.replica.clone(),
            view: self.coordinator.view.clone(),
            metrics: self.metrics.clone(),
            limits: self.config.streaming,
            max_siblings: self.config.limits.max_siblings,
            origin: self.coordinator.origin,
        }
    }

    /// Streams `plan` in a task of its own (see [`crate::streaming`]).
    /// Returns its progress handle, whose outcome is set when it ends, and
    /// a token that stops it alone; shutdown stops it too.
    pub fn start_streaming(&self, plan: StreamPlan) -> (StreamProgress, CancellationToken) {
        let progress = StreamProgress::default();
        let stop = self.background.child_token();
        let (shown, stopped, streamer) = (progress.clone(), stop.clone(), self.streamer());
        self.tasks.spawn(async move {
            let _ = streamer.run(plan, &shown, &stopped).await;
        });
        (progress, stop)
    }

    /// The home this node is asked to stand in for, if it is another member
    /// (a hint for itself, or for a stranger, is an ordinary write).
    fn stand_in_for(&self, hint_for: Option<NodeId>) -> Option<NodeId> {
        let home = hint_for.filter(|h| *h != self.config.id)?;
        let view = self.coordinator.view.load();
        // A home in any active layout version: during a change, a node
        // that is a home only in the newer version gets hints too.
        view.history.is_active_member(&home).then_some(home)
    }

    /// This node's copy of `key`, merged with the hint it holds for
    /// `hint_for` when it stands in for that node.
    async fn read_as(
        &self,
        key: &ringkv_core::key::ObjectKey,
        hint_for: Option<NodeId>,
    ) -> Result<Option<ringkv_core::siblings::Siblings>, ringkv_core::protocol::ReplicaError> {
        let own = self.coordinator.replica.read(key).await?;
        let Some(home) = self.stand_in_for(hint_for) else {
            return Ok(own);
        };
        let hinted = self.hints.read(&home, key)?;
        Ok(match (own, hinted) {
            (Some(mut own), Some(hinted)) => {
                own.merge(&hinted);
                Some(own)
            }
            (own, hinted) => own.or(hinted),
        })
    }
}
