//! The SYN / ACK / ACK2 exchange: what each message carries, the events,
//! conflicts over this node's own id, and the table bound.

use super::*;
use crate::layout::MAX_MEMBERS;

fn digest(name: &str, s: Stamp) -> Digest {
    Digest {
        id: id(name),
        stamp: s,
    }
}

#[test]
fn the_ack_carries_what_is_newer_here_and_asks_for_what_is_newer_there() {
    let mut b = node("b", 10);
    deliver(
        &mut b,
        vec![
            entry("c", 1, stamp(5, 3, 1)), // newer record here
            entry("d", 1, stamp(5, 2, 9)), // same record, newer heartbeat here
            entry("e", 1, stamp(5, 2, 2)), // newer record there
            entry("f", 1, stamp(5, 2, 2)), // same everywhere
            entry("g", 1, stamp(5, 3, 1)), // newer record here, newer heartbeat there
            entry("h", 1, stamp(5, 1, 1)), // not listed by the initiator
        ],
    );
    let syn = GossipSyn {
        digests: vec![
            digest("a", stamp(1, 1, 1)), // unknown here
            digest("c", stamp(5, 2, 1)),
            digest("d", stamp(5, 2, 3)),
            digest("e", stamp(5, 3, 3)),
            digest("f", stamp(5, 2, 2)),
            digest("g", stamp(5, 2, 8)),
        ],
        forgotten: vec![],
    };
    let (ack, events) = b.on_syn(&syn).unwrap();
    assert_eq!(events, vec![], "digests carry no news to merge");
    let ids = |v: Vec<&NodeId>| {
        v.into_iter()
            .map(|i| i.as_str().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(ack.entries.iter().map(Entry::id).collect()),
        ["b", "c", "g", "h"]
    );
    assert_eq!(ack.beats, vec![b.entry(&id("d")).unwrap().beat()]);
    assert_eq!(
        ack.requests,
        vec![
            Request {
                id: id("a"),
                have: None
            },
            Request {
                id: id("e"),
                have: Some(stamp(5, 2, 2))
            },
            Request {
                id: id("g"),
                have: Some(stamp(5, 3, 1))
            },
        ]
    );
    assert_eq!(ack.validate(), Ok(()));
}

#[test]
fn one_exchange_leaves_both_sides_with_the_newer_of_everything() {
    let mut a = node("a", 1);
    let mut b = node("b", 2);
    deliver(
        &mut a,
        vec![entry("c", 2, stamp(5, 3, 1)), entry("d", 1, stamp(5, 1, 1))],
    );
    deliver(
        &mut b,
        vec![entry("c", 1, stamp(5, 2, 9)), entry("e", 1, stamp(7, 1, 1))],
    );
    let (a_events, b_events) = exchange(&mut a, &mut b);
    assert_eq!(a.entries(), b.entries());
    assert_eq!(a.entry(&id("c")), Some(&entry("c", 2, stamp(5, 3, 9))));
    assert_eq!(
        a_events,
        vec![
            Event::Changed(id("b")),
            Event::Heartbeat(id("b")),
            Event::Changed(id("e")),
            Event::Heartbeat(id("e")),
            Event::Heartbeat(id("c")),
        ]
    );
    assert_eq!(
        b_events,
        vec![
            Event::Changed(id("a")),
            Event::Heartbeat(id("a")),
            Event::Changed(id("c")),
            Event::Changed(id("d")),
            Event::Heartbeat(id("d")),
        ]
    );
    // A second exchange has nothing left to say.
    let (ack, events) = b.on_syn(&a.syn()).unwrap();
    assert_eq!((ack, events), (GossipAck::default(), vec![]));
}

#[test]
fn only_the_heartbeat_travels_when_only_the_heartbeat_is_newer() {
    let mut a = node("a", 1);
    let mut b = node("b", 2);
    exchange(&mut a, &mut b);
    a.tick(0);
    let (ack, _) = b.on_syn(&a.syn()).unwrap();
    assert_eq!(ack.entries, vec![]);
    assert_eq!(
        ack.requests,
        vec![Request {
            id: id("a"),
            have: Some(stamp(1, 1, 0))
        }]
    );
    let (ack2, _) = a.on_ack(ack).unwrap();
    assert_eq!(ack2.entries, vec![]);
    assert_eq!(ack2.beats, vec![a.own().beat()]);
    assert_eq!(b.on_ack2(ack2), Ok(vec![Event::Heartbeat(id("a"))]));
}

#[test]
fn news_about_this_node_never_replaces_its_own_entry() {
    let mut a = node("a", 100);
    let own = a.own().clone();
    // An older life of `a`, and an older version of this one.
    let events = deliver(&mut a, vec![entry("a", 9, stamp(99, 50, 50))]);
    assert_eq!((a.own(), events), (&own, vec![]));
    let events = deliver(&mut a, vec![entry("a", 9, stamp(100, 1, 0))]);
    assert_eq!(
        a.own().record,
        own.record,
        "equal stamp, other record: not taken"
    );
    assert_eq!(a.generation(), 101, "and this node moves past the impostor");
    assert_eq!(
        events,
        vec![Event::IdentityConflict {
            theirs: stamp(100, 1, 0),
            generation: 101
        }]
    );
}

#[test]
fn a_newer_claim_on_this_id_moves_its_generation_past_it_and_wins_everywhere() {
    let mut a = node("a", 100);
    let mut impostor = node("a", 500);
    impostor.update_self(|r| r.capacity = 9).unwrap();
    let mut b = node("b", 1);
    exchange(&mut impostor, &mut b);
    assert_eq!(b.entry(&id("a")).unwrap().record.capacity, 9);

    let (a_events, _) = exchange(&mut a, &mut b);
    assert_eq!(
        a_events,
        vec![
            Event::IdentityConflict {
                theirs: stamp(500, 2, 0),
                generation: 501
            },
            Event::Changed(id("b")),
            Event::Heartbeat(id("b")),
        ]
    );
    // The real `a`'s record now wins on `b` (after the next exchange, since
    // the conflict showed up in the ACK).
    exchange(&mut a, &mut b);
    assert_eq!(b.entry(&id("a")), Some(a.own()));
    assert_eq!(a.own().record.capacity, 1);
}

#[test]
fn a_claim_in_a_digest_or_a_bare_heartbeat_is_a_conflict_too() {
    let mut a = node("a", 100);
    let syn = GossipSyn {
        digests: vec![digest("a", stamp(100, 1, 7))],
        forgotten: vec![],
    };
    let (ack, events) = a.on_syn(&syn).unwrap();
    assert_eq!(
        events,
        vec![Event::IdentityConflict {
            theirs: stamp(100, 1, 7),
            generation: 101
        }]
    );
    assert_eq!(
        ack.entries,
        vec![a.own().clone()],
        "the peer gets the new life"
    );

    let beat = Beat {
        id: id("a"),
        generation: 300,
        heartbeat: 1,
    };
    let events = a
        .on_ack2(GossipAck2 {
            entries: vec![],
            beats: vec![beat],
        })
        .unwrap();
    assert_eq!(a.generation(), 301);
    assert!(matches!(
        events[..],
        [Event::IdentityConflict {
            generation: 301,
            ..
        }]
    ));
}

#[test]
fn the_table_never_grows_past_max_members() {
    let mut m = node("a", 1);
    let many: Vec<Entry> = (1..MAX_MEMBERS)
        .map(|i| entry(&format!("n{i:05}"), 1, stamp(1, 1, 1)))
        .collect();
    deliver(&mut m, many);
    assert_eq!(m.entries().len(), MAX_MEMBERS);
    let events = deliver(&mut m, vec![entry("z", 1, stamp(1, 1, 1))]);
    assert_eq!(events, vec![Event::TableFull(id("z"))]);
    assert_eq!(m.entries().len(), MAX_MEMBERS);
    // Nor does it ask for what it cannot keep; known nodes still update.
    let syn = GossipSyn {
        digests: vec![
            digest("n00001", stamp(1, 2, 1)),
            digest("z", stamp(1, 1, 1)),
        ],
        forgotten: vec![],
    };
    let (ack, _) = m.on_syn(&syn).unwrap();
    assert_eq!(
        ack.requests,
        vec![Request {
            id: id("n00001"),
            have: Some(stamp(1, 1, 1))
        }]
    );
}
