//! The merge rules of one entry, and how a node changes its own.

use super::*;

#[test]
fn a_higher_generation_replaces_record_and_heartbeat_even_with_lower_counters() {
    let mut held = entry("a", 1, stamp(5, 9, 900));
    let merged = held.merge(entry("a", 2, stamp(6, 1, 0)));
    assert_eq!(held, entry("a", 2, stamp(6, 1, 0)));
    assert!(merged.changed && merged.heartbeat);
}

#[test]
fn in_one_generation_record_and_heartbeat_are_merged_independently() {
    // Their record is newer, our heartbeat is: keep the best of each.
    let mut held = entry("a", 1, stamp(5, 2, 30));
    let merged = held.merge(entry("a", 2, stamp(5, 3, 10)));
    assert_eq!(held, entry("a", 2, stamp(5, 3, 30)));
    assert!(merged.changed && !merged.heartbeat);
    // Only their heartbeat is newer.
    let merged = held.merge(entry("a", 1, stamp(5, 1, 40)));
    assert_eq!(held, entry("a", 2, stamp(5, 3, 40)));
    assert!(!merged.changed && merged.heartbeat);
}

#[test]
fn an_older_generation_changes_nothing() {
    let mut held = entry("a", 1, stamp(5, 1, 1));
    let merged = held.merge(entry("a", 2, stamp(4, 99, 99)));
    assert_eq!(held, entry("a", 1, stamp(5, 1, 1)));
    assert_eq!(merged, Default::default());
}

#[test]
fn equal_stamps_with_different_records_pick_the_same_winner_in_either_order() {
    let (x, y) = (entry("a", 1, stamp(5, 2, 3)), entry("a", 7, stamp(5, 2, 3)));
    let mut one = x.clone();
    one.merge(y.clone());
    let mut other = y;
    other.merge(x);
    assert_eq!(one, other);
    assert_eq!(one.record.capacity, 7);
}

#[test]
fn a_bare_heartbeat_counts_only_in_the_generation_held_and_only_forwards() {
    let mut held = entry("a", 1, stamp(5, 2, 10));
    let beat = |generation, heartbeat| Beat {
        id: id("a"),
        generation,
        heartbeat,
    };
    assert!(
        !held.merge_beat(&beat(6, 50)),
        "a new generation needs its record"
    );
    assert!(!held.merge_beat(&beat(5, 9)));
    assert!(!held.merge_beat(&beat(5, 10)));
    assert!(held.merge_beat(&beat(5, 11)));
    assert_eq!(held.stamp, stamp(5, 2, 11));
}

#[test]
fn update_self_bumps_the_version_only_when_the_record_changes() {
    let mut m = node("a", 100);
    assert_eq!(m.own().stamp, stamp(100, 1, 0));
    assert_eq!(m.update_self(|r| r.capacity = 1), Ok(false));
    assert_eq!(m.own().stamp.version, 1);
    assert_eq!(m.update_self(|r| r.acked = Some(layout_stamp(3))), Ok(true));
    assert_eq!(m.own().stamp, stamp(100, 2, 0));
    assert_eq!(m.own().record.acked, Some(layout_stamp(3)));
}

#[test]
fn update_self_refuses_an_invalid_record_and_keeps_the_id() {
    let mut m = node("a", 100);
    let before = m.clone();
    assert_eq!(
        m.update_self(|r| r.capacity = 0),
        Err(RecordError::Capacity {
            id: id("a"),
            capacity: 0
        })
    );
    assert_eq!(m, before, "a refused change is undone");
    assert_eq!(m.update_self(|r| r.id = id("b")), Ok(false));
    assert_eq!(
        m.update_self(|r| (r.id, r.synced) = (id("b"), Some(layout_stamp(1)))),
        Ok(true)
    );
    assert_eq!(m.own().record.id, id("a"));
    assert_eq!(m.entries().len(), 1);
}

#[test]
fn new_refuses_an_invalid_own_record() {
    let bad = NodeRecord {
        rpc: "nowhere".into(),
        ..record("a")
    };
    assert!(matches!(
        Membership::new(bad, 1),
        Err(RecordError::BadAddress { .. })
    ));
}

#[test]
fn tick_bumps_only_the_heartbeat() {
    let mut m = node("a", 100);
    m.tick(1);
    m.tick(2);
    assert_eq!(m.own().stamp, stamp(100, 1, 2));
}

#[test]
fn restore_keeps_what_was_known_and_starts_a_newer_generation() {
    let mut before = node("a", 100);
    deliver(&mut before, vec![entry("b", 1, stamp(50, 3, 7))]);
    before.tick(0);
    let snapshot = before.snapshot();
    let bytes = postcard::to_allocvec(&snapshot).unwrap();
    let snapshot: MembershipSnapshot = postcard::from_bytes(&bytes).unwrap();

    let after = Membership::restore(record("a"), 200, snapshot.clone()).unwrap();
    assert_eq!(after.own().stamp, stamp(200, 1, 0));
    assert_eq!(after.entry(&id("b")), before.entry(&id("b")));

    // A clock gone backwards still gives a newer generation.
    let back = Membership::restore(record("a"), 40, snapshot).unwrap();
    assert_eq!(back.generation(), 101);
}

#[test]
fn restore_refuses_a_damaged_snapshot() {
    let twice = MembershipSnapshot {
        entries: vec![entry("b", 1, stamp(1, 1, 1)), entry("b", 2, stamp(1, 2, 1))],
        forgotten: vec![],
    };
    assert_eq!(
        Membership::restore(record("a"), 5, twice),
        Err(GossipError::Unsorted {
            list: "entries",
            id: id("b")
        })
    );
}

fn layout_stamp(version: u64) -> crate::layout_history::LayoutStamp {
    crate::layout_history::LayoutStamp { version, digest: 7 }
}
