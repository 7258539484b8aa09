//! What a node reads back from its disk: the checksummed record envelope,
//! the object inside it, and the persisted cluster state.
//!
//! Input: a selector, then
//! - 0: a key length byte, the key, then a framed record
//!   ([`record::open`]): an accepted record is exactly what
//!   [`record::seal`] writes for its payload;
//! - 1: a stored object ([`decode_object`]): it round-trips;
//! - 2: the persisted cluster state, as [`cluster_state::load`] reads it
//!   from storage, then restored the way the node starts from it.

use crate::seeds::{history, layouts, membership, params, record as node_record};
use crate::{assert_round_trip, postcard_bytes, select};
use ringkv_core::codec::{decode_object, encode_object};
use ringkv_core::layout_history::HistoryWire;
use ringkv_core::membership::Membership;
use ringkv_node::cluster_state::{self, Persisted, CLUSTER_STATE_FORMAT_V1};
use ringkv_storage::record;
use ringkv_storage::{Keyspace, MemStorage, Storage, WriteBatch};

/// The `Meta` key the node persists its cluster state under (private to
/// `cluster_state.rs`; a rename there makes [`persisted_state`] find
/// nothing, which the seed test notices).
const STATE_KEY: &[u8] = b"cluster_state";

/// Returns whether the input decoded.
pub fn storage_record(data: &[u8]) -> bool {
    let (selector, body) = select(data);
    match selector % 3 {
        0 => envelope(body),
        1 => object(body),
        _ => persisted_state(body),
    }
}

fn envelope(body: &[u8]) -> bool {
    let (key_len, rest) = select(body);
    let (key, framed) = rest.split_at(usize::from(key_len).min(rest.len()));
    let Ok(payload) = record::open(key, framed) else {
        return false;
    };
    assert_eq!(
        record::seal(key, &payload),
        framed,
        "open accepted what seal never writes"
    );
    true
}

fn object(body: &[u8]) -> bool {
    let Ok(object) = decode_object(body) else {
        return false;
    };
    assert_round_trip(
        &object,
        |o| encode_object(o).expect("a decoded object encodes"),
        decode_object,
    );
    true
}

/// Loads `bytes` as the persisted cluster state; returns whether it loaded.
pub fn persisted_state(bytes: &[u8]) -> bool {
    let storage = MemStorage::new();
    let mut batch = WriteBatch::new();
    batch.put(Keyspace::Meta, STATE_KEY, bytes);
    storage.write(batch).expect("the memory engine writes");
    let Ok(Some(persisted)) = cluster_state::load(&storage) else {
        return false;
    };
    let once = encoded(&persisted);
    let back = postcard::from_bytes::<Persisted>(&once).expect("a loaded state re-decodes");
    assert_eq!(
        encoded(&back),
        once,
        "the persisted state does not round-trip"
    );
    let _ = persisted.history.restore(params());
    let _ = Membership::restore(node_record("n1"), 1, persisted.membership);
    true
}

fn encoded(persisted: &Persisted) -> Vec<u8> {
    postcard_bytes(persisted)
}

/// A valid persisted cluster state, as the node writes it.
pub fn persisted_state_seed() -> Vec<u8> {
    let first = layouts().0;
    let persisted = Persisted {
        genesis: first.digest(),
        founders: first.members().to_vec(),
        history: HistoryWire::of(&history(), |_| true),
        membership: membership().snapshot(),
    };
    let mut out = vec![CLUSTER_STATE_FORMAT_V1];
    out.extend(postcard_bytes(&persisted));
    out
}
