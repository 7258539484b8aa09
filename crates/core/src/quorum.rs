//! Quorum tallies: counting replica answers until R or W agree (F1).
//!
//! The coordinator asks several replicas at once and feeds each answer into a
//! [`QuorumTally`]. The tally says when the quorum is met, or when it can no
//! longer be met (too many replicas failed), so the coordinator answers the
//! client as soon as the outcome is known — a refused connection fails at once
//! instead of waiting for a timeout. A failed quorum is a [`QuorumError`] that
//! says how many answers were needed, how many came and why the rest did not.
//! Pure bookkeeping: no clock, no IO; time-outs are reported by the caller.
//! Reasons are typed ([`ReplicaFailure`]), never strings.

use crate::failure::ReplicaFailure;
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a tally stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Not decided yet: more answers are due.
    Pending,
    /// Enough replicas acknowledged.
    Met,
    /// Too many replicas failed for the quorum to be met.
    Failed,
}

/// Counts acknowledgements and failures from `asked` replicas, `needed` of
/// which must acknowledge.
#[derive(Debug, Clone)]
pub struct QuorumTally {
    needed: usize,
    asked: usize,
    acks: Vec<NodeId>,
    failures: Vec<(NodeId, ReplicaFailure)>,
}

/// A quorum that was not met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct QuorumError {
    pub needed: usize,
    pub asked: usize,
    pub acks: usize,
    /// Each replica that did not acknowledge, and why.
    pub failures: Vec<(NodeId, ReplicaFailure)>,
}

impl fmt::Display for QuorumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "quorum not met: needed {} of {} replicas, {} acknowledged",
            self.needed, self.asked, self.acks
        )?;
        for (node, why) in &self.failures {
            write!(f, "; {node}: {why}")?;
        }
        Ok(())
    }
}

impl QuorumError {
    /// Whether a *write* that failed this way may still have been applied:
    /// some replica acknowledged it, or some failure does not prove the
    /// replica never acted on it (a timeout, a lost connection, a local
    /// write still running when the quorum became unreachable). Replicas
    /// that got it keep it, so a client must read before retrying; `false`
    /// only when every replica provably never got the write.
    pub fn write_may_have_applied(&self) -> bool {
        self.acks > 0
            || self
                .failures
                .iter()
                .any(|(_, why)| !why.proves_not_applied())
    }
}

impl QuorumTally {
    /// A tally that needs `needed` acknowledgements out of `asked` replicas.
    pub fn new(needed: usize, asked: usize) -> Self {
        QuorumTally {
            needed,
            asked,
            acks: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Records an acknowledgement (a duplicate from the same node is ignored).
    pub fn ack(&mut self, node: &NodeId) -> Progress {
        if !self.has_answered(node) {
            self.acks.push(node.clone());
        }
        self.progress()
    }

    /// Records a failure from `node`, with the reason (a node that already
    /// answered keeps its first answer).
    pub fn fail(&mut self, node: &NodeId, reason: ReplicaFailure) -> Progress {
        if !self.has_answered(node) {
            self.failures.push((node.clone(), reason));
        }
        self.progress()
    }

    /// One more node was asked (a spare replacing a failed one).
    pub fn ask_one_more(&mut self) {
        self.asked += 1;
    }

    /// Whether `node` has acknowledged or failed.
    pub fn has_answered(&self, node: &NodeId) -> bool {
        self.acks.contains(node) || self.failures.iter().any(|(n, _)| n == node)
    }

    /// Where the tally stands now.
    pub fn progress(&self) -> Progress {
        if self.acks.len() >= self.needed {
            Progress::Met
        } else if self.asked - self.failures.len().min(self.asked) < self.needed {
            Progress::Failed
        } else {
            Progress::Pending
        }
    }

    /// How many replicas have failed so far.
    pub fn failures(&self) -> usize {
        self.failures.len()
    }

    /// The nodes that acknowledged, in order.
    pub fn acked(&self) -> &[NodeId] {
        &self.acks
    }

    /// The failures recorded so far, in arrival order.
    pub fn failed(&self) -> &[(NodeId, ReplicaFailure)] {
        &self.failures
    }

    /// The error describing this tally: its failures, then each of `rest`
    /// (replicas that had not answered when the caller gave up, with why)
    /// that neither acknowledged nor failed.
    pub fn error(&self, rest: impl IntoIterator<Item = (NodeId, ReplicaFailure)>) -> QuorumError {
        let mut failures = self.failures.clone();
        for (node, why) in rest {
            if !self.acks.contains(&node) && !failures.iter().any(|(n, _)| *n == node) {
                failures.push((node, why));
            }
        }
        QuorumError {
            needed: self.needed,
            asked: self.asked,
            acks: self.acks.len(),
            failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn meets_after_w_acks_and_fails_once_unreachable() {
        let mut t = QuorumTally::new(2, 3);
        assert_eq!(t.ack(&n("a")), Progress::Pending);
        assert_eq!(
            t.ack(&n("a")),
            Progress::Pending,
            "duplicate ack must not count"
        );
        assert_eq!(
            t.fail(&n("b"), ReplicaFailure::ConnectRefused),
            Progress::Pending
        );
        assert_eq!(t.ack(&n("c")), Progress::Met);

        let mut t = QuorumTally::new(2, 3);
        t.fail(&n("a"), ReplicaFailure::ConnectRefused);
        assert_eq!(
            t.fail(&n("b"), ReplicaFailure::ConnectRefused),
            Progress::Failed
        );
        let err = t.error([(n("c"), ReplicaFailure::QuorumUnreachable)]);
        assert_eq!((err.needed, err.asked, err.acks), (2, 3, 0));
        assert_eq!(err.failures.len(), 3);
        let text = err.to_string();
        assert!(
            text.contains("needed 2 of 3 replicas, 0 acknowledged"),
            "{text}"
        );
        assert!(
            text.contains("c: no answer yet when the quorum became unreachable"),
            "{text}"
        );

        let mut t = QuorumTally::new(2, 3);
        t.ack(&n("a"));
        let timeout = ReplicaFailure::Timeout { ms: 2000 };
        let text = t
            .error([(n("b"), timeout.clone()), (n("c"), timeout)])
            .to_string();
        assert_eq!(
            text,
            "quorum not met: needed 2 of 3 replicas, 1 acknowledged; \
             b: no answer within 2000 ms; c: no answer within 2000 ms"
        );
    }

    #[test]
    fn r_equals_one_is_met_by_the_first_answer() {
        let mut t = QuorumTally::new(1, 3);
        assert_eq!(t.ack(&n("x")), Progress::Met);
        assert_eq!(t.acked(), &[n("x")]);
    }

    #[test]
    fn a_failed_write_may_have_applied_unless_every_replica_provably_missed_it() {
        let error = |acks, failures: Vec<ReplicaFailure>| QuorumError {
            needed: 3,
            asked: 3,
            acks,
            failures: failures
                .into_iter()
                .enumerate()
                .map(|(i, f)| (n(&format!("n{i}")), f))
                .collect(),
        };
        let refused = ReplicaFailure::ConnectRefused;
        let cases = [
            (error(1, vec![refused.clone(), refused.clone()]), true),
            (
                error(0, vec![ReplicaFailure::QuorumUnreachable, refused.clone()]),
                true,
            ),
            (error(0, vec![ReplicaFailure::Timeout { ms: 10 }]), true),
            (
                error(0, vec![refused.clone(), ReplicaFailure::KnownDown]),
                false,
            ),
        ];
        for (e, may) in cases {
            assert_eq!(e.write_may_have_applied(), may, "{e}");
        }
    }
}
