//! Table-driven cases for what the coordination machines do when replicas
//! fail or disagree: stand-ins and spares (sloppy quorum, F2), PW, read
//! repair and monotonic quorum reads (F4). The basic cases are in
//! `coordinate_cases.rs`.

#[allow(dead_code)]
mod common;

use common::*;
use ringkv_core::coordinate::*;
use ringkv_core::failure::ReplicaFailure;

#[test]
fn a_monotonic_read_repairs_stale_counted_replicas_before_answering() {
    let plan = ReadPlan {
        monotonic: true,
        ..read_plan(2, true)
    };
    let mut m = ReadMachine::new(plan.clone(), 0);
    drain_read(&mut m);
    m.on_reply(&id("n1"), Ok(None), 1);
    m.on_reply(&id("n2"), Ok(Some(object(2))), 2);
    assert_eq!(
        drain_read(&mut m),
        vec![repair("n1", &object(2))],
        "no answer until n1 holds what the answer returns"
    );
    assert_eq!(m.poll_timeout(), Some(3000));
    m.on_repair(&id("n2"), Ok(()), 3);
    assert_eq!(drain_read(&mut m), vec![], "n2 was never repaired");
    m.on_repair(&id("n1"), Ok(()), 4);
    assert_eq!(
        drain_read(&mut m),
        vec![ReadCommand::Answer(Ok(Some(object(2))))]
    );

    // A repair that fails fails the read: a later quorum read might miss it.
    let mut m = ReadMachine::new(plan.clone(), 0);
    drain_read(&mut m);
    m.on_reply(&id("n1"), Ok(Some(object(1))), 1);
    m.on_reply(&id("n2"), Ok(None), 2);
    assert_eq!(drain_read(&mut m), vec![repair("n2", &object(1))]);
    m.on_repair(&id("n2"), Err(ReplicaFailure::ConnectionLost), 3);
    let e = read_error(&mut m);
    assert_eq!(e.failures, vec![(id("n2"), ReplicaFailure::ConnectionLost)]);
    assert_eq!((e.needed, e.acks), (2, 1));

    // So does one that does not finish by the deadline.
    let mut m = ReadMachine::new(plan.clone(), 0);
    drain_read(&mut m);
    m.on_reply(&id("n1"), Ok(Some(object(1))), 1);
    m.on_reply(&id("n2"), Ok(None), 2);
    drain_read(&mut m);
    m.on_timeout(3000);
    let e = read_error(&mut m);
    assert_eq!(
        e.failures,
        vec![(id("n2"), ReplicaFailure::Timeout { ms: 3000 })]
    );

    // Replicas that agree need no repair, monotonic or not.
    let mut m = ReadMachine::new(plan, 0);
    drain_read(&mut m);
    m.on_reply(&id("n1"), Ok(Some(object(1))), 1);
    m.on_reply(&id("n2"), Ok(Some(object(1))), 2);
    assert_eq!(
        drain_read(&mut m),
        vec![ReadCommand::Answer(Ok(Some(object(1))))]
    );
}

#[test]
fn a_late_reply_that_lacks_the_answer_is_repaired_until_the_deadline() {
    let mut m = ReadMachine::new(read_plan(2, true), 0);
    drain_read(&mut m);
    m.on_timeout(100);
    assert_eq!(drain_read(&mut m), vec![send("n3")], "speculation");
    m.on_reply(&id("n1"), Ok(Some(object(1))), 101);
    m.on_reply(&id("n3"), Ok(Some(object(1))), 102);
    assert_eq!(
        drain_read(&mut m),
        vec![ReadCommand::Answer(Ok(Some(object(1))))]
    );
    assert_eq!(m.poll_timeout(), Some(3000), "n2 may still reply");
    m.on_reply(&id("n2"), Ok(Some(object(2))), 200);
    let merged_in = object(2).merged(&object(1));
    assert_ne!(merged_in, object(2), "n2 lacks version 1");
    assert_eq!(drain_read(&mut m), vec![repair("n2", &object(1))]);
    assert_eq!(m.poll_timeout(), None, "everyone replied");

    // After the deadline, late replies change nothing.
    let mut m = ReadMachine::new(read_plan(2, true), 0);
    drain_read(&mut m);
    m.on_timeout(100);
    drain_read(&mut m);
    m.on_reply(&id("n1"), Ok(Some(object(1))), 101);
    m.on_reply(&id("n3"), Ok(Some(object(1))), 102);
    drain_read(&mut m);
    m.on_timeout(3000);
    assert_eq!(m.poll_timeout(), None);
    m.on_reply(&id("n2"), Ok(None), 3001);
    assert_eq!(drain_read(&mut m), vec![]);
}

#[test]
fn a_replica_whose_record_is_corrupt_gets_the_answer_as_a_repair() {
    let mut m = ReadMachine::new(read_plan(2, true), 0);
    drain_read(&mut m);
    let corrupt = ReplicaFailure::Replica(ringkv_core::protocol::ReplicaError::CorruptRecord);
    m.on_reply(&id("n1"), Err(corrupt), 1);
    assert_eq!(
        drain_read(&mut m),
        vec![send("n3")],
        "replaced like any failure"
    );
    m.on_reply(&id("n2"), Ok(Some(object(1))), 2);
    m.on_reply(&id("n3"), Ok(Some(object(1))), 3);
    assert_eq!(
        drain_read(&mut m),
        vec![
            ReadCommand::Answer(Ok(Some(object(1)))),
            repair("n1", &object(1))
        ],
        "the answer replaces the damaged record"
    );
}

#[test]
fn a_stand_in_is_asked_for_the_hint_it_holds() {
    let plan = ReadPlan {
        replicas: ids(&["n1", "n2", "n4"]),
        stand_ins: vec![(id("n4"), id("n3"))],
        ..read_plan(3, true)
    };
    let mut m = ReadMachine::new(plan, 0);
    assert_eq!(
        drain_read(&mut m),
        vec![
            ReadCommand::ReadLocal,
            send("n2"),
            ReadCommand::Send {
                to: id("n4"),
                hint_for: Some(id("n3"))
            }
        ]
    );
    m.on_reply(&id("n1"), Ok(Some(object(1))), 1);
    m.on_reply(&id("n2"), Ok(Some(object(1))), 1);
    m.on_reply(&id("n4"), Ok(None), 1);
    let commands = drain_read(&mut m);
    assert_eq!(
        commands[1],
        ReadCommand::Repair {
            to: id("n4"),
            hint_for: Some(id("n3")),
            object: object(1)
        },
        "a stand-in is repaired as a hint for its home"
    );
}

/// The gap the fault explorer found: a monotonic read (R + W > N) that
/// counted a stand-in returned a value that a later read of two homes did
/// not see. The stand-in's hint is merged, but R counts homes only: the home
/// it replaced is asked, and every counted home is repaired before the answer.
#[test]
fn a_monotonic_read_merges_a_stand_in_but_counts_homes_only() {
    let plan = ReadPlan {
        replicas: ids(&["n1", "n4", "n2", "n3"]),
        stand_ins: vec![(id("n4"), id("n3"))],
        monotonic: true,
        ..read_plan(2, true)
    };
    let mut m = ReadMachine::new(plan, 0);
    assert_eq!(
        drain_read(&mut m),
        vec![
            ReadCommand::ReadLocal,
            ReadCommand::Send {
                to: id("n4"),
                hint_for: Some(id("n3"))
            }
        ]
    );
    m.on_reply(&id("n1"), Ok(None), 1);
    m.on_reply(&id("n4"), Ok(Some(object(1))), 1);
    assert_eq!(
        drain_read(&mut m),
        vec![send("n2")],
        "the stand-in does not count: the next home is asked"
    );
    m.on_reply(&id("n2"), Ok(None), 2);
    let commands = drain_read(&mut m);
    assert_eq!(
        commands,
        vec![repair("n1", &object(1)), repair("n2", &object(1))],
        "both counted homes get the stand-in's value before the answer"
    );
    m.on_repair(&id("n1"), Ok(()), 3);
    m.on_repair(&id("n2"), Ok(()), 3);
    assert_eq!(
        drain_read(&mut m),
        vec![ReadCommand::Answer(Ok(Some(object(1))))]
    );
    let counted: Vec<_> = m
        .replies()
        .iter()
        .filter(|r| r.counted)
        .map(|r| r.node.clone())
        .collect();
    assert_eq!(counted, ids(&["n1", "n2"]));
}

#[test]
fn a_read_that_is_not_monotonic_counts_a_stand_in() {
    let plan = ReadPlan {
        replicas: ids(&["n1", "n4", "n2"]),
        stand_ins: vec![(id("n4"), id("n3"))],
        ..read_plan(2, true)
    };
    let mut m = ReadMachine::new(plan, 0);
    drain_read(&mut m);
    m.on_reply(&id("n1"), Ok(Some(object(1))), 1);
    m.on_reply(&id("n4"), Ok(Some(object(1))), 1);
    assert_eq!(
        drain_read(&mut m),
        vec![ReadCommand::Answer(Ok(Some(object(1))))],
        "R + W <= N: Dynamo's first N healthy nodes"
    );
}

#[test]
fn a_monotonic_read_with_too_few_homes_fails_naming_the_stand_in() {
    let plan = ReadPlan {
        replicas: ids(&["n1", "n4", "n3"]),
        stand_ins: vec![(id("n4"), id("n3"))],
        monotonic: true,
        ..read_plan(2, true)
    };
    let mut m = ReadMachine::new(plan, 0);
    drain_read(&mut m);
    m.on_reply(&id("n1"), Ok(Some(object(1))), 1);
    m.on_reply(&id("n4"), Ok(Some(object(1))), 1);
    assert_eq!(drain_read(&mut m), vec![send("n3")]);
    m.on_reply(&id("n3"), Err(ReplicaFailure::ConnectRefused), 2);
    let e = read_error(&mut m);
    assert!(
        e.failures.contains(&(id("n4"), ReplicaFailure::StandIn)),
        "{e:?}"
    );
}

#[test]
fn a_failed_target_is_replaced_by_a_spare_carrying_a_hint_for_its_home() {
    let plan = WritePlan {
        replicas: ids(&["n1", "n2", "n4"]),
        stand_ins: vec![(id("n4"), id("n3"))],
        spares: ids(&["n5", "n6"]),
        ..write_plan(3)
    };
    let mut m = WriteMachine::new(plan, 0);
    assert_eq!(
        drain_write(&mut m),
        vec![
            WriteCommand::AwaitLocal,
            wsend("n2", None),
            wsend("n4", Some("n3"))
        ]
    );
    m.on_reply(&id("n2"), Err(ReplicaFailure::ConnectRefused), 1);
    assert_eq!(drain_write(&mut m), vec![wsend("n5", Some("n2"))]);
    m.on_reply(&id("n4"), Err(ReplicaFailure::Timeout { ms: 10 }), 2);
    assert_eq!(
        drain_write(&mut m),
        vec![wsend("n6", Some("n3"))],
        "a failed stand-in is replaced for the same home"
    );
    m.on_reply(&id("n5"), Ok(()), 3);
    m.on_reply(&id("n1"), Ok(()), 3);
    assert_eq!(drain_write(&mut m), vec![]);
    m.on_reply(&id("n6"), Err(ReplicaFailure::ConnectRefused), 4);
    let e = write_error(&mut m);
    assert_eq!((e.needed, e.asked, e.acks), (3, 5, 2), "{e}");

    // A refusal of the object itself is not sent elsewhere.
    let plan = WritePlan {
        spares: ids(&["n5"]),
        ..write_plan(2)
    };
    let mut m = WriteMachine::new(plan, 0);
    drain_write(&mut m);
    let too_big = ReplicaFailure::Replica(ringkv_core::protocol::ReplicaError::TooManySiblings {
        count: 9,
        limit: 8,
    });
    m.on_reply(&id("n2"), Err(too_big), 1);
    assert_eq!(drain_write(&mut m), vec![]);
}

#[test]
fn a_target_still_silent_after_the_stand_in_delay_gets_a_spare_too() {
    let plan = WritePlan {
        spares: ids(&["n4", "n5"]),
        ..write_plan(3)
    };
    let mut m = WriteMachine::new(plan, 0);
    drain_write(&mut m);
    assert_eq!(
        m.poll_timeout(),
        Some(500),
        "the stand-in delay comes first"
    );
    m.on_reply(&id("n1"), Ok(()), 10);
    m.on_reply(&id("n2"), Ok(()), 20);
    m.on_timeout(500);
    assert_eq!(
        drain_write(&mut m),
        vec![wsend("n4", Some("n3"))],
        "n3 is silent: n4 stands in for it"
    );
    assert_eq!(m.poll_timeout(), Some(3000));
    m.on_reply(&id("n3"), Err(ReplicaFailure::Timeout { ms: 3000 }), 600);
    assert_eq!(drain_write(&mut m), vec![], "n3 is not replaced twice");
    m.on_reply(&id("n4"), Ok(()), 700);
    assert_eq!(drain_write(&mut m), vec![WriteCommand::Answer(Ok(()))]);

    // A silent target that answers after all still counts.
    let plan = WritePlan {
        spares: ids(&["n4"]),
        ..write_plan(3)
    };
    let mut m = WriteMachine::new(plan, 0);
    drain_write(&mut m);
    m.on_reply(&id("n1"), Ok(()), 10);
    m.on_timeout(500);
    drain_write(&mut m);
    m.on_reply(&id("n2"), Ok(()), 600);
    m.on_reply(&id("n3"), Ok(()), 610);
    assert_eq!(drain_write(&mut m), vec![WriteCommand::Answer(Ok(()))]);
}

#[test]
fn pw_counts_only_homes_and_fails_once_homes_cannot_make_it() {
    let plan = WritePlan {
        replicas: ids(&["n1", "n2", "n4"]),
        stand_ins: vec![(id("n4"), id("n3"))],
        pw: 2,
        ..write_plan(2)
    };
    let mut m = WriteMachine::new(plan.clone(), 0);
    drain_write(&mut m);
    m.on_reply(&id("n1"), Ok(()), 1);
    m.on_reply(&id("n4"), Ok(()), 2);
    assert_eq!(drain_write(&mut m), vec![], "W = 2 met, but only one home");
    m.on_reply(&id("n2"), Ok(()), 3);
    assert_eq!(drain_write(&mut m), vec![WriteCommand::Answer(Ok(()))]);

    let mut m = WriteMachine::new(plan, 0);
    drain_write(&mut m);
    m.on_reply(&id("n2"), Err(ReplicaFailure::ConnectRefused), 1);
    let e = write_error(&mut m);
    assert_eq!(e.needed, 2, "{e}");
}
