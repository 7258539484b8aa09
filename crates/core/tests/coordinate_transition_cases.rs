//! Writes while a layout change is in flight: W acknowledgements among the
//! homes of every active layout version (the rule of `layout_history`).

#[allow(dead_code)]
mod common;

use common::*;
use ringkv_core::coordinate::{WriteCommand, WriteMachine, WritePlan};
use ringkv_core::failure::ReplicaFailure;

fn transition_plan(w: usize) -> WritePlan {
    // Version 1 homes n1 n2 n3; version 2 moved n3's slot to n4.
    WritePlan {
        newer_homes: vec![ids(&["n1", "n2", "n4"])],
        ..write_plan(w)
    }
}

#[test]
fn a_write_goes_to_the_homes_of_every_active_version() {
    let mut m = WriteMachine::new(transition_plan(2), 0);
    assert_eq!(
        drain_write(&mut m),
        vec![
            WriteCommand::AwaitLocal,
            wsend("n2", None),
            wsend("n3", None),
            wsend("n4", None)
        ]
    );
}

#[test]
fn w_of_the_old_homes_is_not_enough_without_w_of_the_new_ones() {
    let mut m = WriteMachine::new(transition_plan(2), 0);
    drain_write(&mut m);
    m.on_reply(&id("n1"), Ok(()), 1);
    m.on_reply(&id("n3"), Ok(()), 1);
    assert_eq!(
        drain_write(&mut m),
        vec![],
        "n1 and n3 are W of version 1 but one of version 2"
    );
    m.on_reply(&id("n4"), Ok(()), 2);
    assert_eq!(drain_write(&mut m), vec![WriteCommand::Answer(Ok(()))]);
}

#[test]
fn a_new_home_alone_does_not_make_the_old_quorum() {
    let mut m = WriteMachine::new(transition_plan(2), 0);
    drain_write(&mut m);
    m.on_reply(&id("n1"), Ok(()), 1);
    m.on_reply(&id("n4"), Ok(()), 1);
    assert_eq!(drain_write(&mut m), vec![], "n4 is not a version-1 home");
    m.on_reply(&id("n2"), Ok(()), 2);
    assert_eq!(drain_write(&mut m), vec![WriteCommand::Answer(Ok(()))]);
}

#[test]
fn losing_the_new_versions_quorum_fails_the_write_at_once() {
    let mut m = WriteMachine::new(transition_plan(3), 0);
    drain_write(&mut m);
    m.on_reply(&id("n4"), Err(ReplicaFailure::ConnectRefused), 1);
    let e = write_error(&mut m);
    assert_eq!(e.needed, 3, "{e}");
}

#[test]
fn a_stand_in_for_a_new_home_counts_for_its_version() {
    let plan = WritePlan {
        spares: ids(&["n5"]),
        ..transition_plan(2)
    };
    let mut m = WriteMachine::new(plan, 0);
    drain_write(&mut m);
    m.on_reply(&id("n4"), Err(ReplicaFailure::ConnectRefused), 1);
    assert_eq!(drain_write(&mut m), vec![wsend("n5", Some("n4"))]);
    m.on_reply(&id("n1"), Ok(()), 2);
    m.on_reply(&id("n3"), Ok(()), 2);
    m.on_reply(&id("n5"), Ok(()), 3);
    assert_eq!(drain_write(&mut m), vec![WriteCommand::Answer(Ok(()))]);
}
