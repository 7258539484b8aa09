//! `ForwardMachine`: handing a request to a node that holds a replica (A4).
//!
//! A node outside the key's preference list asks the listed nodes to
//! coordinate the request (`Request::Coordinate { forwarded: true }`), one at
//! a time, in the plan's order:
//!
//! - A failure that proves the request was never acted on
//!   ([`ReplicaFailure::proves_not_applied`]: connection refused, connect
//!   timeout, known down, handshake refused, overloaded, "not a coordinator")
//!   moves on to the next node.
//! - For a **write**, any other failure (a timeout, a lost connection, an
//!   unexpected answer) means the write may have been applied: sending it
//!   again elsewhere could apply it twice (as two siblings). The machine stops
//!   with [`OpError::ForwardFailed`] `{ outcome_unknown: true }` and never
//!   tries another node.
//! - For a read, any failure moves on.
//! - An answer from the target, even an error such as a failed quorum, is
//!   passed through to the client: the target did coordinate.
//!
//! Never: read a clock, do IO, send to a node twice, or retry a write after
//! a failure that does not prove it unapplied.

use crate::failure::ReplicaFailure;
use crate::protocol::{ClientResponse, OpError};
use crate::NodeId;
use std::collections::VecDeque;

/// Everything a forward needs to know before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardPlan {
    /// The preference-list nodes to try, in order (peers known to be down
    /// last). Duplicates are ignored.
    pub targets: Vec<NodeId>,
    /// Whether the request is a put or delete (never retried once it may
    /// have been applied).
    pub write: bool,
    /// The whole budget: the target's own request timeout plus a margin, so
    /// its answer (even a quorum error) can arrive.
    pub timeout_ms: u64,
}

/// What the driver must do next for a forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardCommand {
    /// Send `Request::Coordinate { forwarded: true }` to `to` and feed the
    /// outcome back. Its call may wait until `poll_timeout()`.
    Send { to: NodeId },
    /// Answer the client: the target's response passed through, or why no
    /// node coordinated it. Emitted exactly once, last.
    Answer(Result<ClientResponse, OpError>),
}

/// A forward in progress. See the module docs.
#[derive(Debug, Clone)]
pub struct ForwardMachine {
    targets: Vec<NodeId>,
    write: bool,
    /// `targets[next]` is the next node to try.
    next: usize,
    in_flight: Option<NodeId>,
    attempts: Vec<(NodeId, ReplicaFailure)>,
    timeout_ms: u64,
    deadline_ms: u64,
    answered: bool,
    commands: VecDeque<ForwardCommand>,
}

impl ForwardMachine {
    /// Starts a forward at `now_ms`: queues the first send.
    pub fn new(plan: ForwardPlan, now_ms: u64) -> ForwardMachine {
        let mut machine = ForwardMachine {
            targets: super::local_first(&plan.targets, None),
            write: plan.write,
            next: 0,
            in_flight: None,
            attempts: Vec::new(),
            timeout_ms: plan.timeout_ms,
            deadline_ms: now_ms.saturating_add(plan.timeout_ms),
            answered: false,
            commands: VecDeque::new(),
        };
        machine.try_next();
        machine
    }

    /// Feeds the outcome of `Send { to: from }`: the target's
    /// `Response::Coordinate` payload, or why the call failed (any other
    /// response is `UnexpectedAnswer`). Anything but the node in flight is
    /// ignored.
    pub fn on_reply(
        &mut self,
        from: &NodeId,
        reply: Result<ClientResponse, ReplicaFailure>,
        _now_ms: u64,
    ) {
        if self.answered || self.in_flight.as_ref() != Some(from) {
            return;
        }
        self.in_flight = None;
        match reply.and_then(|response| self.check(response)) {
            Ok(response) => self.answer(Ok(response)),
            Err(why) => self.failed(from.clone(), why),
        }
    }

    /// Handles the deadline; call it whenever `now_ms >= poll_timeout()`.
    pub fn on_timeout(&mut self, now_ms: u64) {
        if self.answered || now_ms < self.deadline_ms {
            return;
        }
        let timeout = ReplicaFailure::Timeout {
            ms: self.timeout_ms,
        };
        let outcome_unknown = self.write && self.in_flight.is_some();
        if let Some(node) = self.in_flight.take() {
            self.attempts.push((node, timeout));
        }
        self.give_up(outcome_unknown);
    }

    /// The next command for the driver; drain after every event.
    pub fn poll_command(&mut self) -> Option<ForwardCommand> {
        self.commands.pop_front()
    }

    /// The instant at which the driver must call `on_timeout`, or `None`
    /// once answered.
    pub fn poll_timeout(&self) -> Option<u64> {
        (!self.answered).then_some(self.deadline_ms)
    }

    /// The failed attempts so far, in order.
    pub fn attempts(&self) -> &[(NodeId, ReplicaFailure)] {
        &self.attempts
    }

    /// Whether the answer has been decided (and queued).
    pub fn is_answered(&self) -> bool {
        self.answered
    }

    /// A response of the wrong kind is an unexpected answer; "not a
    /// coordinator" and "overloaded" are refusals before doing anything.
    fn check(&self, response: ClientResponse) -> Result<ClientResponse, ReplicaFailure> {
        let (is_write, error) = match &response {
            ClientResponse::Get(r) => (false, r.as_ref().err()),
            ClientResponse::Put(r) => (true, r.as_ref().err()),
        };
        match error {
            _ if is_write != self.write => Err(ReplicaFailure::UnexpectedAnswer),
            Some(OpError::NotCoordinator { .. }) => Err(ReplicaFailure::NotCoordinator),
            Some(OpError::Overloaded { .. }) => Err(ReplicaFailure::Overloaded),
            _ => Ok(response),
        }
    }

    fn failed(&mut self, node: NodeId, why: ReplicaFailure) {
        let may_be_applied = self.write && !why.proves_not_applied();
        self.attempts.push((node, why));
        if may_be_applied {
            self.give_up(true);
        } else {
            self.try_next();
        }
    }

    fn try_next(&mut self) {
        match self.targets.get(self.next) {
            Some(to) => {
                self.next += 1;
                self.in_flight = Some(to.clone());
                self.commands
                    .push_back(ForwardCommand::Send { to: to.clone() });
            }
            None => self.give_up(false),
        }
    }

    fn give_up(&mut self, outcome_unknown: bool) {
        let attempts = self.attempts.clone();
        self.answer(Err(OpError::ForwardFailed {
            attempts,
            outcome_unknown,
        }));
    }

    fn answer(&mut self, answer: Result<ClientResponse, OpError>) {
        self.answered = true;
        self.commands.push_back(ForwardCommand::Answer(answer));
    }
}
