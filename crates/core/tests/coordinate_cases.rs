//! Table-driven cases for the coordination machines: one behaviour each,
//! stated as a script of events and the commands expected after each one.
//! The property tests (`coordinate_props.rs`) cover arbitrary interleavings.

#[allow(dead_code)]
mod common;

use common::*;
use ringkv_core::coordinate::*;
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::protocol::{ClientResponse, OpError};
use ringkv_core::quorum::QuorumError;
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;

#[test]
fn a_read_asks_the_local_copy_plus_just_enough_others_and_merges_r_replies() {
    let mut m = ReadMachine::new(read_plan(2, true), 0);
    assert_eq!(drain_read(&mut m), vec![ReadCommand::ReadLocal, send("n2")]);
    assert_eq!(m.poll_timeout(), Some(100), "speculation comes first");
    m.on_reply(&id("n1"), Ok(Some(object(1))), 5);
    assert_eq!(drain_read(&mut m), vec![]);
    m.on_reply(&id("n2"), Ok(Some(object(2))), 9);
    let merged = object(1).merged(&object(2));
    assert_eq!(
        drain_read(&mut m),
        vec![
            ReadCommand::Answer(Ok(Some(merged.clone()))),
            repair("n1", &merged),
            repair("n2", &merged),
        ],
        "each replica lacked the other's version: both are repaired, after the answer"
    );
    assert!(m.is_answered());
    assert_eq!(m.poll_timeout(), None);
    // A late reply is recorded for read repair but commands nothing.
    m.on_reply(&id("n3"), Ok(None), 20);
    assert_eq!(m.replies().len(), 2, "n3 was never asked: ignored");
}

#[test]
fn r_equals_one_on_a_replica_reads_only_the_local_copy() {
    let mut m = ReadMachine::new(read_plan(1, true), 0);
    assert_eq!(drain_read(&mut m), vec![ReadCommand::ReadLocal]);
    m.on_reply(&id("n1"), Ok(None), 1);
    assert_eq!(drain_read(&mut m), vec![ReadCommand::Answer(Ok(None))]);
}

#[test]
fn a_failed_replica_is_replaced_at_once_by_the_next() {
    let mut m = ReadMachine::new(read_plan(2, true), 0);
    drain_read(&mut m);
    m.on_reply(&id("n2"), Err(ReplicaFailure::ConnectRefused), 1);
    assert_eq!(drain_read(&mut m), vec![send("n3")]);
    assert_eq!(m.poll_timeout(), Some(3000), "nothing left to speculate on");
    m.on_reply(&id("n3"), Ok(Some(object(3))), 2);
    m.on_reply(&id("n1"), Ok(None), 3);
    assert_eq!(
        drain_read(&mut m),
        vec![
            ReadCommand::Answer(Ok(Some(object(3)))),
            repair("n1", &object(3)),
        ],
        "the local copy was missing: it is repaired"
    );
    let counted: Vec<bool> = m.replies().iter().map(|r| r.counted).collect();
    assert_eq!(counted, vec![false, true, true]);
}

#[test]
fn a_pending_read_asks_every_remaining_replica_at_the_speculation_point() {
    let mut m = ReadMachine::new(read_plan(2, true), 1000);
    drain_read(&mut m);
    m.on_reply(&id("n1"), Ok(None), 1010);
    m.on_timeout(1100);
    assert_eq!(drain_read(&mut m), vec![send("n3")]);
    assert_eq!(m.poll_timeout(), Some(4000));
    m.on_reply(&id("n3"), Ok(None), 1120);
    assert_eq!(drain_read(&mut m), vec![ReadCommand::Answer(Ok(None))]);
}

#[test]
fn a_read_without_a_local_copy_sends_to_the_first_r() {
    let mut m = ReadMachine::new(read_plan(2, false), 0);
    assert_eq!(drain_read(&mut m), vec![send("n1"), send("n2")]);
}

#[test]
fn a_read_fails_as_soon_as_r_is_unreachable_naming_everyone() {
    let mut m = ReadMachine::new(read_plan(3, true), 0);
    assert_eq!(
        drain_read(&mut m),
        vec![ReadCommand::ReadLocal, send("n2"), send("n3")]
    );
    m.on_reply(&id("n3"), Err(ReplicaFailure::KnownDown), 1);
    let e = read_error(&mut m);
    assert_eq!((e.needed, e.asked, e.acks), (3, 3, 0));
    assert_eq!(
        e.to_string(),
        "quorum not met: needed 3 of 3 replicas, 0 acknowledged; n3: known to be down (not tried); \
         n1: no answer yet when the quorum became unreachable; \
         n2: no answer yet when the quorum became unreachable"
    );
}

#[test]
fn a_read_times_out_at_the_deadline_and_names_the_unasked() {
    let plan = ReadPlan {
        speculate_after_ms: 5000,
        ..read_plan(2, true)
    };
    let mut m = ReadMachine::new(plan, 0);
    drain_read(&mut m);
    m.on_reply(&id("n1"), Ok(None), 1);
    assert_eq!(m.poll_timeout(), Some(3000));
    m.on_timeout(2999);
    assert_eq!(drain_read(&mut m), vec![], "early wake-ups change nothing");
    m.on_timeout(3000);
    let e = read_error(&mut m);
    assert_eq!(
        e.failures,
        vec![
            (id("n2"), ReplicaFailure::Timeout { ms: 3000 }),
            (id("n3"), ReplicaFailure::NotAsked),
        ]
    );
}

#[test]
fn duplicates_and_strangers_do_not_count() {
    let mut m = ReadMachine::new(read_plan(2, true), 0);
    drain_read(&mut m);
    m.on_reply(&id("n1"), Ok(None), 1);
    m.on_reply(&id("n1"), Ok(None), 2);
    m.on_reply(&id("zz"), Ok(None), 3);
    m.on_reply(&id("n3"), Ok(None), 4);
    assert_eq!(drain_read(&mut m), vec![]);
    assert_eq!(m.replies().len(), 1);
}

#[test]
fn a_write_goes_to_every_replica_at_once_and_answers_after_w_acks() {
    let mut m = WriteMachine::new(write_plan(2), 0);
    assert_eq!(
        drain_write(&mut m),
        vec![
            WriteCommand::AwaitLocal,
            wsend("n2", None),
            wsend("n3", None),
        ]
    );
    assert_eq!(m.poll_timeout(), Some(3000));
    m.on_reply(&id("n3"), Ok(()), 2);
    m.on_reply(&id("n3"), Ok(()), 3);
    assert_eq!(drain_write(&mut m), vec![], "a duplicate ack is one ack");
    m.on_reply(&id("n1"), Ok(()), 4);
    assert_eq!(drain_write(&mut m), vec![WriteCommand::Answer(Ok(()))]);
    assert_eq!(m.acked(), &ids(&["n3", "n1"])[..]);
    m.on_reply(&id("n2"), Err(ReplicaFailure::ConnectionLost), 9);
    assert_eq!(drain_write(&mut m), vec![]);
    assert!(!m.replies()[2].counted);
}

#[test]
fn a_write_fails_as_soon_as_w_is_unreachable() {
    let mut m = WriteMachine::new(write_plan(2), 0);
    drain_write(&mut m);
    m.on_reply(&id("n2"), Err(ReplicaFailure::ConnectRefused), 1);
    assert_eq!(drain_write(&mut m), vec![]);
    m.on_reply(&id("n3"), Err(ReplicaFailure::ConnectRefused), 2);
    let e = write_error(&mut m);
    assert_eq!(
        e.to_string(),
        "quorum not met: needed 2 of 3 replicas, 0 acknowledged; n2: connection refused; \
         n3: connection refused; n1: no answer yet when the quorum became unreachable"
    );
}

#[test]
fn a_write_times_out_at_the_deadline() {
    let mut m = WriteMachine::new(write_plan(2), 10);
    drain_write(&mut m);
    m.on_reply(&id("n1"), Ok(()), 11);
    m.on_timeout(3010);
    let e = write_error(&mut m);
    assert_eq!(e.acks, 1);
    assert_eq!(
        e.to_string(),
        "quorum not met: needed 2 of 3 replicas, 1 acknowledged; \
         n2: no answer within 3000 ms; n3: no answer within 3000 ms"
    );
}

#[test]
fn impossible_quorums_fail_at_once_after_the_sends() {
    let mut m = WriteMachine::new(write_plan(4), 0);
    let commands = drain_write(&mut m);
    assert_eq!(commands.len(), 4);
    assert!(matches!(commands[3], WriteCommand::Answer(Err(_))));
    let mut m = ReadMachine::new(read_plan(4, true), 0);
    let e = read_error(&mut m);
    assert_eq!((e.needed, e.asked, e.failures.len()), (4, 3, 3));
}

fn forward_plan(write: bool) -> ForwardPlan {
    ForwardPlan {
        targets: ids(&["n1", "n2", "n3"]),
        write,
        timeout_ms: 3500,
    }
}

fn fsend(name: &str) -> ForwardCommand {
    ForwardCommand::Send { to: id(name) }
}

fn put_ok() -> ClientResponse {
    ClientResponse::Put(Ok(VersionVector::new()))
}

fn forward_error(m: &mut ForwardMachine) -> OpError {
    match drain_forward(m).as_slice() {
        [ForwardCommand::Answer(Err(e))] => e.clone(),
        other => panic!("expected one error answer, got {other:?}"),
    }
}

#[test]
fn a_forward_moves_past_nodes_the_request_never_reached() {
    let mut m = ForwardMachine::new(forward_plan(true), 0);
    assert_eq!(drain_forward(&mut m), vec![fsend("n1")]);
    m.on_reply(&id("n1"), Err(ReplicaFailure::ConnectRefused), 1);
    assert_eq!(drain_forward(&mut m), vec![fsend("n2")]);
    let not_coordinator = ClientResponse::Put(Err(OpError::NotCoordinator { node: id("n2") }));
    m.on_reply(&id("n2"), Ok(not_coordinator), 2);
    assert_eq!(drain_forward(&mut m), vec![fsend("n3")]);
    m.on_reply(&id("n3"), Ok(put_ok()), 3);
    assert_eq!(
        drain_forward(&mut m),
        vec![ForwardCommand::Answer(Ok(put_ok()))]
    );
}

#[test]
fn a_forwarded_write_is_never_retried_once_it_may_have_been_applied() {
    for failure in [
        ReplicaFailure::Timeout { ms: 3500 },
        ReplicaFailure::ConnectionLost,
        ReplicaFailure::UnexpectedAnswer,
    ] {
        let mut m = ForwardMachine::new(forward_plan(true), 0);
        drain_forward(&mut m);
        m.on_reply(&id("n1"), Err(failure.clone()), 1);
        let e = forward_error(&mut m);
        assert_eq!(
            e,
            OpError::ForwardFailed {
                attempts: vec![(id("n1"), failure)],
                outcome_unknown: true
            }
        );
        assert!(e.to_string().ends_with("read before retrying"), "{e}");
    }
    // The same at the deadline, and for an answer of the wrong kind.
    let mut m = ForwardMachine::new(forward_plan(true), 0);
    drain_forward(&mut m);
    m.on_timeout(3500);
    assert!(matches!(
        forward_error(&mut m),
        OpError::ForwardFailed {
            outcome_unknown: true,
            ..
        }
    ));
    let mut m = ForwardMachine::new(forward_plan(true), 0);
    drain_forward(&mut m);
    m.on_reply(&id("n1"), Ok(ClientResponse::Get(Ok(None))), 1);
    assert!(matches!(
        forward_error(&mut m),
        OpError::ForwardFailed {
            outcome_unknown: true,
            ..
        }
    ));
}

#[test]
fn a_forwarded_read_moves_on_after_any_failure_and_passes_errors_through() {
    let mut m = ForwardMachine::new(forward_plan(false), 0);
    drain_forward(&mut m);
    m.on_reply(&id("n1"), Err(ReplicaFailure::ConnectionLost), 1);
    assert_eq!(drain_forward(&mut m), vec![fsend("n2")]);
    m.on_reply(&id("n1"), Ok(ClientResponse::Get(Ok(None))), 2);
    assert_eq!(drain_forward(&mut m), vec![], "n1 is no longer in flight");
    let quorum = ClientResponse::Get(Err(OpError::Quorum(QuorumError {
        needed: 2,
        asked: 3,
        acks: 1,
        failures: vec![],
    })));
    m.on_reply(&id("n2"), Ok(quorum.clone()), 3);
    assert_eq!(
        drain_forward(&mut m),
        vec![ForwardCommand::Answer(Ok(quorum))],
        "the target coordinated: its answer is the answer"
    );
}

#[test]
fn a_forward_that_runs_out_of_nodes_says_why_each_failed() {
    let mut m = ForwardMachine::new(forward_plan(true), 0);
    drain_forward(&mut m);
    for (node, why) in [
        ("n1", ReplicaFailure::ConnectRefused),
        ("n2", ReplicaFailure::KnownDown),
        ("n3", ReplicaFailure::ConnectTimeout { ms: 500 }),
    ] {
        m.on_reply(&id(node), Err(why), 1);
    }
    let commands = drain_forward(&mut m);
    assert_eq!(&commands[..2], &[fsend("n2"), fsend("n3")]);
    let ForwardCommand::Answer(Err(e)) = &commands[2] else {
        panic!("{commands:?}");
    };
    assert_eq!(
        e.to_string(),
        "no replica could coordinate the request: n1: connection refused; \
         n2: known to be down (not tried); n3: could not connect within 500 ms"
    );
    let mut m = ForwardMachine::new(
        ForwardPlan {
            targets: vec![],
            write: false,
            timeout_ms: 1,
        },
        0,
    );
    assert!(matches!(
        forward_error(&mut m),
        OpError::ForwardFailed {
            outcome_unknown: false,
            ..
        }
    ));
}

#[test]
fn merged_answers_are_the_causal_merge() {
    // Two replicas, one holding a descendant of the other's version.
    let mut old = Siblings::new();
    old.update(&VersionVector::new(), &id("a"), None, 1);
    let mut new = old.clone();
    new.update(&old.clock().clone(), &id("a"), None, 2);
    let mut m = ReadMachine::new(read_plan(2, true), 0);
    drain_read(&mut m);
    m.on_reply(&id("n2"), Ok(Some(new.clone())), 1);
    m.on_reply(&id("n1"), Ok(Some(old)), 2);
    assert_eq!(
        drain_read(&mut m),
        vec![
            ReadCommand::Answer(Ok(Some(new.clone()))),
            repair("n1", &new)
        ]
    );
}
