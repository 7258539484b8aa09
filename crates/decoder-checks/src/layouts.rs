//! Layouts and layout histories: what gossip, joins and the persisted
//! cluster state carry, and the layout changes an operator sends.
//!
//! Input: a selector, then
//! - 0: a layout's canonical encoding ([`Layout::decode`]): a decoded
//!   layout round-trips and answers placement questions;
//! - 1: a [`HistoryWire`] (postcard): decoded against the cluster's shape,
//!   restored as a whole history (which must round-trip through
//!   [`HistoryWire::of`]) and merged into a history in transition;
//! - 2: a list of [`LayoutChange`]s (postcard), applied to a one-version
//!   history: a new layout or a typed refusal.

use crate::seeds::{history, layouts, params};
use crate::{assert_round_trip, postcard_exact, select};
use ringkv_core::layout::Layout;
use ringkv_core::layout_history::{HistoryWire, LayoutChange, LayoutHistory};
use std::sync::Arc;

/// Returns whether the input decoded.
pub fn layout_history(data: &[u8]) -> bool {
    let (selector, body) = select(data);
    match selector % 3 {
        0 => layout(body),
        1 => history_wire(body),
        _ => changes(body),
    }
}

fn layout(body: &[u8]) -> bool {
    let Ok(layout) = Layout::decode(body) else {
        return false;
    };
    assert_round_trip(&layout, Layout::encode, Layout::decode);
    let _ = (layout.digest(), layout.balance());
    for p in 0..layout.partitions() {
        let listed = layout.preference_list(p).count();
        assert!(
            listed >= layout.replication(),
            "partition {p} lacks replicas"
        );
    }
    true
}

fn history_wire(body: &[u8]) -> bool {
    let Some(wire) = postcard_exact::<HistoryWire>(body) else {
        return false;
    };
    if let Ok(Some(restored)) = wire.restore(params()) {
        let again = HistoryWire::of(&restored, |_| true).restore(params());
        assert_eq!(
            again,
            Ok(Some(restored)),
            "a restored history does not round-trip"
        );
    }
    let Ok(entries) = wire.decode(params()) else {
        return false;
    };
    let mut merged = history();
    merged.merge(entries, wire.oldest, &wire.removed);
    assert!(!merged.entries().is_empty(), "the merge lost every layout");
    true
}

fn changes(body: &[u8]) -> bool {
    let Some(changes) = postcard_exact::<Vec<LayoutChange>>(body) else {
        return false;
    };
    let mut one = LayoutHistory::new(Arc::new(layouts().0));
    if let Ok(layout) = one.apply(&changes, params()) {
        assert_round_trip(layout.as_ref(), Layout::encode, Layout::decode);
    }
    true
}
