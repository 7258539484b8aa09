//! Gossip: the three messages of an exchange, decoded from a peer and
//! merged the way the node's `gossip.rs` does, into a membership table and
//! a layout history in transition.
//!
//! Input: a selector (0 open, 1 reply, 2 close) then the message's
//! postcard body (what rides inside `Request::Gossip` and friends). After
//! every merge the table stays within [`MAX_MEMBERS`] and the history keeps
//! at least one layout.

use crate::seeds::{history, membership, params};
use crate::{assert_round_trip, postcard_bytes, postcard_exact, select};
use ringkv_core::layout::MAX_MEMBERS;
use ringkv_core::layout_history::{HistoryWire, LayoutHistory};
use ringkv_core::membership::Membership;
use ringkv_core::protocol::{GossipClose, GossipOpen, GossipReply};
use std::fmt::Debug;

/// Returns whether the message decoded.
pub fn gossip(data: &[u8]) -> bool {
    let (selector, body) = select(data);
    let mut table = membership();
    let mut layouts = history();
    match selector % 3 {
        0 => {
            let Some(open) = round_tripped::<GossipOpen>(body) else {
                return false;
            };
            answer_open(&mut table, &mut layouts, &open);
        }
        1 => {
            let Some(reply) = round_tripped::<GossipReply>(body) else {
                return false;
            };
            on_reply(&mut table, &mut layouts, reply);
        }
        _ => {
            let Some(close) = round_tripped::<GossipClose>(body) else {
                return false;
            };
            answer_close(&mut table, &mut layouts, close);
        }
    }
    assert!(
        table.entries().len() <= MAX_MEMBERS,
        "the table outgrew its bound"
    );
    assert!(
        !layouts.entries().is_empty(),
        "the history lost every layout"
    );
    true
}

/// Decodes a payload; a decoded one round-trips.
fn round_tripped<T>(body: &[u8]) -> Option<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + Debug,
{
    let value = postcard_exact::<T>(body)?;
    assert_round_trip(&value, postcard_bytes, |b| {
        postcard_exact::<T>(b).ok_or("does not decode")
    });
    Some(value)
}

/// The receiver's side of a `GossipOpen` (node: `gossip::answer_open`).
fn answer_open(table: &mut Membership, layouts: &mut LayoutHistory, open: &GossipOpen) {
    if open.syn.validate().is_err() {
        assert!(
            table.on_syn(&open.syn).is_err(),
            "an invalid SYN was merged"
        );
        return;
    }
    // The node refuses an open over its bounds whole (`GossipOpen::validate`).
    if open.validate().is_err() {
        return;
    }
    let _ = table.on_syn(&open.syn).expect("a valid SYN merges");
    layouts.merge(Vec::new(), open.oldest, &open.removed);
    let _ = HistoryWire::of(layouts, |s| !open.layouts.contains(s));
}

/// The initiator's side of a `GossipReply` (node: `gossip::on_reply`).
fn on_reply(table: &mut Membership, layouts: &mut LayoutHistory, reply: GossipReply) {
    let Ok(entries) = reply.history.decode(params()) else {
        return;
    };
    let valid = reply.ack.validate().is_ok();
    match table.on_ack(reply.ack) {
        Ok(_) => assert!(valid, "an invalid ACK was merged"),
        Err(_) => return,
    }
    layouts.merge(entries, reply.history.oldest, &reply.history.removed);
    let _ = HistoryWire::of(layouts, |s| reply.want.contains(s));
}

/// The receiver's side of a `GossipClose` (node: `gossip::answer_close`).
fn answer_close(table: &mut Membership, layouts: &mut LayoutHistory, close: GossipClose) {
    let Ok(entries) = close.history.decode(params()) else {
        return;
    };
    if table.on_ack2(close.ack2).is_err() {
        return;
    }
    layouts.merge(entries, close.history.oldest, &close.history.removed);
}
