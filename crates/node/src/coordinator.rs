//! The coordinator: runs a client's get or put against the key's replicas (A4, F1).
//!
//! Any node accepts any request. If this node is in the key's preference list
//! it coordinates: a put is applied locally first (minting the new version's
//! dot), then sent to the other replicas in parallel, and answered after W
//! acknowledgements; a get asks all N replicas at once and answers with the
//! causal merge of the first R replies. If this node holds no replica of the
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
    pub wall_clock: WallClock,
}

type Answer = (NodeId, Result<Response, RpcError>);

impl Coordinator {
    /// Runs a client request (forwarded ones are never forwarded again).
    pub async fn execute(&self, request: ClientRequest, forwarded: bool) -> ClientResponse {
        match request {
            ClientRequest::Get { key, quorum } => {
                let request = ClientRequest::Get {
                    key: key.clone(),
                    quorum,
                };
                ClientResponse::Get(self.get(request, &key, quorum, forwarded).await)
            }
            ClientRequest::Put {
                key,
                context,
                value,
                quorum,
            } => {
                let forward = ClientRequest::Put {
                    key: key.clone(),
                    context: context.clone(),
                    value: value.clone(),
                    quorum,
                };
                ClientResponse::Put(
                    self.put(forward, &key, &context, value, quorum, forwarded)
                        .await,
                )
            }
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
        request: ClientRequest,
        key: &ObjectKey,
        quorum: RequestQuorum,
        forwarded: bool,
    ) -> Result<Option<Siblings>, OpError> {
        let (rep, prefs) = self.plan(key, quorum)?;
        if !prefs.contains(&self.id) {
            return match self.forward(request, &prefs, forwarded).await? {
                ClientResponse::Get(result) => result,
                other => Err(OpError::Internal(format!(
                    "forwarded get answered {other:?}"
                ))),
            };
        }
        let deadline = Instant::now() + self.request_timeout;
        let mut answers = self.ask(&prefs, Request::ReplicaRead { key: key.clone() });
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
        while progress == Progress::Pending {
            let Ok(Some((node, answer))) = timeout_at(deadline, answers.recv()).await else {
                break;
            };
            progress = match answer {
                Ok(Response::ReplicaRead(Ok(found))) => absorb(&mut tally, &node, found),
                Ok(Response::ReplicaRead(Err(e))) => tally.fail(&node, e.message),
                Ok(other) => tally.fail(&node, format!("unexpected answer {other:?}")),
                Err(e) => tally.fail(&node, e.to_string()),
            };
        }
        match progress {
            Progress::Met => Ok(merged),
            _ => Err(OpError::Quorum(
                tally.error(&prefs, self.request_timeout.as_millis() as u64),
            )),
        }
    }

    async fn put(
        &self,
        request: ClientRequest,
        key: &ObjectKey,
        context: &VersionVector,
        value: Option<bytes::Bytes>,
        quorum: RequestQuorum,
        forwarded: bool,
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
        let (rep, prefs) = self.plan(key, quorum)?;
        if !prefs.contains(&self.id) {
            return match self.forward(request, &prefs, forwarded).await? {
                ClientResponse::Put(result) => result,
                other => Err(OpError::Internal(format!(
                    "forwarded put answered {other:?}"
                ))),
            };
        }
        let deadline = Instant::now() + self.request_timeout;
        let now_ms = (self.wall_clock)();
        let object = self
            .replica
            .update(key, context, value, now_ms, self.limits.max_siblings)
            .await?;
        let clock = object.clock().clone();
        let mut tally = QuorumTally::new(rep.w, prefs.len());
        let mut progress = tally.ack(&self.id);
        let others: Vec<NodeId> = prefs.iter().filter(|n| **n != self.id).cloned().collect();
        let mut answers = self.ask(
            &others,
            Request::ReplicaWrite {
                key: key.clone(),
                object,
            },
        );
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

    /// Sends `request` to every listed peer (not to this node) in its own task.
    fn ask(&self, nodes: &[NodeId], request: Request) -> mpsc::Receiver<Answer> {
        let (tx, rx) = mpsc::channel(nodes.len().max(1));
        for node in nodes.iter().filter(|n| **n != self.id) {
            let (tx, request, node) = (tx.clone(), request.clone(), node.clone());
            let peer = self.peers.get(&node).cloned();
            let timeout = self.request_timeout;
            tokio::spawn(async move {
                let answer = match peer {
                    Some(peer) => peer.call(request, timeout).await,
                    None => Err(RpcError::Connect(format!("no address known for {node}"))),
                };
                let _ = tx.send((node, answer)).await;
            });
        }
        rx
    }

    /// Hands a request to the first node of `prefs` that takes it.
    async fn forward(
        &self,
        request: ClientRequest,
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
            match peer
                .call(
                    Request::Coordinate {
                        request: request.clone(),
                        forwarded: true,
                    },
                    left,
                )
                .await
            {
                Ok(Response::Coordinate(response)) => return Ok(response),
                Ok(other) => reasons.push(format!("{node}: unexpected answer {other:?}")),
                Err(e) => reasons.push(format!("{node}: {e}")),
            }
        }
        Err(OpError::Unavailable(format!(
            "no replica could coordinate the request: {}",
            reasons.join("; ")
        )))
    }
}
