//! Peer health as this node sees it: recent typed call outcomes, folded into
//! a status that coordination uses to order whom it asks.
//!
//! Every replica call ends in an outcome (success, or a
//! [`ReplicaFailure`]); the node records it here with the time it happened.
//! [`PeerHealth::status`] turns the record into [`PeerStatus`]:
//!
//! - `Down` when the peer cannot be reached at all: the last call failed to
//!   connect (refused, timed out connecting, known down), or
//!   [`DOWN_AFTER_TIMEOUTS`] calls in a row got no answer.
//! - `Suspect` when the last call failed in a way that says something about
//!   the peer (a timeout, a lost connection, an overloaded or failing replica)
//!   but not yet enough to call it down.
//! - `Up` otherwise, including a peer never called yet.
//!
//! Outcomes that say nothing about the peer (the coordinator stopped waiting
//! because the quorum was already decided, or never asked it) are ignored.
//! This is local and decentralised (M2): each node judges for itself.
//! [`crate::liveness::Liveness`] wraps this record together with a
//! phi-accrual detector fed by gossip heartbeats
//! ([`crate::failure_detector`]), keeps its fast `Down`, and adds
//! hysteresis; this record alone flips with every call. The status never
//! changes placement; it only orders replicas (known-down peers are asked
//! last) and is shown to operators.
//!
//! Pure: time is an argument, and nothing here does IO.

use crate::failure::ReplicaFailure;
use serde::Serialize;

/// Consecutive unanswered calls after which a reachable-looking peer is `Down`.
pub const DOWN_AFTER_TIMEOUTS: u32 = 3;

/// How this node currently judges a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerStatus {
    Up,
    Suspect,
    Down,
}

/// What kind of evidence a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evidence {
    /// The peer could not be reached at all.
    Unreachable,
    /// The peer did not answer in time, or the connection broke.
    Silent,
    /// The peer answered, but could not serve the call.
    Degraded,
    /// Says nothing about the peer.
    None,
}

fn evidence(failure: &ReplicaFailure) -> Evidence {
    use ReplicaFailure as F;
    match failure {
        F::ConnectRefused
        | F::ConnectTimeout { .. }
        | F::ConnectFailed
        | F::KnownDown
        | F::NoAddress
        | F::HandshakeRefused(_) => Evidence::Unreachable,
        F::Timeout { .. } | F::ConnectionLost => Evidence::Silent,
        F::Replica(_) | F::Overloaded | F::UnexpectedAnswer | F::Malformed => Evidence::Degraded,
        F::QuorumUnreachable | F::NotAsked | F::NotCoordinator | F::StandIn => Evidence::None,
    }
}

/// The record of one peer's recent outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerHealth {
    /// When the last call succeeded (ms, the node's clock origin).
    pub last_success_ms: Option<u64>,
    /// When the last call failed, and why.
    pub last_failure: Option<(u64, ReplicaFailure)>,
    /// Failures since the last success that said something about the peer.
    pub consecutive_failures: u32,
    /// Whether the last such failure was a failure to reach the peer at all.
    unreachable: bool,
    /// Whether the last outcome that said something was a failure.
    failing: bool,
    /// Totals since start.
    pub successes: u64,
    pub failures: u64,
}

impl PeerHealth {
    /// Records a successful call at `now_ms`.
    pub fn record_success(&mut self, now_ms: u64) {
        self.last_success_ms = Some(now_ms);
        self.consecutive_failures = 0;
        self.unreachable = false;
        self.failing = false;
        self.successes += 1;
    }

    /// Records a failed call at `now_ms`; failures that say nothing about the
    /// peer are ignored.
    pub fn record_failure(&mut self, now_ms: u64, failure: &ReplicaFailure) {
        let kind = evidence(failure);
        if kind == Evidence::None {
            return;
        }
        self.last_failure = Some((now_ms, failure.clone()));
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.unreachable = kind == Evidence::Unreachable;
        self.failing = true;
        self.failures += 1;
    }

    /// Records either outcome.
    pub fn record(&mut self, now_ms: u64, outcome: Result<(), &ReplicaFailure>) {
        match outcome {
            Ok(()) => self.record_success(now_ms),
            Err(f) => self.record_failure(now_ms, f),
        }
    }

    /// The status this record gives (see the module doc).
    pub fn status(&self) -> PeerStatus {
        if !self.failing {
            PeerStatus::Up
        } else if self.unreachable || self.consecutive_failures >= DOWN_AFTER_TIMEOUTS {
            PeerStatus::Down
        } else {
            PeerStatus::Suspect
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ReplicaError;

    #[test]
    fn status_follows_the_evidence() {
        type Step = Result<(), ReplicaFailure>;
        let timeout = || Err(ReplicaFailure::Timeout { ms: 100 });
        let cases: Vec<(&str, Vec<Step>, PeerStatus)> = vec![
            ("never called", vec![], PeerStatus::Up),
            (
                "refused",
                vec![Err(ReplicaFailure::ConnectRefused)],
                PeerStatus::Down,
            ),
            (
                "known down",
                vec![Err(ReplicaFailure::KnownDown)],
                PeerStatus::Down,
            ),
            ("one timeout", vec![timeout()], PeerStatus::Suspect),
            (
                "two timeouts",
                vec![timeout(), timeout()],
                PeerStatus::Suspect,
            ),
            (
                "three timeouts",
                vec![timeout(), timeout(), timeout()],
                PeerStatus::Down,
            ),
            (
                "a success clears",
                vec![Err(ReplicaFailure::ConnectRefused), Ok(())],
                PeerStatus::Up,
            ),
            (
                "storage failure is degraded, not down",
                vec![Err(ReplicaFailure::Replica(ReplicaError::StorageFailed))],
                PeerStatus::Suspect,
            ),
            (
                "quorum already decided says nothing",
                vec![Ok(()), Err(ReplicaFailure::QuorumUnreachable)],
                PeerStatus::Up,
            ),
        ];
        for (name, steps, want) in cases {
            let mut h = PeerHealth::default();
            for (t, step) in steps.iter().enumerate() {
                h.record(t as u64, step.as_ref().map(|_| ()));
            }
            assert_eq!(h.status(), want, "{name}");
        }
    }

    #[test]
    fn the_record_keeps_the_last_failure_and_counts() {
        let mut h = PeerHealth::default();
        h.record_failure(5, &ReplicaFailure::ConnectionLost);
        h.record_success(9);
        h.record_failure(12, &ReplicaFailure::ConnectRefused);
        assert_eq!(h.last_success_ms, Some(9));
        assert_eq!(h.last_failure, Some((12, ReplicaFailure::ConnectRefused)));
        assert_eq!((h.successes, h.failures, h.consecutive_failures), (1, 2, 1));
    }
}
