//! The coordinator: the thin async driver of the core's coordination
//! machines (A4, F1).
//!
//! Every decision about a client request is made in
//! [`ringkv_core::coordinate`]: whether to coordinate or forward, whom to ask,
//! replacing a failed replica, speculative reads, when the quorum is met or
//! lost, and never retrying a forwarded write whose outcome is unknown. This
//! module only carries the machines' commands out and feeds the outcomes
//! back:
//!
//! - `ReadLocal` reads this node's copy; `AwaitLocal` waits for the local
//!   write's durability (group commit).
//! - `Send { to, hint_for }` calls the peer. The calls and the local wait
//!   are polled by the request's own task ([`InFlight`]); whatever is left
//!   when the request ends runs on in the background, so a replica beyond
//!   the quorum still receives a write after the client has its answer. A
//!   replicated object is encoded once per write (once more for each
//!   stand-in, whose request names the home it holds a hint for).
//! - `Repair { to, .. }` (read repair) sends the merged object as a replica
//!   write, or merges it locally when `to` is this node. A read answers the
//!   client as soon as its machine does; if late replies or repairs are
//!   still due, the rest of the machine runs on in a task of its own.
//! - Each outcome becomes a typed [`ReplicaFailure`] or a reply, is recorded
//!   in the peer's health (see [`crate::view`]), and goes back to the machine
//!   with the time, read from tokio's clock relative to the node's origin.
//! - `poll_timeout` becomes a `sleep_until`; `Answer` ends the request.
//!
//! A request reads the cluster view once at its start and uses that snapshot
//! to the end.

use crate::in_flight::InFlight;
use crate::metrics::Metrics;
use crate::replica::{LocalReplica, Written};
use crate::rpc::{failure_of, RpcError};
use crate::view::{ClusterView, ViewCell};
use bytes::Bytes;
use ringkv_core::codec::{encode_request, EncodedRequest};
use ringkv_core::coordinate::{
    plan, ForwardCommand, ForwardMachine, ForwardPlan, Operation, Plan, PlanRequest, ReadCommand,
    ReadMachine, ReadPlan, Timeouts, WriteCommand, WriteMachine, WritePlan,
};
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::health::PeerStatus;
use ringkv_core::key::ObjectKey;
use ringkv_core::limits::{Limits, MAX_TTL_SECS};
use ringkv_core::protocol::{ClientRequest, ClientResponse, OpError, Request, Response};
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Milliseconds since the Unix epoch, injected so simulations control it.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Largest counter accepted in a client context: real counters grow by one
/// per write, so anything near `u64::MAX` is forged or damaged.
pub const MAX_CONTEXT_COUNTER: u64 = u64::MAX / 2;

/// Everything a coordinator needs to know and reach.
pub struct Coordinator {
    pub id: NodeId,
    pub view: Arc<ViewCell>,
    pub replica: Arc<LocalReplica>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub wall_clock: WallClock,
    pub metrics: Arc<Metrics>,
    /// The origin of the milliseconds the machines and health records see.
    pub origin: Instant,
}

/// A put's value (None: a delete) and its TTL.
struct Value {
    bytes: Option<Bytes>,
    ttl_secs: Option<u64>,
}

/// One peer's answer to a `Send`, as the driver hands it back.
type Answer = (NodeId, Result<Response, ReplicaFailure>);

/// A request's calls to replicas (and its wait for the local write).
type Calls = InFlight<Answer>;

/// The failed response of the same kind as `request`.
fn failed(request: &ClientRequest, e: OpError) -> ClientResponse {
    match request {
        ClientRequest::Get { .. } => ClientResponse::Get(Err(e)),
        ClientRequest::Put { .. } => ClientResponse::Put(Err(e)),
    }
}

/// Refuses contexts whose actors belong to no member, or absurd counters,
/// so a hand-made token cannot bloat or overflow a key's clock.
fn check_context(context: &VersionVector, view: &ClusterView) -> Result<(), OpError> {
    for (node, counter) in context.entries() {
        let member = NodeId::new(node.member()).ok();
        if !member.is_some_and(|m| view.history.ever_member(&m)) {
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
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    /// Runs a client request: the core's [`plan`] decides whether this node
    /// coordinates it or forwards it (forwarded ones are never forwarded again).
    pub async fn execute(&self, request: ClientRequest, forwarded: bool) -> ClientResponse {
        let view = self.view.load();
        let (key, quorum, operation) = match &request {
            ClientRequest::Get { key, quorum } => (key, *quorum, Operation::Read),
            ClientRequest::Put { key, quorum, .. } => (key, *quorum, Operation::Write),
        };
        let props = view
            .settings
            .buckets
            .get(&key.bucket)
            .copied()
            .unwrap_or_default();
        let members = view.layout.members().len();
        let resolved = view
            .settings
            .replication
            .resolve(&props, &quorum, members)
            .and_then(|r| Ok((r, r.primary_writes(&quorum)?)));
        let (replication, pw) = match resolved {
            Ok(r) => r,
            Err(e) => return failed(&request, OpError::BadRequest(e.to_string())),
        };
        // The homes, then as many fallbacks again: stand-ins and spares.
        let prefs = view.preference_list(key, replication.n.saturating_mul(2));
        let known_down: Vec<NodeId> = prefs
            .iter()
            .filter(|n| view.status(n) == PeerStatus::Down)
            .cloned()
            .collect();
        let plan_request = PlanRequest {
            operation,
            replication,
            pw,
            forwarded,
        };
        let mut decided = plan(&self.id, &prefs, &plan_request, &self.timeouts, &known_down);
        if let Plan::Write(p) = &mut decided {
            // A layout change in flight: the newer versions' homes too.
            p.newer_homes = view.other_homes(key, replication.n);
        }
        match (decided, request) {
            (Plan::Refuse(e), request) => failed(&request, e),
            (Plan::Forward(p), request) => self.forward(&view, request, p).await,
            (Plan::Read(p), ClientRequest::Get { key, .. }) => {
                let found = self.read(&view, key, p).await;
                // A value past its TTL reads as deleted (D5).
                let now = (self.wall_clock)();
                ClientResponse::Get(found.map(|o| o.map(|o| o.as_seen_at(now))))
            }
            (
                Plan::Write(p),
                ClientRequest::Put {
                    key,
                    context,
                    value,
                    ttl_secs,
                    ..
                },
            ) => {
                let value = Value {
                    bytes: value,
                    ttl_secs,
                };
                ClientResponse::Put(self.write(&view, key, &context, value, p).await)
            }
            (_, request) => failed(
                &request,
                OpError::Internal("the plan does not match the request".into()),
            ),
        }
    }

    async fn read(
        &self,
        view: &Arc<ClusterView>,
        key: ObjectKey,
        plan: ReadPlan,
    ) -> Result<Option<Siblings>, OpError> {
        let plain = encode_request(&Request::ReplicaRead {
            key: key.clone(),
            hint_for: None,
        })
        .map_err(|e| OpError::Internal(e.to_string()))?;
        let mut read = ReadDriver {
            id: self.id.clone(),
            view: view.clone(),
            key,
            replica: self.replica.clone(),
            max_siblings: self.limits.max_siblings,
            metrics: self.metrics.clone(),
            origin: self.origin,
            timeout: Duration::from_millis(plan.timeout_ms),
            plain,
            reads: Calls::new(),
            repairs: Calls::new(),
        };
        let mut machine = ReadMachine::new(plan, self.now_ms());
        let answer = read.run(&mut machine).await;
        if machine.poll_timeout().is_some() || machine.has_commands() {
            // Late replies and read repairs: finish without the client.
            tokio::spawn(async move {
                let _finished = read.run(&mut machine).await;
            });
        }
        answer
    }

    async fn write(
        &self,
        view: &Arc<ClusterView>,
        key: ObjectKey,
        context: &VersionVector,
        value: Value,
        plan: WritePlan,
    ) -> Result<VersionVector, OpError> {
        let Value {
            bytes: value,
            ttl_secs,
        } = value;
        if let Some(ttl) = ttl_secs {
            if ttl == 0 || ttl > MAX_TTL_SECS {
                return Err(OpError::BadRequest(format!(
                    "ttl = {ttl} s: a TTL is between 1 s and {MAX_TTL_SECS} s"
                )));
            }
        }
        if let Some(v) = &value {
            if v.len() > self.limits.max_value_bytes {
                return Err(OpError::BadRequest(format!(
                    "value is {} bytes; the limit is {}",
                    v.len(),
                    self.limits.max_value_bytes
                )));
            }
        }
        check_context(context, view)?;
        let started = self.now_ms();
        let now_wall = (self.wall_clock)();
        let expires_ms = ttl_secs.map(|t| now_wall.saturating_add(t.saturating_mul(1000)));
        let written = Written {
            value,
            timestamp_ms: now_wall,
            expires_ms,
        };
        let (object, clock, ticket) = self
            .replica
            .update(&key, context, written, self.limits.max_siblings)
            .await?;
        let encode = |hint_for: Option<NodeId>| {
            encode_request(&Request::ReplicaWrite {
                key: key.clone(),
                object: object.clone(),
                hint_for,
            })
            .map_err(|e| OpError::Internal(e.to_string()))
        };
        let request = encode(None)?;
        let mut calls = Calls::new();
        let timeout = Duration::from_millis(plan.timeout_ms);
        let mut machine = WriteMachine::new(plan, started);
        loop {
            while let Some(command) = machine.poll_command() {
                match command {
                    WriteCommand::AwaitLocal => {
                        let (replica, me) = (self.replica.clone(), self.id.clone());
                        calls.push(async move {
                            let durable = replica.durable(ticket).await;
                            (me, Ok(Response::ReplicaWrite(durable)))
                        });
                    }
                    WriteCommand::Send { to, hint_for: None } => calls.push(call(
                        view,
                        to,
                        &request,
                        timeout,
                        &self.metrics,
                        self.origin,
                    )),
                    WriteCommand::Send { to, hint_for } => {
                        let hinted = encode(hint_for)?;
                        calls.push(call(view, to, &hinted, timeout, &self.metrics, self.origin))
                    }
                    WriteCommand::Answer(answer) => {
                        return answer.map(|()| clock).map_err(OpError::Quorum)
                    }
                }
            }
            let Some(at) = machine.poll_timeout() else {
                return Err(OpError::Internal("write ended without an answer".into()));
            };
            tokio::select! {
                biased;
                (from, answer) = calls.next() => {
                    let reply = answer.and_then(|r| match r {
                        Response::ReplicaWrite(done) => done.map_err(ReplicaFailure::Replica),
                        _ => Err(ReplicaFailure::UnexpectedAnswer),
                    });
                    machine.on_reply(&from, reply, self.now_ms());
                }
                _ = tokio::time::sleep_until(self.at(at)) => machine.on_timeout(self.now_ms()),
            }
        }
    }

    /// Hands the request to the replicas the forward machine names, one at a time.
    async fn forward(
        &self,
        view: &Arc<ClusterView>,
        request: ClientRequest,
        plan: ForwardPlan,
    ) -> ClientResponse {
        let coordinate = Request::Coordinate {
            request: request.clone(),
            forwarded: true,
        };
        let encoded = match encode_request(&coordinate) {
            Ok(e) => e,
            Err(e) => return failed(&request, OpError::Internal(e.to_string())),
        };
        let mut calls = Calls::new();
        let deadline_ms = self.now_ms().saturating_add(plan.timeout_ms);
        let mut machine = ForwardMachine::new(plan, self.now_ms());
        loop {
            while let Some(command) = machine.poll_command() {
                match command {
                    ForwardCommand::Send { to } => {
                        let left = deadline_ms.saturating_sub(self.now_ms()).max(1);
                        let timeout = Duration::from_millis(left);
                        calls.push(call(
                            view,
                            to,
                            &encoded,
                            timeout,
                            &self.metrics,
                            self.origin,
                        ));
                    }
                    ForwardCommand::Answer(Ok(response)) => return response,
                    ForwardCommand::Answer(Err(e)) => return failed(&request, e),
                }
            }
            let Some(at) = machine.poll_timeout() else {
                return failed(
                    &request,
                    OpError::Internal("forward ended without an answer".into()),
                );
            };
            tokio::select! {
                biased;
                (from, answer) = calls.next() => {
                    let reply = answer.and_then(|r| match r {
                        Response::Coordinate(response) => Ok(response),
                        _ => Err(ReplicaFailure::UnexpectedAnswer),
                    });
                    machine.on_reply(&from, reply, self.now_ms());
                }
                _ = tokio::time::sleep_until(self.at(at)) => machine.on_timeout(self.now_ms()),
            }
        }
    }
}

/// Calls `to` with an encoded request; the call records its outcome in
/// the peer's health and resolves to it.
fn call(
    view: &ClusterView,
    to: NodeId,
    request: &EncodedRequest,
    timeout: Duration,
    metrics: &Arc<Metrics>,
    origin: Instant,
) -> impl Future<Output = Answer> + Send + 'static {
    let peer = view.peer(&to).cloned();
    let (request, metrics) = (request.clone(), metrics.clone());
    async move {
        let Some(peer) = peer else {
            return (to, Err(ReplicaFailure::NoAddress));
        };
        let outcome = peer
            .client
            .call_encoded(&request, timeout)
            .await
            .map_err(|e: RpcError| failure_of(&e));
        let now_ms = origin.elapsed().as_millis() as u64;
        match &outcome {
            Ok(_) => peer.record(now_ms, Ok(())),
            Err(f) => {
                peer.record(now_ms, Err(f));
                metrics.replica_call_failed(f.kind());
            }
        }
        (to, outcome)
    }
}

/// Drives one [`ReadMachine`]: until its answer for the client, then (in a
/// task of its own) until its late replies and repairs are done.
struct ReadDriver {
    id: NodeId,
    view: Arc<ClusterView>,
    key: ObjectKey,
    replica: Arc<LocalReplica>,
    max_siblings: usize,
    metrics: Arc<Metrics>,
    origin: Instant,
    timeout: Duration,
    /// `ReplicaRead` without a hint, encoded once.
    plain: EncodedRequest,
    /// Replica reads in flight.
    reads: Calls,
    /// Read repairs in flight.
    repairs: Calls,
}

impl ReadDriver {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Runs the machine until it answers (returning the answer) or, once
    /// answered, until it expects nothing more.
    async fn run(&mut self, machine: &mut ReadMachine) -> Result<Option<Siblings>, OpError> {
        loop {
            let mut read_local = false;
            while let Some(command) = machine.poll_command() {
                match command {
                    ReadCommand::ReadLocal => read_local = true,
                    ReadCommand::Send { to, hint_for } => self.ask(to, hint_for),
                    ReadCommand::Repair {
                        to,
                        hint_for,
                        object,
                    } => self.repair(to, hint_for, object),
                    ReadCommand::Answer(answer) => return answer.map_err(OpError::Quorum),
                }
            }
            if read_local {
                // After the sends, so they are on the wire while this node
                // reads: the calls are polled in the order they were pushed.
                let (replica, key, me) = (self.replica.clone(), self.key.clone(), self.id.clone());
                self.reads.push(async move {
                    let found = replica.read(&key).await;
                    (me, Ok(Response::ReplicaRead(found)))
                });
            }
            let Some(at) = machine.poll_timeout() else {
                return Err(OpError::Internal("read ended without an answer".into()));
            };
            let at = self.origin + Duration::from_millis(at);
            tokio::select! {
                biased;
                (from, answer) = self.reads.next() => {
                    let reply = answer.and_then(|r| match r {
                        Response::ReplicaRead(found) => found.map_err(ReplicaFailure::Replica),
                        _ => Err(ReplicaFailure::UnexpectedAnswer),
                    });
                    machine.on_reply(&from, reply, self.now_ms());
                }
                (from, outcome) = self.repairs.next() => {
                    let done = outcome.and_then(|r| match r {
                        Response::ReplicaWrite(done) => done.map_err(ReplicaFailure::Replica),
                        _ => Err(ReplicaFailure::UnexpectedAnswer),
                    });
                    machine.on_repair(&from, done, self.now_ms());
                }
                _ = tokio::time::sleep_until(at) => machine.on_timeout(self.now_ms()),
            }
        }
    }

    fn ask(&mut self, to: NodeId, hint_for: Option<NodeId>) {
        let hinted;
        let request = match hint_for {
            None => &self.plain,
            Some(home) => match encode_request(&Request::ReplicaRead {
                key: self.key.clone(),
                hint_for: Some(home),
            }) {
                Ok(encoded) => {
                    hinted = encoded;
                    &hinted
                }
                Err(_) => {
                    self.reads
                        .push(std::future::ready((to, Err(ReplicaFailure::Malformed))));
                    return;
                }
            },
        };
        let asked = call(
            &self.view,
            to,
            request,
            self.timeout,
            &self.metrics,
            self.origin,
        );
        self.reads.push(asked);
    }

    /// Sends `object` to `to` as a replica write (merged locally when `to`
    /// is this node); the outcome comes back on `repairs`.
    fn repair(&mut self, to: NodeId, hint_for: Option<NodeId>, object: Siblings) {
        self.metrics.read_repair_sent();
        if to == self.id {
            let (replica, key) = (self.replica.clone(), self.key.clone());
            let max_siblings = self.max_siblings;
            self.repairs.push(async move {
                let merged = replica.merge(&key, object, max_siblings).await;
                (to, Ok(Response::ReplicaWrite(merged)))
            });
            return;
        }
        let request = Request::ReplicaWrite {
            key: self.key.clone(),
            object,
            hint_for,
        };
        match encode_request(&request) {
            Ok(encoded) => {
                let repaired = call(
                    &self.view,
                    to,
                    &encoded,
                    self.timeout,
                    &self.metrics,
                    self.origin,
                );
                self.repairs.push(repaired);
            }
            Err(_) => {
                self.repairs
                    .push(std::future::ready((to, Err(ReplicaFailure::Malformed))));
            }
        }
    }
}
