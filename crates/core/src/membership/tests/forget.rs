//! Forgetting: marks drop entries everywhere, stale gossip cannot bring them
//! back, a new life can, and marks are bounded in number and age.

use super::*;

fn mark(name: &str, generation: u64, at_ms: u64) -> Forgotten {
    Forgotten {
        id: id(name),
        generation,
        at_ms,
    }
}

/// Three nodes that all know `a`, `b`, `c` and `x` (at generation 5).
fn three() -> [Membership; 3] {
    let mut nodes = [node("a", 1), node("b", 2), node("c", 3)];
    for n in &mut nodes {
        deliver(n, vec![entry("x", 1, stamp(5, 1, 1))]);
    }
    let [a, b, c] = &mut nodes;
    exchange(a, b);
    exchange(b, c);
    exchange(a, c);
    nodes
}

#[test]
fn retain_drops_the_others_but_never_this_node() {
    let [mut a, _, _] = three();
    let events = a.retain(1000, |i| i.as_str() == "b");
    assert_eq!(
        events,
        vec![Event::Forgotten(id("c")), Event::Forgotten(id("x"))]
    );
    let left: Vec<&str> = a.entries().keys().map(NodeId::as_str).collect();
    assert_eq!(left, ["a", "b"]);
    let marks: Vec<Forgotten> = a.forgotten().cloned().collect();
    assert_eq!(marks, vec![mark("c", 3, 1000), mark("x", 5, 1000)]);
}

#[test]
fn a_forgotten_node_does_not_come_back_from_a_stale_peer_and_the_mark_spreads() {
    let [mut a, mut b, mut c] = three();
    a.retain(1000, |i| i.as_str() != "x");
    // `b` still holds `x` and initiates: its SYN lists it, `a` does not ask
    // for it, and its ACK carries the mark, so `b` forgets `x` too.
    let (b_events, _) = exchange(&mut b, &mut a);
    assert_eq!(b_events, vec![Event::Forgotten(id("x"))]);
    assert!(a.entry(&id("x")).is_none() && b.entry(&id("x")).is_none());
    // `c` holds `x` and is the receiver: the SYN's marks reach it first.
    let (_, c_events) = exchange(&mut a, &mut c);
    assert_eq!(c_events, vec![Event::Forgotten(id("x"))]);
    // And a peer offering the old entry outright is refused.
    assert_eq!(deliver(&mut a, vec![entry("x", 9, stamp(5, 7, 7))]), vec![]);
    assert!(a.entry(&id("x")).is_none());
}

#[test]
fn a_new_life_of_a_forgotten_node_comes_back() {
    let [mut a, _, _] = three();
    a.retain(1000, |i| i.as_str() != "x");
    let events = deliver(&mut a, vec![entry("x", 1, stamp(6, 1, 0))]);
    assert_eq!(
        events,
        vec![Event::Changed(id("x")), Event::Heartbeat(id("x"))]
    );
}

#[test]
fn marks_expire_after_their_ttl_and_are_not_taken_once_expired() {
    let [mut a, mut b, _] = three();
    a.retain(1000, |i| i.as_str() != "x");
    a.tick(1000 + FORGOTTEN_TTL_MS - 1);
    assert_eq!(a.forgotten().count(), 1);
    a.tick(1000 + FORGOTTEN_TTL_MS);
    assert_eq!(a.forgotten().count(), 0);
    // `b` never heard of the mark before it expired on its clock either.
    b.tick(1000 + FORGOTTEN_TTL_MS);
    let syn = GossipSyn {
        digests: vec![],
        forgotten: vec![mark("x", 5, 1000)],
    };
    b.on_syn(&syn).unwrap();
    assert_eq!(b.forgotten().count(), 0);
    assert!(b.entry(&id("x")).is_some());
}

#[test]
fn marks_merge_by_the_newer_and_only_the_newer_goes_back() {
    let mut a = node("a", 1);
    a.retain(0, |_| true);
    let syn = GossipSyn {
        digests: vec![],
        forgotten: vec![mark("x", 5, 10), mark("y", 2, 10)],
    };
    a.on_syn(&syn).unwrap();
    let newer = GossipSyn {
        digests: vec![],
        forgotten: vec![mark("x", 4, 99), mark("y", 2, 10), mark("z", 1, 1)],
    };
    let (ack, _) = a.on_syn(&newer).unwrap();
    assert_eq!(ack.forgotten, vec![mark("x", 5, 10)]);
    let held: Vec<Forgotten> = a.forgotten().cloned().collect();
    assert_eq!(
        held,
        vec![mark("x", 5, 10), mark("y", 2, 10), mark("z", 1, 1)]
    );
}

#[test]
fn a_mark_naming_this_node_leaves_its_entry_and_says_so() {
    let mut a = node("a", 7);
    let syn = GossipSyn {
        digests: vec![],
        forgotten: vec![mark("a", 7, 1)],
    };
    let (_, events) = a.on_syn(&syn).unwrap();
    assert_eq!(events, vec![Event::SelfForgotten { generation: 7 }]);
    assert_eq!(a.own().stamp.generation, 7);
    // A mark of an earlier life is no news for this one.
    let mut b = node("b", 7);
    let syn = GossipSyn {
        digests: vec![],
        forgotten: vec![mark("b", 6, 1)],
    };
    assert_eq!(b.on_syn(&syn).unwrap().1, vec![]);
}

#[test]
fn marks_are_bounded_peers_cannot_push_past_it_and_retain_replaces_the_oldest() {
    let mut a = node("a", 1);
    let marks: Vec<Forgotten> = (0..MAX_FORGOTTEN)
        .map(|i| mark(&format!("m{i:05}"), 1, 10 + i as u64))
        .collect();
    a.on_syn(&GossipSyn {
        digests: vec![],
        forgotten: marks,
    })
    .unwrap();
    assert_eq!(a.forgotten().count(), MAX_FORGOTTEN);
    let one_more = GossipSyn {
        digests: vec![],
        forgotten: vec![mark("z", 1, 1)],
    };
    a.on_syn(&one_more).unwrap();
    assert_eq!(a.forgotten().count(), MAX_FORGOTTEN);
    assert!(a.forgotten().all(|f| f.id != id("z")));

    deliver(&mut a, vec![entry("x", 1, stamp(5, 1, 1))]);
    a.retain(5000, |i| i.as_str() != "x");
    assert_eq!(a.forgotten().count(), MAX_FORGOTTEN);
    assert!(a.forgotten().any(|f| *f == mark("x", 5, 5000)));
    assert!(
        a.forgotten().all(|f| f.id != id("m00000")),
        "the oldest went"
    );
}
