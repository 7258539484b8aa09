//! Property tests: merging converges whatever the order, and one exchange
//! never loses a newer record.

use super::*;
use proptest::prelude::*;

const POOL: [&str; 4] = ["p", "q", "r", "s"];

/// Any entry of the pool, with records that may differ under equal stamps
/// (two processes claiming one id).
fn arb_entry() -> impl Strategy<Value = Entry> {
    (0..POOL.len(), 1u32..4, 1u64..4, 0u64..4, 0u64..4)
        .prop_map(|(i, capacity, g, v, h)| entry(POOL[i], capacity, stamp(g, v, h)))
}

/// An entry as its owner issues it: one record per `(generation,
/// version)`. Digests carry stamps, not records, so an exchange can only
/// tell records apart by their stamps.
fn arb_owned_entry() -> impl Strategy<Value = Entry> {
    (0..POOL.len(), 1u64..4, 0u64..4, 0u64..4).prop_map(|(i, g, v, h)| {
        let capacity = 1 + (g * 4 + v) as u32 % crate::layout::MAX_CAPACITY;
        entry(POOL[i], capacity, stamp(g, v, h))
    })
}

fn arb_beat() -> impl Strategy<Value = Beat> {
    (0..POOL.len(), 1u64..4, 0u64..6).prop_map(|(i, generation, heartbeat)| Beat {
        id: id(POOL[i]),
        generation,
        heartbeat,
    })
}

/// A piece of news, delivered as its own message.
#[derive(Debug, Clone)]
enum Piece {
    Entry(Entry),
    Beat(Beat),
}

fn arb_piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        arb_owned_entry().prop_map(Piece::Entry),
        arb_beat().prop_map(Piece::Beat)
    ]
}

fn apply(m: &mut Membership, piece: &Piece) {
    let ack2 = match piece {
        Piece::Entry(e) => GossipAck2 {
            entries: vec![e.clone()],
            beats: vec![],
        },
        Piece::Beat(b) => GossipAck2 {
            entries: vec![],
            beats: vec![b.clone()],
        },
    };
    m.on_ack2(ack2).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Commutative, associative, idempotent: the same pieces delivered in
    /// any order, any number of times, give the same table. (Bare heartbeats
    /// of a generation not yet held are ignored, so they are delivered
    /// after the entries here, as the exchange sends them.)
    #[test]
    fn merging_in_any_order_converges(
        entries in prop::collection::vec(arb_entry(), 0..12),
        beats in prop::collection::vec(arb_beat(), 0..8),
        order in any::<prop::sample::Index>(),
        repeat in any::<prop::sample::Index>(),
    ) {
        let pieces: Vec<Piece> = entries.iter().cloned().map(Piece::Entry).collect();
        let mut shuffled = pieces.clone();
        if !shuffled.is_empty() {
            let k = order.index(shuffled.len());
            shuffled.rotate_left(k);
            shuffled.reverse();
            let again = shuffled[repeat.index(shuffled.len())].clone();
            shuffled.push(again);
        }
        let mut one = node("obs", 1);
        let mut other = node("obs", 1);
        for p in &pieces { apply(&mut one, p); }
        for p in &shuffled { apply(&mut other, p); }
        for b in &beats { apply(&mut one, &Piece::Beat(b.clone())); }
        for b in beats.iter().rev() { apply(&mut other, &Piece::Beat(b.clone())); }
        prop_assert_eq!(one.entries(), other.entries());
        // Each id holds the greatest record delivered for it.
        for e in &entries {
            let held = one.entry(e.id()).unwrap();
            prop_assert!(held.stamp.record_order() >= e.stamp.record_order());
            prop_assert!(held.stamp.heartbeat_order() >= e.stamp.heartbeat_order());
        }
    }

    /// After one exchange both sides hold, for every id, the newer record and
    /// heartbeat of the two, and the same marks, whoever initiated.
    #[test]
    fn one_exchange_never_loses_a_newer_record(
        a_news in prop::collection::vec(arb_piece(), 0..12),
        b_news in prop::collection::vec(arb_piece(), 0..12),
        forget_in_a in prop::option::of(0..POOL.len()),
        b_initiates in any::<bool>(),
    ) {
        let mut a = node("a", 1);
        let mut b = node("b", 1);
        for p in &a_news { apply(&mut a, p); }
        for p in &b_news { apply(&mut b, p); }
        if let Some(i) = forget_in_a {
            a.retain(0, |x| x.as_str() != POOL[i]);
        }
        let (a0, b0) = (a.clone(), b.clone());
        if b_initiates { exchange(&mut b, &mut a); } else { exchange(&mut a, &mut b); }
        prop_assert_eq!(a.entries(), b.entries());
        prop_assert_eq!(a.forgotten().collect::<Vec<_>>(), b.forgotten().collect::<Vec<_>>());
        for before in [&a0, &b0] {
            for (id, old) in before.entries() {
                if a.is_forgotten(old) { continue; }
                let now = a.entry(id).expect("no entry lost");
                prop_assert!(now.stamp.record_order() >= old.stamp.record_order());
                prop_assert!(now.stamp.heartbeat_order() >= old.stamp.heartbeat_order());
            }
        }
    }
}
