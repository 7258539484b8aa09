//! Tests of gossip membership, one file per concern; shared fixtures here.

mod exchange;
mod forget;
mod props;
mod rules;
mod targets;
mod validate;

use super::*;

pub(super) fn id(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

pub(super) fn record(name: &str) -> NodeRecord {
    NodeRecord::new(id(name), format!("{name}:7000"), 1)
}

pub(super) fn stamp(generation: u64, version: u64, heartbeat: u64) -> Stamp {
    Stamp {
        generation,
        version,
        heartbeat,
    }
}

pub(super) fn entry(name: &str, capacity: u32, s: Stamp) -> Entry {
    Entry {
        record: NodeRecord {
            capacity,
            ..record(name)
        },
        stamp: s,
    }
}

/// A node that knows only itself, at generation `generation`.
pub(super) fn node(name: &str, generation: u64) -> Membership {
    Membership::new(record(name), generation).unwrap()
}

/// Hands `entries` to `m` as one ACK2 (sorted first), returning the events.
pub(super) fn deliver(m: &mut Membership, mut entries: Vec<Entry>) -> Vec<Event> {
    entries.sort_by(|a, b| a.id().cmp(b.id()));
    entries.dedup_by(|a, b| a.id() == b.id());
    m.on_ack2(GossipAck2 {
        entries,
        beats: vec![],
    })
    .unwrap()
}

/// One whole SYN / ACK / ACK2 exchange started by `a`; the events of each
/// side. Every message is checked to pass validation.
pub(super) fn exchange(a: &mut Membership, b: &mut Membership) -> (Vec<Event>, Vec<Event>) {
    let syn = a.syn();
    assert_eq!(syn.validate(), Ok(()));
    let (ack, mut b_events) = b.on_syn(&syn).unwrap();
    assert_eq!(ack.validate(), Ok(()));
    let (ack2, a_events) = a.on_ack(ack).unwrap();
    assert_eq!(ack2.validate(), Ok(()));
    b_events.extend(b.on_ack2(ack2).unwrap());
    (a_events, b_events)
}
