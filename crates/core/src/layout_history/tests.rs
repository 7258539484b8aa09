//! Layout history cases: joins, decommissions and removals through the
//! barriers, conflicts, the wire form, and the pairing rule's counting
//! argument.

use super::*;
use crate::layout::{compute_layout, LayoutParams, Member};
use bytes::Bytes;
use std::collections::BTreeMap;

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn member(s: &str) -> Member {
    Member {
        id: id(s),
        capacity: 1,
        zone: None,
    }
}

const PARAMS: LayoutParams = LayoutParams {
    partitions: 16,
    replication: 3,
};

fn history_of(names: &[&str]) -> LayoutHistory {
    let members: Vec<Member> = names.iter().map(|n| member(n)).collect();
    LayoutHistory::new(Arc::new(compute_layout(&members, PARAMS, None).unwrap()))
}

/// Gossiped progress, as a map.
#[derive(Default)]
struct Facts {
    acked: BTreeMap<NodeId, LayoutStamp>,
    synced: BTreeMap<NodeId, LayoutStamp>,
    read: BTreeMap<NodeId, LayoutStamp>,
}

impl Progress for Facts {
    fn acked(&self, id: &NodeId) -> Option<LayoutStamp> {
        self.acked.get(id).copied()
    }
    fn synced(&self, id: &NodeId) -> Option<LayoutStamp> {
        self.synced.get(id).copied()
    }
    fn read(&self, id: &NodeId) -> Option<LayoutStamp> {
        self.read.get(id).copied()
    }
}

impl Facts {
    fn all(history: &LayoutHistory, ids: &[&str]) -> Facts {
        let stamp = history.newest().stamp;
        let mut facts = Facts::default();
        for n in ids {
            facts.acked.insert(id(n), stamp);
            facts.synced.insert(id(n), stamp);
            facts.read.insert(id(n), stamp);
        }
        facts
    }
}

#[test]
fn a_join_adds_a_version_and_the_new_node_pulls_a_quarter_of_the_slots_from_their_owners() {
    let mut history = history_of(&["a", "b", "c"]);
    let layout = history
        .apply(&[LayoutChange::Join(member("d"))], PARAMS)
        .unwrap();
    assert_eq!(layout.version(), 2);
    assert!(history.in_transition());
    assert_eq!(history.oldest().version(), 1, "reads stay on version 1");
    assert_eq!(history.state_of(&id("d")), NodeState::Joining);
    assert_eq!(history.state_of(&id("a")), NodeState::Normal);

    let transfers = history.transfers(&id("d"), 3);
    assert_eq!(transfers.len(), 12, "16 x 3 slots / 4 nodes");
    assert_eq!(layout.moved_slots(history.oldest()), 12);
    for t in &transfers {
        assert_eq!(t.sources.len(), 1, "one partner per moved slot");
        assert!(layout.member(&t.sources[0]).is_some());
        let new: Vec<&NodeId> = layout.replicas(t.partition, 3).collect();
        assert!(
            !new.contains(&&t.sources[0]),
            "the partner is the departing replica"
        );
    }
    for staying in ["a", "b", "c"] {
        assert!(history.transfers(&id(staying), 3).is_empty());
    }
}

#[test]
fn data_moves_only_once_every_member_acknowledged_the_newest_version() {
    let mut history = history_of(&["a", "b", "c"]);
    let v1 = history.newest().stamp;
    history
        .apply(&[LayoutChange::Join(member("d"))], PARAMS)
        .unwrap();
    let v2 = history.newest().stamp;
    let mut facts = Facts::default();
    for n in ["a", "b", "c"] {
        facts.acked.insert(id(n), v2);
    }
    facts.acked.insert(id("d"), v1);
    assert!(!history.all_acked(&facts));
    facts.acked.insert(
        id("d"),
        LayoutStamp {
            version: 2,
            digest: v2.digest ^ 1,
        },
    );
    assert!(
        !history.all_acked(&facts),
        "an ack of a layout that lost a conflict counts for nothing"
    );
    facts.acked.insert(id("d"), v2);
    assert!(history.all_acked(&facts));
}

#[test]
fn reads_move_once_the_new_replicas_have_their_data_and_the_old_version_retires_once_no_node_reads_it(
) {
    let mut history = history_of(&["a", "b", "c", "d"]);
    let v1 = history.newest().stamp;
    history
        .apply(&[LayoutChange::Decommission(id("a"))], PARAMS)
        .unwrap();
    let v2 = history.newest().stamp;
    assert_eq!(history.state_of(&id("a")), NodeState::Leaving);
    let mut facts = Facts::default();
    for n in ["b", "c"] {
        facts.synced.insert(id(n), v2);
    }
    assert_eq!(history.readable(&facts).version(), 1, "d has not synced");
    facts.synced.insert(id("d"), v2);
    assert_eq!(
        history.readable(&facts).version(),
        2,
        "every v2 member holds its data"
    );

    // Writes keep going to version 1 until every node reads version 2.
    for n in ["a", "b", "c"] {
        facts.read.insert(id(n), v2);
    }
    facts.read.insert(id("d"), v1);
    assert!(history.retire(&facts).is_empty(), "d still reads version 1");
    assert_eq!(history.entries().len(), 2);
    facts.read.insert(id("d"), v2);
    let retired = history.retire(&facts);
    assert_eq!(retired.len(), 1);
    assert_eq!(retired[0].version, 1);
    assert_eq!(history.oldest().version(), 2);
    assert_eq!(history.state_of(&id("a")), NodeState::Removed);
    assert!(!history.in_transition());
}

#[test]
fn a_removed_node_stops_counting_at_once_and_its_partners_pull_from_every_survivor() {
    let mut history = history_of(&["a", "b", "c", "d"]);
    history
        .apply(&[LayoutChange::Remove(id("a"))], PARAMS)
        .unwrap();
    assert_eq!(history.state_of(&id("a")), NodeState::Removed);
    let facts = Facts::all(&history, &["b", "c", "d"]);
    assert!(history.all_acked(&facts), "the dead node is not waited for");
    let mut pulled = 0;
    for n in ["b", "c", "d"] {
        for t in history.transfers(&id(n), 3) {
            pulled += 1;
            assert_eq!(t.sources.len(), 2, "the two surviving old replicas");
            assert!(!t.sources.contains(&id("a")));
        }
    }
    assert_eq!(pulled, 12, "a's 12 slots");
    assert_eq!(history.retire(&facts).len(), 1);
    assert_eq!(
        history.apply(&[LayoutChange::Join(member("a"))], PARAMS),
        Err(ChangeError::WasRemoved(id("a")))
    );
}

#[test]
fn changes_that_would_break_the_cluster_are_refused() {
    let mut history = history_of(&["a", "b", "c"]);
    assert_eq!(history.apply(&[], PARAMS), Err(ChangeError::Empty));
    assert_eq!(
        history.apply(&[LayoutChange::Join(member("a"))], PARAMS),
        Err(ChangeError::AlreadyMember(id("a")))
    );
    assert_eq!(
        history.apply(&[LayoutChange::Decommission(id("z"))], PARAMS),
        Err(ChangeError::NotAMember(id("z")))
    );
    assert_eq!(
        history.apply(&[LayoutChange::Decommission(id("a"))], PARAMS),
        Err(ChangeError::TooFewMembers { members: 2, n: 3 })
    );
    assert_eq!(
        history.apply(
            &[
                LayoutChange::Join(member("d")),
                LayoutChange::Decommission(id("d"))
            ],
            PARAMS
        ),
        Err(ChangeError::Repeated(id("d")))
    );
    for n in ["d", "e", "f"] {
        history
            .apply(&[LayoutChange::Join(member(n))], PARAMS)
            .unwrap();
    }
    assert_eq!(
        history.apply(&[LayoutChange::Join(member("g"))], PARAMS),
        Err(ChangeError::TooManyActive { active: 4 })
    );
    assert_eq!(history.entries().len(), 4, "a refused change adds nothing");
}

/// Two operators apply different changes through different nodes at once.
#[test]
fn concurrent_changes_converge_on_one_layout_and_the_loser_can_reapply_on_top() {
    let base = history_of(&["a", "b", "c"]);
    let mut left = base.clone();
    let mut right = base.clone();
    left.apply(&[LayoutChange::Join(member("d"))], PARAMS)
        .unwrap();
    right
        .apply(&[LayoutChange::Join(member("e"))], PARAMS)
        .unwrap();
    assert_ne!(left.newest().stamp, right.newest().stamp);

    let (l_entries, r_entries) = (left.entries().to_vec(), right.entries().to_vec());
    left.merge(r_entries, 1, &[]);
    right.merge(l_entries, 1, &[]);
    assert_eq!(left, right, "both keep the same version 2");
    assert_eq!(left.entries().len(), 2);

    // The node whose change lost sees it missing and applies it again.
    let winner = left.newest().layout.clone();
    let lost = if winner.member(&id("d")).is_some() {
        LayoutChange::Join(member("e"))
    } else {
        LayoutChange::Join(member("d"))
    };
    assert!(!lost.is_reflected_in(&winner));
    let v3 = left.apply(std::slice::from_ref(&lost), PARAMS).unwrap();
    assert_eq!(v3.version(), 3);
    assert!(lost.is_reflected_in(&v3));
    right.merge(left.entries().to_vec(), 1, &[]);
    assert_eq!(left, right);
}

#[test]
fn merging_is_order_independent_and_keeps_retirements_and_removals() {
    let mut a = history_of(&["a", "b", "c", "d"]);
    a.apply(&[LayoutChange::Remove(id("d"))], PARAMS).unwrap();
    let mut b = a.clone();
    let facts = Facts::all(&a, &["a", "b", "c"]);
    b.retire(&facts);
    assert_eq!(b.entries().len(), 1);

    let mut x = a.clone();
    x.merge(b.entries().to_vec(), b.entries()[0].stamp.version, &[]);
    let mut y = b.clone();
    y.merge(
        a.entries().to_vec(),
        a.entries()[0].stamp.version,
        &[id("d")],
    );
    assert_eq!(x, y);
    assert_eq!(
        x.entries().len(),
        1,
        "a retirement anywhere holds everywhere"
    );
    assert!(x.is_removed(&id("d")));
    assert!(!x.merge(y.entries().to_vec(), 2, &[]), "idempotent");
}

#[test]
fn a_history_survives_the_wire_and_refuses_another_shape() {
    let mut history = history_of(&["a", "b", "c"]);
    history
        .apply(&[LayoutChange::Join(member("d"))], PARAMS)
        .unwrap();
    history.mark_removed([id("x")]);
    let wire = HistoryWire::of(&history, |_| true);
    let bytes = postcard::to_allocvec(&wire).unwrap();
    let back: HistoryWire = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back.restore(PARAMS).unwrap(), Some(history.clone()));
    let other = LayoutParams {
        partitions: 32,
        replication: 3,
    };
    assert!(matches!(
        back.restore(other),
        Err(HistoryDecodeError::Shape { .. })
    ));
    let mut corrupt = back.clone();
    corrupt.entries[0].layout = Bytes::from_static(b"nonsense");
    assert!(matches!(
        corrupt.decode(PARAMS),
        Err(HistoryDecodeError::Layout(_))
    ));
}

/// The counting argument of rule 4: after each new replica copies its
/// partner, every write that W old replicas held is held by at least W new
/// replicas, for every partition, over a run of joins, decommissions and
/// removals.
#[test]
fn pairing_keeps_every_write_on_w_of_the_new_replicas() {
    let names = ["a", "b", "c", "d", "e", "f", "g"];
    let mut history = history_of(&names[..4]);
    let steps = [
        LayoutChange::Join(member("e")),
        LayoutChange::Decommission(id("a")),
        LayoutChange::Join(member("f")),
        LayoutChange::Remove(id("b")),
        LayoutChange::Join(member("g")),
        LayoutChange::Decommission(id("c")),
    ];
    let w = 2;
    for step in steps {
        history.apply(std::slice::from_ref(&step), PARAMS).unwrap();
        let read = history.oldest().clone();
        let new = history.newest().layout.clone();
        for p in 0..PARAMS.partitions {
            let old: Vec<NodeId> = read.replicas(p, 3).cloned().collect();
            // Every choice of W old replicas that could have acknowledged a
            // write (removed nodes included: they held it before dying).
            for i in 0..3 {
                for j in (i + 1)..3 {
                    let holders = [&old[i], &old[j]];
                    let mut count = 0;
                    for n in new.replicas(p, 3) {
                        let has = if old.contains(n) {
                            holders.contains(&n)
                        } else {
                            let t = history.transfers(n, 3);
                            let t = t.iter().find(|t| t.partition == p).unwrap();
                            t.sources.iter().any(|s| holders.contains(&s))
                        };
                        count += usize::from(has);
                    }
                    let dead = holders.iter().filter(|h| history.is_removed(h)).count();
                    assert!(
                        count + dead >= w,
                        "partition {p}: a write on {holders:?} reached {count} new replicas"
                    );
                }
            }
        }
        let everyone: Vec<&str> = names.to_vec();
        let facts = Facts::all(&history, &everyone);
        history.retire(&facts);
        assert_eq!(history.entries().len(), 1);
    }
}

#[test]
fn a_rebuilt_node_refills_every_partition_it_holds_from_every_other_replica() {
    let history = history_of(&["a", "b", "c"]);
    // N = 3 of 3 nodes: every node holds every partition.
    let refill = history.refill_transfers(&id("c"), 3);
    assert_eq!(refill.len(), 16);
    for t in &refill {
        assert_eq!(
            t.sources,
            vec![id("a"), id("b")],
            "partition {}",
            t.partition
        );
    }
    // Width 2 of 4 nodes: only the partitions it holds, each from the
    // one other replica.
    let mut history = history_of(&["a", "b", "c", "d"]);
    let narrow = history.refill_transfers(&id("d"), 2);
    let layout = history.newest().layout.clone();
    let held: Vec<u32> = (0..16)
        .filter(|p| layout.replicas(*p, 2).any(|n| *n == id("d")))
        .collect();
    assert_eq!(narrow.iter().map(|t| t.partition).collect::<Vec<_>>(), held);
    for t in &narrow {
        assert_eq!(t.sources.len(), 1, "the one other replica of width 2");
        assert!(!t.sources.contains(&id("d")));
    }
    // During a change, holders of the older version are sources too, and a
    // removed node never is.
    history
        .apply(&[LayoutChange::Remove(id("a"))], PARAMS)
        .unwrap();
    for t in history.refill_transfers(&id("d"), 3) {
        assert!(!t.sources.contains(&id("a")), "removed: {t:?}");
        assert!(!t.sources.is_empty());
    }
    assert!(
        history_of(&["a", "b", "c"])
            .refill_transfers(&id("z"), 3)
            .is_empty(),
        "a stranger holds nothing"
    );
}
