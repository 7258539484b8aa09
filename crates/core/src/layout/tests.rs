//! Table tests of the layout API: errors, small exact layouts, preference
//! lists and the wire form. The statistical properties are in
//! `tests/layout_props.rs`; this file never samples at random.

use super::*;

fn m(id: &str, capacity: u32, zone: Option<&str>) -> Member {
    Member {
        id: NodeId::new(id).unwrap(),
        capacity,
        zone: zone.map(str::to_string),
    }
}

fn equal(count: usize) -> Vec<Member> {
    (0..count)
        .map(|i| m(&format!("n{i:02}"), 1, None))
        .collect()
}

fn params(partitions: u32, replication: usize) -> LayoutParams {
    LayoutParams {
        partitions,
        replication,
    }
}

#[test]
fn bad_parameters_are_refused() {
    let three = equal(3);
    let cases: [(&str, LayoutParams, LayoutError); 6] = [
        ("q = 0", params(0, 1), LayoutError::BadPartitionCount(0)),
        (
            "q not a power of two",
            params(12, 1),
            LayoutError::BadPartitionCount(12),
        ),
        (
            "q too large",
            params(1 << 17, 1),
            LayoutError::BadPartitionCount(1 << 17),
        ),
        ("n = 0", params(8, 0), LayoutError::ZeroReplication),
        (
            "n > members",
            params(8, 4),
            LayoutError::ReplicationExceedsMembers { n: 4, members: 3 },
        ),
        (
            "n too large",
            params(8, MAX_REPLICATION + 1),
            LayoutError::ReplicationTooLarge(MAX_REPLICATION + 1),
        ),
    ];
    for (name, p, want) in cases {
        assert_eq!(compute_layout(&three, p, None), Err(want), "{name}");
    }
    assert_eq!(
        compute_layout(&[], params(8, 1), None),
        Err(LayoutError::Members(MemberError::Empty))
    );
    let first = compute_layout(&three, params(8, 2), None).unwrap();
    assert_eq!(
        compute_layout(&three, params(16, 2), Some(&first)),
        Err(LayoutError::PartitionCountChanged {
            previous: 8,
            requested: 16
        })
    );
}

#[test]
fn the_member_limit_is_enforced_and_reachable() {
    let many = |count: usize| -> Vec<Member> {
        (0..count).map(|i| m(&format!("n{i}"), 1, None)).collect()
    };
    assert_eq!(
        compute_layout(&many(MAX_MEMBERS + 1), params(1, 1), None),
        Err(LayoutError::Members(MemberError::TooMany {
            count: MAX_MEMBERS + 1
        }))
    );
    let full = compute_layout(&many(MAX_MEMBERS), params(4096, 1), None).unwrap();
    assert!(full.slot_counts().iter().all(|&c| c == 1));
    assert_eq!(Layout::decode(&full.encode()), Ok(full));
}

#[test]
fn versions_count_up() {
    let members = equal(4);
    let v1 = compute_layout(&members, params(16, 2), None).unwrap();
    let v2 = compute_layout(&members, params(16, 2), Some(&v1)).unwrap();
    assert_eq!((v1.version(), v2.version()), (1, 2));
    assert_eq!(v1.replicas, v2.replicas, "same members, same assignment");
}

#[test]
fn exact_shares_when_they_divide() {
    // (capacities, q, n, slots)
    let cases: [(&[u32], u32, usize, &[u32]); 5] = [
        (&[1], 1, 1, &[1]),
        (&[1, 1], 1, 2, &[1, 1]),
        (&[1, 1, 1, 1], 256, 3, &[192; 4]),
        (&[1, 3], 8, 1, &[2, 6]),
        (&[1, 1, 2], 16, 2, &[8, 8, 16]),
    ];
    for (caps, q, n, want) in cases {
        let members: Vec<Member> = caps
            .iter()
            .enumerate()
            .map(|(i, &c)| m(&format!("n{i}"), c, None))
            .collect();
        let layout = compute_layout(&members, params(q, n), None).unwrap();
        assert_eq!(layout.slot_counts(), want, "{caps:?} q={q} n={n}");
        assert!(layout.balance().on_target());
    }
}

#[test]
fn capped_nodes_are_reported() {
    let members = [m("big", 10, None), m("s1", 1, None), m("s2", 1, None)];
    let layout = compute_layout(&members, params(8, 2), None).unwrap();
    let balance = layout.balance();
    assert_eq!(layout.slot_counts(), [8, 4, 4]);
    assert_eq!(balance.nodes[0].notes, [BalanceNote::NodeCapped]);
    assert!(balance.nodes[1].notes.is_empty());
    assert!((balance.nodes[0].ideal - 16.0 * 10.0 / 12.0).abs() < 1e-9);
}

#[test]
fn preference_lists_name_every_member_once_replicas_first() {
    let members = equal(9);
    let layout = compute_layout(&members, params(32, 3), None).unwrap();
    for p in 0..32 {
        let list: Vec<&NodeId> = layout.preference_list(p).collect();
        assert_eq!(list.len(), 9);
        let mut sorted = list.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 9, "partition {p} repeats a node");
        let replicas: Vec<&NodeId> = layout.replicas(p, 3).collect();
        assert_eq!(replicas, list[..3]);
        assert_eq!(layout.replicas(p, 5).count(), 5);
        assert_eq!(layout.replicas(p, 50).count(), 9);
        // Past the replicas, plain rendezvous order (precomputed or not).
        let tail: Vec<u64> = list[3..]
            .iter()
            .map(|id| rendezvous::score(p, rendezvous::seed(id.as_str())))
            .collect();
        assert!(tail.windows(2).all(|w| w[0] >= w[1]), "partition {p}");
    }
}

#[test]
fn partition_of_uses_the_layouts_q() {
    let layout = compute_layout(&equal(2), params(4, 1), None).unwrap();
    assert_eq!(layout.partition_of(u64::MAX), 3);
    assert_eq!(layout.partition_of(0x4000_0000_0000_0000), 1);
}

#[test]
fn zones_hold_one_replica_each_when_there_are_enough() {
    let members = [
        m("a1", 1, Some("a")),
        m("a2", 1, Some("a")),
        m("b1", 1, Some("b")),
        m("c1", 4, Some("c")),
    ];
    let layout = compute_layout(&members, params(64, 3), None).unwrap();
    for p in 0..64 {
        let mut zones: Vec<&str> = layout
            .replicas(p, 3)
            .map(|id| layout.member(id).unwrap().zone_name())
            .collect();
        zones.sort();
        assert_eq!(zones, ["a", "b", "c"], "partition {p}");
    }
    assert_eq!(layout.slot_counts(), [32, 32, 64, 64]);
    let notes: Vec<Vec<BalanceNote>> = layout
        .balance()
        .nodes
        .into_iter()
        .map(|n| n.notes)
        .collect();
    assert_eq!(notes[3], [BalanceNote::NodeCapped]);
}

#[test]
fn encoding_round_trips_and_digests_agree() {
    let members = [m("a", 1, Some("x")), m("b", 2, Some("y")), m("c", 1, None)];
    let layout = compute_layout(&members, params(64, 2), None).unwrap();
    let bytes = layout.encode();
    assert_eq!(bytes[0], LAYOUT_FORMAT_V1);
    let back = Layout::decode(&bytes).unwrap();
    assert_eq!(back, layout);
    assert_eq!(back.digest(), layout.digest());
    let next = compute_layout(&members, params(64, 2), Some(&layout)).unwrap();
    assert_ne!(
        next.digest(),
        layout.digest(),
        "the version is part of the digest"
    );
}

#[test]
fn decode_refuses_invalid_tables() {
    let members = equal(3);
    let layout = compute_layout(&members, params(4, 2), None).unwrap();
    let tamper = |f: &dyn Fn(&mut Layout)| {
        let mut l = layout.clone();
        f(&mut l);
        Layout::decode(&l.encode())
    };
    assert_eq!(
        tamper(&|l| l.replicas[1] = l.replicas[0]),
        Err(LayoutDecodeError::DuplicateNode { partition: 0 })
    );
    assert_eq!(
        tamper(&|l| l.replicas.swap(0, 1)),
        Err(LayoutDecodeError::NotCanonical { partition: 0 })
    );
    assert_eq!(
        tamper(&|l| l.replicas[2] = 3),
        Err(LayoutDecodeError::IndexOutOfRange {
            partition: 1,
            index: 3,
            members: 3
        })
    );
    assert_eq!(
        tamper(&|l| l.version = 0),
        Err(LayoutDecodeError::ZeroVersion)
    );
    assert_eq!(
        tamper(&|l| l.members.swap(0, 1)),
        Err(LayoutDecodeError::MembersNotSorted)
    );
    assert!(matches!(
        tamper(&|l| l.partitions = 3),
        Err(LayoutDecodeError::Params(LayoutError::BadPartitionCount(3)))
    ));
    assert!(matches!(
        tamper(&|l| l.partitions = 8),
        Err(LayoutDecodeError::AssignmentLength { .. })
    ));
    let mut bytes = layout.encode();
    bytes[0] = 9;
    assert!(matches!(
        Layout::decode(&bytes),
        Err(LayoutDecodeError::Codec(_))
    ));
    assert!(matches!(
        Layout::decode(&[]),
        Err(LayoutDecodeError::Codec(_))
    ));
}

#[test]
fn debug_output_is_short() {
    let layout = compute_layout(&equal(3), params(1024, 3), None).unwrap();
    let text = format!("{layout:?}");
    assert!(text.len() < 120, "{text}");
}
