//! The coordinator: runs a client's get or put against the key's replicas (A4, F1).
//!
//! Any node accepts any request. If this node is in the key's preference list
//! it coordinates: a put is applied locally first (minting the new version's
//! dot), then sent to the other replicas in parallel, and answered after W
//! acknowledgements. A get reads the local copy and asks just enough other
//! replicas to make R (as Cassandra does); a failed replica is replaced by
//! the next one at once, and if the quorum is still pending after
//! `read_speculation` every remaining replica is asked (speculative retry).
//! It answers with the causal merge of the first R replies. If this node holds no replica of the
//! key, it forwards the request to the preference list, in order.
//!
//! Requests to replicas run as their own tasks, so replicas beyond the quorum
//! still receive the write after the client has its answer. Every wait ends
//! at the request deadline with a [`QuorumError`] naming who did not answer.

use crate::replica::LocalReplica;
use crate::rpc::{PeerClient, RpcError};
use ringkv_core::key::ObjectKey;
use ringkv_core::limits::Limits;
use ringkv_core::protocol::{ClientRequest, ClientResponse, OpError, Request, Response};
use ringkv_core::quorum::{Progress, QuorumTally};
use ringkv_core::replication::{BucketProps, Replication, RequestQuorum};
use ringkv_core::ring::Ring;
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

/// Milliseconds since the Unix epoch, injected so simulations control it.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Everything a coordinator needs to know and reach.
pub struct Coordinator {
    pub id: NodeId,
    pub ring: Ring,
    pub peers: HashMap<NodeId, Arc<PeerClient>>,
    pub replica: Arc<LocalReplica>,
    pub replication: Replication,
    pub buckets: BTreeMap<String, BucketProps>,
    pub limits: Limits,
    pub request_timeout: Duration,
    /// How long a read waits on its first R replicas before asking the rest.
    pub read_speculation: Duration,
    pub wall_clock: WallClock,
}

type Answer = (NodeId, Result<Response, RpcError>);

/// Extra time a forwarding node waits beyond the request deadline.
const FORWARD_MARGIN: Duration = Duration::from_millis(500);

/// Largest counter accepted in a client context: real counters grow by one
/// per write, so anything near `u64::MAX` is forged or damaged.
pub const MAX_CONTEXT_COUNTER: u64 = u64::MAX / 2;

/// The failed response of the same kind as `request`.
fn failed(request: &ClientRequest, e: OpError) -> ClientResponse {
    match request {
        ClientRequest::Get { .. } => ClientResponse::Get(Err(e)),
        ClientRequest::Put { .. } => ClientResponse::Put(Err(e)),
    }
}

/// Refuses contexts whose actors belong to no member, or absurd counters,
/// so a hand-made token cannot bloat or overflow a key's clock.
fn check_context(context: &VersionVector, ring: &Ring) -> Result<(), OpError> {
    for (node, counter) in context.entries() {
        let member = NodeId::new(node.member()).ok();
        if member.and_then(|m| ring.member(&m).map(|_| ())).is_none() {
            return Err(OpError::BadRequest(format!(
                "context names node {node}, which is not a member of this cluster"
            )));
        }
        if *counter > MAX_CONTEXT_COUNTER {
            return Err(OpError::BadRequest(format!(
                "context counter {counter} for {node} is out of range"
            )));
        }
    }
    Ok(())
}

impl Coordinator {
    /// Runs a client request: coordinates it if this node holds a replica of
    /// the key, else forwards it (forwarded ones are never forwarded again).
    pub async fn execute(&self, request: ClientRequest, forwarded: bool) -> ClientResponse {
        let (key, quorum) = match &request {
            ClientRequest::Get { key, quorum } | ClientRequest::Put { key, quorum, .. } => {
                (key, *quorum)
            }
        };
        let (rep, prefs) = match self.plan(key, quorum) {
            Ok(plan) => plan,
            Err(e) => return failed(&request, e),
        };
        if !prefs.contains(&self.id) {
            return match self.forward(&request, &prefs, forwarded).await {
                Ok(response) => response,
                Err(e) => failed(&request, e),
            };
        }
        match request {
            ClientRequest::Get { key, .. } => {
                ClientResponse::Get(self.get(&key, rep, &prefs).await)
            }
            ClientRequest::Put {
                key,
                context,
                value,
                ..
            } => ClientResponse::Put(self.put(&key, &context, value, rep, &prefs).await),
        }
    }

    /// N, R, W for this key and its preference list.
    fn plan(
        &self,
        key: &ObjectKey,
        quorum: RequestQuorum,
    ) -> Result<(Replication, Vec<NodeId>), OpError> {
        let props = self.buckets.get(&key.bucket).copied().unwrap_or_default();
        let rep = self
            .replication
            .resolve(&props, &quorum, self.ring.members().len())
            .map_err(|e| OpError::BadRequest(e.to_string()))?;
        Ok((rep, self.ring.preference_list(key.position(), rep.n)))
    }

    async fn get(
        &self,
        key: &ObjectKey,
        rep: Replication,
        prefs: &[NodeId],
    ) -> Result<Option<Siblings>, OpError> {
        let deadline = Instant::now() + self.request_timeout;
        let remotes: Vec<NodeId> = prefs.iter().filter(|n| **n != self.id).cloned().collect();
        let request = Request::ReplicaRead { key: key.clone() };
        let (tx, mut answers) = mpsc::channel(prefs.len().max(1));
        let mut tally = QuorumTally::new(rep.r, prefs.len());
        let mut merged: Option<Siblings> = None;
        let mut absorb = |tally: &mut QuorumTally, node: &NodeId, found: Option<Siblings>| {
            if let Some(found) = found {
                match merged.as_mut() {
                    Some(m) => m.merge(&found),
                    None => merged = Some(found),
                }
            }
            tally.ack(node)
        };
        let mut progress = match self.replica.read(key) {
            Ok(found) => absorb(&mut tally, &self.id, found),
            Err(e) => tally.fail(&self.id, e.message),
        };
        // Ask just enough replicas for R; one more for each failure, and all
        // the rest if the quorum is still pending at the speculation point.
        let mut asked = rep.r.saturating_sub(tally.acked().len()).min(remotes.len());
        self.ask(&remotes[..asked], &request, &tx);
        let speculate_at = Instant::now() + self.read_speculation;
        while progress == Progress::Pending {
            let next = tokio::select! {
                biased;
                next = timeout_at(deadline, answers.recv()) => next,
                _ = tokio::time::sleep_until(speculate_at), if asked < remotes.len() => {
                    self.ask(&remotes[asked..], &request, &tx);
                    asked = remotes.len();
                    continue;
                }
            };
            let Ok(Some((node, answer))) = next else {
                break;
            };
            progress = match answer {
                Ok(Response::ReplicaRead(Ok(found))) => absorb(&mut tally, &node, found),
                Ok(Response::ReplicaRead(Err(e))) => tally.fail(&node, e.message),
                Ok(other) => tally.fail(&node, format!("unexpected answer {other:?}")),
                Err(e) => tally.fail(&node, e.to_string()),
            };
            // Replace each failed replica with the next unasked one.
            let outstanding = asked + 1 - tally.acked().len() - tally.failures();
            if progress == Progress::Pending
                && tally.acked().len() + outstanding < rep.r
                && asked < remotes.len()
            {
                self.ask(&remotes[asked..asked + 1], &request, &tx);
                asked += 1;
            }
        }
        let waited_for: Vec<NodeId> = std::iter::once(self.id.clone())
            .chain(remotes[..asked].iter().cloned())
            .collect();
        match progress {
            Progress::Met => Ok(merged),
            _ => Err(OpError::Quorum(
                tally.error(&waited_for, self.request_timeout.as_millis() as u64),
            )),
        }
    }

    async fn put(
        &self,
        key: &ObjectKey,
        context: &VersionVector,
        value: Option<bytes::Bytes>,
        rep: Replication,
        prefs: &[NodeId],
    ) -> Result<VersionVector, OpError> {
        if let Some(v) = &value {
            if v.len() > self.limits.max_value_bytes {
                return Err(OpError::BadRequest(format!(
                    "value is {} bytes; the limit is {}",
                    v.len(),
                    self.limits.max_value_bytes
                )));
            }
        }
        let deadline = Instant::now() + self.request_timeout;
        let now_ms = (self.wall_clock)();
        check_context(context, &self.ring)?;
        let (object, dot, ticket) =
            self.replica
                .update(key, context, value, now_ms, self.limits.max_siblings)?;
        // Hand back what the writer has seen, never siblings it has not.
        let clock = Siblings::writer_context(context, &dot);
        let mut tally = QuorumTally::new(rep.w, prefs.len());
        let mut progress = Progress::Pending;
        let others: Vec<NodeId> = prefs.iter().filter(|n| **n != self.id).cloned().collect();
        let (tx, mut answers) = mpsc::channel(prefs.len());
        // The local fsync and the remote writes run in parallel (F1).
        self.ask(
            &others,
            &Request::ReplicaWrite {
                key: key.clone(),
                object,
            },
            &tx,
        );
        let (replica, me, local) = (self.replica.clone(), self.id.clone(), tx);
        tokio::spawn(async move {
            let durable = replica.durable(ticket).await;
            let _ = local.send((me, Ok(Response::ReplicaWrite(durable)))).await;
        });
        while progress == Progress::Pending {
            let Ok(Some((node, answer))) = timeout_at(deadline, answers.recv()).await else {
                break;
            };
            progress = match answer {
                Ok(Response::ReplicaWrite(Ok(()))) => tally.ack(&node),
                Ok(Response::ReplicaWrite(Err(e))) => tally.fail(&node, e.message),
                Ok(other) => tally.fail(&node, format!("unexpected answer {other:?}")),
                Err(e) => tally.fail(&node, e.to_string()),
            };
        }
        match progress {
            Progress::Met => Ok(clock),
            _ => Err(OpError::Quorum(
                tally.error(&prefs, self.request_timeout.as_millis() as u64),
            )),
        }
    }

    /// Sends `request` to every listed peer, each in its own task, so the
    /// request is delivered even after the caller stops listening.
    fn ask(&self, nodes: &[NodeId], request: &Request, answers: &mpsc::Sender<Answer>) {
        for node in nodes {
            let (tx, request, node) = (answers.clone(), request.clone(), node.clone());
            let peer = self.peers.get(&node).cloned();
            let timeout = self.request_timeout;
            tokio::spawn(async move {
                let answer = match peer {
                    Some(peer) => peer.call(request, timeout).await,
                    None => Err(RpcError::UnknownPeer { node: node.clone() }),
                };
                let _ = tx.send((node, answer)).await;
            });
        }
    }

    /// Hands a request to the first node of `prefs` that takes it.
    async fn forward(
        &self,
        request: &ClientRequest,
        prefs: &[NodeId],
        forwarded: bool,
    ) -> Result<ClientResponse, OpError> {
        if forwarded {
            return Err(OpError::Unavailable(format!(
                "{} was forwarded a request for a key it holds no replica of; do the nodes agree on membership?",
                self.id
            )));
        }
        let deadline = Instant::now() + self.request_timeout;
        let mut reasons = Vec::new();
        for node in prefs {
            let Some(peer) = self.peers.get(node) else {
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let coordinate = Request::Coordinate {
                request: request.clone(),
                forwarded: true,
            };
            // The target runs its own quorum deadline; wait a little longer
            // so its answer (even a quorum error) arrives.
            match peer.call(coordinate, left + FORWARD_MARGIN).await {
                Ok(Response::Coordinate(response)) => return Ok(response),
                Ok(other) => reasons.push(format!("{node}: unexpected answer {other:?}")),
                // A put that timed out may have been applied: sending it to
                // the next node would write it twice (as two siblings).
                Err(e @ RpcError::Timeout { .. })
                    if matches!(request, ClientRequest::Put { .. }) =>
                {
                    return Err(OpError::Unavailable(format!(
                        "{node} did not answer in time ({e}); the write may have been applied, read before retrying"
                    )));
                }
                Err(e) => reasons.push(format!("{node}: {e}")),
            }
        }
        Err(OpError::Unavailable(format!(
            "no replica could coordinate the request: {}",
            reasons.join("; ")
        )))
    }
}
