//! The benchmark's data: which keys exist, what each replica holds of them,
//! writing it straight into the engines before any node starts, and the
//! final check that n3 holds the newest version of every key it lacked.
//!
//! Every key has a two-version history on n1 and n2 (a write with dot
//! `n1:1`, then one that read it, `n1:2`, superseding it). On n3, 0.5% of
//! the keys are missing and 0.5% hold only the first version; the choice
//! is by key number, and key numbers hash to positions all over the ring.

use bytes::Bytes;
use ringkv_core::codec::{decode_object, encode_object};
use ringkv_core::key::ObjectKey;
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use ringkv_storage::{FjallStorage, Keyspace, Storage, WriteBatch};
use std::sync::Arc;

const BUCKET: &str = "bench";
/// Keys written per batch and engine while loading.
const LOAD_BATCH: usize = 10_000;
const TIMESTAMP_MS: u64 = 1_700_000_000_000;

/// What n3 holds of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnN3 {
    Newest,
    Missing,
    Stale,
}

fn on_n3(i: u64) -> OnN3 {
    match i % 200 {
        0 => OnN3::Missing,
        1 => OnN3::Stale,
        _ => OnN3::Newest,
    }
}

fn key_of(i: u64) -> ObjectKey {
    ObjectKey::new(BUCKET, Bytes::from(format!("key-{i:09}")), 1024).expect("valid key")
}

/// Deterministic, incompressible-looking bytes for version `v` of key `i`
/// (splitmix64).
fn value_of(i: u64, v: u64, len: usize) -> Bytes {
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ v;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// The stale (first write) and newest (second write, which read the first)
/// objects of key `i`.
fn objects_of(i: u64, value_bytes: usize) -> (Siblings, Siblings) {
    let actor = NodeId::new("n1").expect("valid id");
    let mut stale = Siblings::new();
    let first = Some(value_of(i, 1, value_bytes));
    stale.update(&VersionVector::new(), &actor, first, TIMESTAMP_MS);
    let mut newest = stale.clone();
    let second = Some(value_of(i, 2, value_bytes));
    newest.update(stale.clock(), &actor, second, TIMESTAMP_MS + 1);
    (stale, newest)
}

/// What loading wrote.
pub struct Loaded {
    pub keys: u64,
    /// Storage keys plus encoded objects of one full replica.
    pub full_copy_bytes: u64,
    /// Encoded objects of one full replica.
    pub object_bytes: u64,
    /// Encoded newest objects of the keys n3 lacks or holds stale: what any
    /// repair must move at least.
    pub minimum_repair_bytes: u64,
    pub missing: u64,
    pub stale: u64,
}

impl Loaded {
    pub fn damaged(&self) -> u64 {
        self.missing + self.stale
    }
}

/// Writes `keys` keys with `value_bytes`-byte values into the engines of
/// n1, n2 and n3 (n3 with its 1% damage), and syncs them.
pub fn load(stores: &[Arc<FjallStorage>; 3], keys: u64, value_bytes: usize) -> Loaded {
    let mut loaded = Loaded {
        keys,
        full_copy_bytes: 0,
        object_bytes: 0,
        minimum_repair_bytes: 0,
        missing: 0,
        stale: 0,
    };
    let mut batches: [WriteBatch; 3] = Default::default();
    for i in 0..keys {
        let storage_key = key_of(i).storage_key();
        let (stale, newest) = objects_of(i, value_bytes);
        let newest = encode_object(&newest).expect("encodes");
        loaded.full_copy_bytes += (storage_key.len() + newest.len()) as u64;
        loaded.object_bytes += newest.len() as u64;
        let third = match on_n3(i) {
            OnN3::Newest => Some(newest.clone()),
            OnN3::Missing => {
                loaded.missing += 1;
                None
            }
            OnN3::Stale => {
                loaded.stale += 1;
                Some(encode_object(&stale).expect("encodes"))
            }
        };
        if on_n3(i) != OnN3::Newest {
            loaded.minimum_repair_bytes += newest.len() as u64;
        }
        batches[0].put(Keyspace::Data, storage_key.clone(), newest.clone());
        batches[1].put(Keyspace::Data, storage_key.clone(), newest);
        if let Some(third) = third {
            batches[2].put(Keyspace::Data, storage_key, third);
        }
        if batches[0].len() >= LOAD_BATCH || i + 1 == keys {
            for (store, batch) in stores.iter().zip(&mut batches) {
                store
                    .write(std::mem::take(batch))
                    .expect("load write failed");
            }
        }
    }
    for store in stores {
        store.sync().expect("load sync failed");
    }
    loaded
}

/// Checks that every key n3 lacked or held stale now holds exactly the
/// newest object in `n3`'s storage; returns how many were checked.
pub fn check_n3(n3: &FjallStorage, keys: u64, value_bytes: usize) -> Result<u64, String> {
    let mut checked = 0;
    for i in (0..keys).filter(|&i| on_n3(i) != OnN3::Newest) {
        let raw = n3
            .get(Keyspace::Data, &key_of(i).storage_key())
            .map_err(|e| format!("key {i}: {e}"))?
            .ok_or(format!("key {i} still missing on n3"))?;
        let held = decode_object(&raw).map_err(|e| format!("key {i}: {e}"))?;
        if held != objects_of(i, value_bytes).1 {
            return Err(format!("key {i} on n3 is not the newest version"));
        }
        checked += 1;
    }
    Ok(checked)
}
