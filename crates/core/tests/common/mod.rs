//! Shared fixtures for the coordination tests: node ids, sample objects,
//! every failure kind, and a harness that drains a machine's commands into a
//! log. Test-only; must never hold assertions a test file cannot see.

use bytes::Bytes;
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::protocol::{HandshakeRefusal, ReplicaError};
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;

pub fn id(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

pub fn ids(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(|s| id(s)).collect()
}

/// Replica `i` of a test cluster: `n1`, `n2`, ...
pub fn node(i: usize) -> NodeId {
    id(&format!("n{}", i + 1))
}

/// A one-version object written by `w{i}` with value `v{i}`.
pub fn object(i: usize) -> Siblings {
    let mut obj = Siblings::new();
    let writer = id(&format!("w{i}"));
    obj.update(
        &VersionVector::new(),
        &writer,
        Some(Bytes::from(format!("v{i}"))),
        i as u64,
    );
    obj
}

/// One of each failure a replica or transport can report.
pub fn failure_kinds() -> Vec<ReplicaFailure> {
    vec![
        ReplicaFailure::Timeout { ms: 3000 },
        ReplicaFailure::ConnectRefused,
        ReplicaFailure::ConnectTimeout { ms: 500 },
        ReplicaFailure::ConnectFailed,
        ReplicaFailure::ConnectionLost,
        ReplicaFailure::KnownDown,
        ReplicaFailure::NoAddress,
        ReplicaFailure::HandshakeRefused(HandshakeRefusal::NotAMember),
        ReplicaFailure::Replica(ReplicaError::CorruptRecord),
        ReplicaFailure::Replica(ReplicaError::ShuttingDown),
        ReplicaFailure::UnexpectedAnswer,
        ReplicaFailure::Malformed,
        ReplicaFailure::Overloaded,
    ]
}

/// The reasons a machine gives replicas that never answered.
pub fn is_unanswered_reason(why: &ReplicaFailure) -> bool {
    matches!(
        why,
        ReplicaFailure::Timeout { .. }
            | ReplicaFailure::QuorumUnreachable
            | ReplicaFailure::NotAsked
    )
}
