//! The actor a node mints dots under, and why it changes after a crash.
//!
//! A dot `(actor, counter)` must never name two different writes. A node
//! mints the next counter from its local copy of the key, so if a crash
//! (power loss, or a kernel crash) took writes that were not yet synced, the
//! node could mint again a dot that another replica already holds for a
//! different value — and merges, which treat equal dots as equal versions,
//! would then silently keep one value and drop the other. Riak avoids this by
//! giving a vnode a new id after such a crash; ringkv does the same with an
//! *epoch*: each life of a node that did not end in a clean shutdown gets the
//! next epoch, and the node mints dots as `<id>~<epoch>`. A brand-new data
//! directory starts at a fresh epoch taken from the wall clock (as Riak
//! gives a new vnode a random id), so a node whose disk was wiped or
//! replaced cannot mint dots its old disk already used either.
//!
//! The epoch and a clean-shutdown marker live in the `Meta` keyspace. At
//! start the node reads them, picks its epoch, removes the marker and syncs;
//! a clean shutdown writes the marker back after the final sync. The cost is
//! one extra clock entry per key written after an unclean restart. This
//! module reads and writes only through the `Storage` trait.

use ringkv_core::NodeId;
use ringkv_storage::{Keyspace, Storage, StorageError, WriteBatch};

const EPOCH_KEY: &[u8] = b"actor_epoch";
const CLEAN_KEY: &[u8] = b"clean_shutdown";

/// The epoch of a new life: unchanged after a clean shutdown, the next one
/// after a crash, and `fresh` (a value no earlier life of this node id used,
/// e.g. the wall clock in ms) on a brand-new data directory — a node whose
/// disk was replaced or wiped must not mint dots its old disk already used.
pub fn next_epoch(stored: Option<u64>, clean_shutdown: bool, fresh: u64) -> u64 {
    match stored {
        None => fresh.max(1),
        Some(epoch) if clean_shutdown => epoch,
        Some(epoch) => epoch.saturating_add(1),
    }
}

fn decode_epoch(raw: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = raw.try_into().map_err(|_| StorageError::Corrupt {
        keyspace: Keyspace::Meta.name(),
        key_hex: "actor_epoch".into(),
        reason: format!("epoch is {} bytes, expected 8", raw.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Starts a life: picks the epoch, records it durably, and returns the actor
/// id to mint dots under (with whether the last life ended cleanly).
/// `fresh` is the epoch for a brand-new data directory (see [`next_epoch`]).
pub fn begin(
    storage: &dyn Storage,
    node: &NodeId,
    fresh: u64,
) -> Result<(NodeId, bool), StorageError> {
    let stored = storage
        .get(Keyspace::Meta, EPOCH_KEY)?
        .map(|raw| decode_epoch(&raw))
        .transpose()?;
    let clean = storage.get(Keyspace::Meta, CLEAN_KEY)?.is_some();
    let epoch = next_epoch(stored, clean, fresh);
    let mut batch = WriteBatch::new();
    batch.put(Keyspace::Meta, EPOCH_KEY, epoch.to_be_bytes());
    batch.delete(Keyspace::Meta, CLEAN_KEY);
    storage.write(batch)?;
    storage.sync()?;
    Ok((node.with_epoch(epoch), clean || stored.is_none()))
}

/// Ends a life cleanly: everything is synced, so the next start may keep the epoch.
pub fn end(storage: &dyn Storage) -> Result<(), StorageError> {
    let mut batch = WriteBatch::new();
    batch.put(Keyspace::Meta, CLEAN_KEY, [1u8]);
    storage.write(batch)?;
    storage.sync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_storage::MemStorage;

    #[test]
    fn epoch_table() {
        assert_eq!(next_epoch(None, false, 1_700_000), 1_700_000);
        assert_eq!(
            next_epoch(None, true, 0),
            1,
            "the bare id is never minted under"
        );
        assert_eq!(next_epoch(Some(4), true, 9), 4);
        assert_eq!(next_epoch(Some(4), false, 9), 5);
    }

    #[test]
    fn a_crash_moves_to_a_new_actor_and_a_clean_stop_keeps_it() {
        let mem = MemStorage::new();
        let n1 = NodeId::new("n1").unwrap();
        let actor =
            |mem: &MemStorage, fresh| begin(mem, &n1, fresh).unwrap().0.as_str().to_string();
        assert_eq!(
            actor(&mem, 500),
            "n1~500",
            "a new directory gets a fresh epoch"
        );
        end(&mem).unwrap();
        assert_eq!(actor(&mem, 900), "n1~500", "clean stop keeps the actor");
        mem.crash(); // no end(): a crash
        let (next, clean) = begin(&mem, &n1, 900).unwrap();
        assert_eq!((next.as_str(), clean), ("n1~501", false));
        mem.crash();
        assert_eq!(
            actor(&mem, 900),
            "n1~502",
            "every unclean life is a new epoch"
        );
        assert_eq!(
            actor(&MemStorage::new(), 900),
            "n1~900",
            "a wiped disk never reuses an old actor"
        );
    }

    #[test]
    fn a_damaged_epoch_is_an_error_not_a_reset() {
        let mem = MemStorage::new();
        let mut batch = WriteBatch::new();
        batch.put(Keyspace::Meta, EPOCH_KEY, [1u8, 2]);
        mem.write(batch).unwrap();
        assert!(matches!(
            begin(&mem, &NodeId::new("n1").unwrap(), 1),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
