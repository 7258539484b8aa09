//! Shared fixtures for the coordination tests: node ids, sample objects,
//! every failure kind, and a harness that drains a machine's commands into a
//! log. Test-only; must never hold assertions a test file cannot see.

use bytes::Bytes;
use ringkv_core::coordinate::*;
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::protocol::{HandshakeRefusal, ReplicaError};
use ringkv_core::quorum::QuorumError;
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

// Machines: drain their commands, plans of three replicas, expected commands.

pub fn drain_read(m: &mut ReadMachine) -> Vec<ReadCommand> {
    std::iter::from_fn(|| m.poll_command()).collect()
}

pub fn drain_write(m: &mut WriteMachine) -> Vec<WriteCommand> {
    std::iter::from_fn(|| m.poll_command()).collect()
}

pub fn drain_forward(m: &mut ForwardMachine) -> Vec<ForwardCommand> {
    std::iter::from_fn(|| m.poll_command()).collect()
}

pub fn read_plan(r: usize, local: bool) -> ReadPlan {
    ReadPlan {
        replicas: ids(&["n1", "n2", "n3"]),
        local: local.then(|| id("n1")),
        stand_ins: vec![],
        r,
        monotonic: false,
        speculate_after_ms: 100,
        timeout_ms: 3000,
    }
}

pub fn send(name: &str) -> ReadCommand {
    ReadCommand::Send {
        to: id(name),
        hint_for: None,
    }
}

pub fn repair(name: &str, object: &Siblings) -> ReadCommand {
    ReadCommand::Repair {
        to: id(name),
        hint_for: None,
        object: object.clone(),
    }
}

pub fn read_error(m: &mut ReadMachine) -> QuorumError {
    match drain_read(m).as_slice() {
        [ReadCommand::Answer(Err(e))] => e.clone(),
        other => panic!("expected one error answer, got {other:?}"),
    }
}

pub fn write_plan(w: usize) -> WritePlan {
    WritePlan {
        replicas: ids(&["n1", "n2", "n3"]),
        local: Some(id("n1")),
        stand_ins: vec![],
        spares: vec![],
        w,
        pw: 0,
        stand_in_after_ms: 500,
        newer_homes: Vec::new(),
        timeout_ms: 3000,
    }
}

pub fn wsend(to: &str, hint_for: Option<&str>) -> WriteCommand {
    WriteCommand::Send {
        to: id(to),
        hint_for: hint_for.map(id),
    }
}

pub fn write_error(m: &mut WriteMachine) -> QuorumError {
    match drain_write(m).as_slice() {
        [WriteCommand::Answer(Err(e))] => e.clone(),
        other => panic!("expected one error answer, got {other:?}"),
    }
}
