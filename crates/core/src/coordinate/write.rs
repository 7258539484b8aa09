//! `WriteMachine`: one coordinated put or delete, as a sans-IO state machine (F1).
//!
//! The coordinator has already applied the write to its own copy (minting
//! the new version's dot) before the machine starts. The machine then:
//!
//! - sends the new object to every other replica at once, and asks the driver
//!   to wait for the local write's durability ([`WriteCommand::AwaitLocal`]),
//!   in parallel with those sends (F1);
//! - answers `Ok(())` after W distinct acknowledgements, the local one
//!   included;
//! - answers with a [`QuorumError`] as soon as W can no longer be met, or at
//!   the deadline, naming every replica that did not acknowledge and why.
//!
//! The object is identical for every replica, so commands carry no payload:
//! the driver encodes it once. Every send is queued at the start, so all
//! sends precede the answer. Replies after the answer are recorded in
//! [`WriteMachine::replies`] (hinted handoff will use them) but change nothing.
//!
//! Never: read a clock, do IO, or emit a command after the answer.

use crate::failure::ReplicaFailure;
use crate::quorum::{Progress, QuorumError, QuorumTally};
use crate::NodeId;
use std::collections::VecDeque;

/// Everything a write needs to know before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePlan {
    /// The N replicas (duplicates ignored).
    pub replicas: Vec<NodeId>,
    /// This node, if it is one of `replicas` and has applied the write locally.
    pub local: Option<NodeId>,
    /// Acknowledgements needed (W). 0 is treated as 1; more than the replicas
    /// is a quorum that fails at once.
    pub w: usize,
    /// When to give up.
    pub timeout_ms: u64,
}

/// What the driver must do next for a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCommand {
    /// Wait until the local write is durable and feed the outcome back as a
    /// reply from `plan.local`.
    AwaitLocal,
    /// Send `ReplicaWrite` with the new object to `to` and feed its outcome back.
    Send { to: NodeId },
    /// Answer the client. Emitted exactly once, last.
    Answer(Result<(), QuorumError>),
}

/// One replica's first reply to a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReply {
    pub node: NodeId,
    pub outcome: Result<(), ReplicaFailure>,
    /// Whether the reply arrived before the answer (and so was tallied).
    pub counted: bool,
}

/// A coordinated write in progress. See the module docs.
#[derive(Debug, Clone)]
pub struct WriteMachine {
    replicas: Vec<NodeId>,
    tally: QuorumTally,
    replies: Vec<WriteReply>,
    timeout_ms: u64,
    deadline_ms: u64,
    answered: bool,
    commands: VecDeque<WriteCommand>,
}

impl WriteMachine {
    /// Starts a write at `now_ms`: queues the local wait and every send.
    pub fn new(plan: WritePlan, now_ms: u64) -> WriteMachine {
        let replicas = super::local_first(&plan.replicas, plan.local.as_ref());
        let w = plan.w.max(1);
        let mut commands = VecDeque::with_capacity(replicas.len() + 1);
        for node in &replicas {
            commands.push_back(match &plan.local {
                Some(local) if local == node => WriteCommand::AwaitLocal,
                _ => WriteCommand::Send { to: node.clone() },
            });
        }
        let mut machine = WriteMachine {
            tally: QuorumTally::new(w, replicas.len()),
            replicas,
            replies: Vec::new(),
            timeout_ms: plan.timeout_ms,
            deadline_ms: now_ms.saturating_add(plan.timeout_ms),
            answered: false,
            commands,
        };
        machine.step();
        machine
    }

    /// Feeds the outcome of `AwaitLocal` (as a reply from `plan.local`) or of
    /// a `Send { to: from }`.
    pub fn on_reply(&mut self, from: &NodeId, reply: Result<(), ReplicaFailure>, _now_ms: u64) {
        if !self.replicas.contains(from) || self.replies.iter().any(|r| r.node == *from) {
            return;
        }
        if !self.answered {
            match &reply {
                Ok(()) => self.tally.ack(from),
                Err(why) => self.tally.fail(from, why.clone()),
            };
        }
        self.replies.push(WriteReply {
            node: from.clone(),
            outcome: reply,
            counted: !self.answered,
        });
        self.step();
    }

    /// Handles the deadline; call it whenever `now_ms >= poll_timeout()`.
    pub fn on_timeout(&mut self, now_ms: u64) {
        if !self.answered && now_ms >= self.deadline_ms {
            let timeout = ReplicaFailure::Timeout {
                ms: self.timeout_ms,
            };
            self.fail(timeout);
        }
    }

    /// The next command for the driver; drain after every event.
    pub fn poll_command(&mut self) -> Option<WriteCommand> {
        self.commands.pop_front()
    }

    /// The instant at which the driver must call `on_timeout`, or `None`
    /// once answered.
    pub fn poll_timeout(&self) -> Option<u64> {
        (!self.answered).then_some(self.deadline_ms)
    }

    /// Every replica's first reply, in arrival order (late ones included).
    pub fn replies(&self) -> &[WriteReply] {
        &self.replies
    }

    /// The replicas written to (local first).
    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }

    /// The replicas that acknowledged before the answer, in order.
    pub fn acked(&self) -> &[NodeId] {
        self.tally.acked()
    }

    /// Whether the answer has been decided (and queued).
    pub fn is_answered(&self) -> bool {
        self.answered
    }

    fn step(&mut self) {
        if self.answered {
            return;
        }
        match self.tally.progress() {
            Progress::Met => {
                self.answered = true;
                self.commands.push_back(WriteCommand::Answer(Ok(())));
            }
            Progress::Failed => self.fail(ReplicaFailure::QuorumUnreachable),
            Progress::Pending => {}
        }
    }

    /// Answers with the quorum error; silent replicas get `pending`.
    fn fail(&mut self, pending: ReplicaFailure) {
        self.answered = true;
        let rest = self.replicas.iter().map(|n| (n.clone(), pending.clone()));
        let error = self.tally.error(rest);
        self.commands.push_back(WriteCommand::Answer(Err(error)));
    }
}
