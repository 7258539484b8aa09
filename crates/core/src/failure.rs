//! `ReplicaFailure`: why one replica (or forwarding target) did not count.
//!
//! Failures are data. The node's transport turns each RPC outcome into one of
//! these variants, the coordination machines ([`crate::coordinate`]) decide
//! with them (replace the replica, try the next forwarding target, or stop),
//! and a failed quorum carries them to the client inside a
//! [`crate::quorum::QuorumError`], whose `Display` the HTTP layer shows.
//! Details that only help an operator (an OS error text, a storage error) are
//! logged where they happen and never cross the wire.
//!
//! The one decision that lives on this type is
//! [`ReplicaFailure::proves_not_applied`]: whether the failure shows that the
//! request was never acted on (so sending it elsewhere cannot apply it twice).
//! Getting that wrong in the permissive direction duplicates writes, so every
//! variant not listed there counts as "may have been applied".
//!
//! Never: carry free-form strings, or read anything but its own fields.

use crate::protocol::{HandshakeRefusal, ReplicaError};
use serde::{Deserialize, Serialize};

/// Why one replica did not acknowledge (or one forwarding target did not
/// coordinate) a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReplicaFailure {
    /// Asked, but no answer arrived before the request's deadline.
    #[error("no answer within {ms} ms")]
    Timeout { ms: u64 },
    /// Asked, but the quorum became unreachable (enough others failed)
    /// before this replica answered; the coordinator stopped waiting.
    #[error("no answer yet when the quorum became unreachable")]
    QuorumUnreachable,
    /// Never asked: the request ended (deadline) before this replica's turn.
    #[error("not asked before the request ended")]
    NotAsked,
    /// The coordinator knows no address for this node.
    #[error("no address known for this node")]
    NoAddress,
    /// The connection was actively refused (nothing listening).
    #[error("connection refused")]
    ConnectRefused,
    /// Connecting took longer than `ms`.
    #[error("could not connect within {ms} ms")]
    ConnectTimeout { ms: u64 },
    /// Any other error while connecting (unreachable network, reset during
    /// the handshake, ...); the detail is logged by the transport.
    #[error("could not connect")]
    ConnectFailed,
    /// The connection broke after the request may have been sent.
    #[error("connection lost before the answer")]
    ConnectionLost,
    /// Not tried: the node is known to be down and in connect backoff, so
    /// calls to it fail fast.
    #[error("known to be down (not tried)")]
    KnownDown,
    /// The node refused our handshake.
    #[error("refused the handshake: {0}")]
    HandshakeRefused(HandshakeRefusal),
    /// The replica answered with an error.
    #[error("{0}")]
    Replica(ReplicaError),
    /// The node answered with a message of the wrong kind.
    #[error("answered with an unexpected message")]
    UnexpectedAnswer,
    /// The node sent bytes that do not decode as a message.
    #[error("sent a malformed message")]
    Malformed,
    /// The node refused the request because it has too much in flight.
    #[error("overloaded: too many requests in flight")]
    Overloaded,
    /// A forwarding target answered that it holds no replica of the key.
    #[error("holds no replica of the key (do the nodes agree on membership?)")]
    NotCoordinator,
    /// A stand-in answered a read that counts homes only (R + W > N): its
    /// copy was merged into the answer but does not count toward R.
    #[error("a stand-in, not a home: merged but not counted")]
    StandIn,
}

impl ReplicaFailure {
    /// A short, stable name of the variant, for metric labels and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplicaFailure::Timeout { .. } => "timeout",
            ReplicaFailure::QuorumUnreachable => "quorum_unreachable",
            ReplicaFailure::NotAsked => "not_asked",
            ReplicaFailure::NoAddress => "no_address",
            ReplicaFailure::ConnectRefused => "connect_refused",
            ReplicaFailure::ConnectTimeout { .. } => "connect_timeout",
            ReplicaFailure::ConnectFailed => "connect_failed",
            ReplicaFailure::ConnectionLost => "connection_lost",
            ReplicaFailure::KnownDown => "known_down",
            ReplicaFailure::HandshakeRefused(_) => "handshake_refused",
            ReplicaFailure::Replica(_) => "replica_error",
            ReplicaFailure::UnexpectedAnswer => "unexpected_answer",
            ReplicaFailure::Malformed => "malformed",
            ReplicaFailure::Overloaded => "overloaded",
            ReplicaFailure::NotCoordinator => "not_coordinator",
            ReplicaFailure::StandIn => "stand_in",
        }
    }

    /// True when this failure proves the request was never acted on: it
    /// never left this node, or the other side refused it before doing
    /// anything. Only such failures allow sending a write somewhere else.
    pub fn proves_not_applied(&self) -> bool {
        match self {
            ReplicaFailure::NotAsked
            | ReplicaFailure::NoAddress
            | ReplicaFailure::ConnectRefused
            | ReplicaFailure::ConnectTimeout { .. }
            | ReplicaFailure::ConnectFailed
            | ReplicaFailure::KnownDown
            | ReplicaFailure::HandshakeRefused(_)
            | ReplicaFailure::Overloaded
            | ReplicaFailure::NotCoordinator
            | ReplicaFailure::Replica(ReplicaError::ShuttingDown)
            | ReplicaFailure::Replica(ReplicaError::Overloaded)
            | ReplicaFailure::Replica(ReplicaError::Refilling) => true,
            ReplicaFailure::Timeout { .. }
            | ReplicaFailure::QuorumUnreachable
            | ReplicaFailure::ConnectionLost
            | ReplicaFailure::Replica(_)
            | ReplicaFailure::UnexpectedAnswer
            | ReplicaFailure::Malformed
            | ReplicaFailure::StandIn => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_before_the_request_left_prove_it_was_not_applied() {
        let not_applied = [
            ReplicaFailure::ConnectRefused,
            ReplicaFailure::ConnectTimeout { ms: 500 },
            ReplicaFailure::ConnectFailed,
            ReplicaFailure::KnownDown,
            ReplicaFailure::HandshakeRefused(HandshakeRefusal::NotAMember),
            ReplicaFailure::NotCoordinator,
        ];
        let maybe_applied = [
            ReplicaFailure::Timeout { ms: 3000 },
            ReplicaFailure::ConnectionLost,
            ReplicaFailure::UnexpectedAnswer,
            ReplicaFailure::Malformed,
            ReplicaFailure::Replica(ReplicaError::StorageFailed),
        ];
        assert!(not_applied.iter().all(ReplicaFailure::proves_not_applied));
        assert!(!maybe_applied.iter().any(ReplicaFailure::proves_not_applied));
    }

    #[test]
    fn display_reads_as_a_reason() {
        let cases = [
            (ReplicaFailure::ConnectRefused, "connection refused"),
            (
                ReplicaFailure::Timeout { ms: 3000 },
                "no answer within 3000 ms",
            ),
            (
                ReplicaFailure::Replica(ReplicaError::TooManySiblings {
                    count: 65,
                    limit: 64,
                }),
                "the key has 65 siblings, more than the limit of 64",
            ),
            (
                ReplicaFailure::HandshakeRefused(HandshakeRefusal::ProtocolVersion {
                    ours: 2,
                    theirs: 1,
                }),
                "refused the handshake: protocol version 1 is not supported (the peer speaks 2)",
            ),
        ];
        for (failure, text) in cases {
            assert_eq!(failure.to_string(), text);
        }
    }
}
