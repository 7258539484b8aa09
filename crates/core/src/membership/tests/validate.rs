//! Every message from a peer is checked before it is merged, and a refused
//! one changes nothing.

use super::*;
use crate::layout::MAX_MEMBERS;

fn digests(n: usize) -> Vec<Digest> {
    (0..n)
        .map(|i| Digest {
            id: id(&format!("n{i:05}")),
            stamp: stamp(1, 1, 1),
        })
        .collect()
}

#[test]
fn the_limits_themselves_are_accepted() {
    let syn = GossipSyn {
        digests: digests(MAX_MEMBERS),
        forgotten: vec![],
    };
    assert_eq!(syn.validate(), Ok(()));
    let mut m = node("zz", 1);
    assert!(m.on_syn(&syn).is_ok());
}

#[test]
fn every_bound_is_refused_with_its_error_and_changes_nothing() {
    let too_many = GossipSyn {
        digests: digests(MAX_MEMBERS + 1),
        forgotten: vec![],
    };
    let reversed = GossipSyn {
        digests: digests(2).into_iter().rev().collect(),
        forgotten: vec![],
    };
    let mut twice = digests(1);
    twice.push(twice[0].clone());
    let actor = Forgotten {
        id: id("n1~3"),
        generation: 1,
        at_ms: 1,
    };
    let cases: Vec<(GossipSyn, GossipError)> = vec![
        (
            too_many,
            GossipError::TooMany {
                list: "digests",
                count: MAX_MEMBERS + 1,
                limit: MAX_MEMBERS,
            },
        ),
        (
            reversed,
            GossipError::Unsorted {
                list: "digests",
                id: id("n00000"),
            },
        ),
        (
            GossipSyn {
                digests: twice,
                forgotten: vec![],
            },
            GossipError::Unsorted {
                list: "digests",
                id: id("n00000"),
            },
        ),
        (
            GossipSyn {
                digests: vec![],
                forgotten: vec![actor],
            },
            GossipError::ActorId {
                list: "forgotten",
                id: id("n1~3"),
            },
        ),
    ];
    for (syn, want) in cases {
        let mut m = node("a", 1);
        let before = m.clone();
        assert_eq!(syn.validate(), Err(want.clone()));
        assert_eq!(m.on_syn(&syn), Err(want));
        assert_eq!(m, before);
    }
}

#[test]
fn acks_with_a_bad_record_or_list_are_refused_whole() {
    let bad_record = entry("b", 0, stamp(1, 1, 1));
    let good = entry("a", 1, stamp(1, 1, 1));
    let ack = GossipAck {
        entries: vec![good.clone(), bad_record],
        ..GossipAck::default()
    };
    let mut m = node("z", 1);
    let before = m.clone();
    let want = GossipError::Record(RecordError::Capacity {
        id: id("b"),
        capacity: 0,
    });
    assert_eq!(m.on_ack(ack), Err(want));
    assert_eq!(m, before, "not even the good entry was merged");

    let beats = vec![good.beat(), good.beat()];
    let ack2 = GossipAck2 {
        entries: vec![],
        beats,
    };
    assert!(matches!(
        m.on_ack2(ack2),
        Err(GossipError::Unsorted { list: "beats", .. })
    ));
    let requests = (0..=MAX_MEMBERS)
        .map(|i| Request {
            id: id(&format!("n{i:05}")),
            have: None,
        })
        .collect();
    let ack = GossipAck {
        requests,
        ..GossipAck::default()
    };
    assert!(matches!(
        m.on_ack(ack),
        Err(GossipError::TooMany {
            list: "requests",
            ..
        })
    ));
    assert_eq!(m, before);
}

#[test]
fn garbage_bytes_decode_to_an_error_or_a_message_that_validates_or_not_but_never_panic() {
    let mut m = node("a", 1);
    deliver(&mut m, vec![entry("b", 1, stamp(1, 1, 1))]);
    let ack = m.on_syn(&GossipSyn::default()).unwrap().0;
    let bytes = postcard::to_allocvec(&ack).unwrap();
    for cut in 0..bytes.len() {
        for flip in [0u8, 1, 0x80, 0xff] {
            let mut damaged = bytes[..cut].to_vec();
            if let Some(last) = damaged.last_mut() {
                *last ^= flip;
            }
            if let Ok(decoded) = postcard::from_bytes::<GossipAck>(&damaged) {
                let _ = node("z", 1).on_ack(decoded);
            }
        }
    }
}
