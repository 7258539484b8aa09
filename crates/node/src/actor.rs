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
//! next epoch, and the node mints dots as `<id>~<epoch>`.
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
/// after a crash, 0 on a brand-new data directory.
pub fn next_epoch(stored: Option<u64>, clean_shutdown: bool) -> u64 {
    match stored {
        None => 0,
        Some(epoch) if clean_shutdown => epoch,
        Some(epoch) => epoch + 1,
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
pub fn begin(storage: &dyn Storage, node: &NodeId) -> Result<(NodeId, bool), StorageError> {
    let stored = storage
        .get(Keyspace::Meta, EPOCH_KEY)?
        .map(|raw| decode_epoch(&raw))
        .transpose()?;
    let clean = storage.get(Keyspace::Meta, CLEAN_KEY)?.is_some();
    let epoch = next_epoch(stored, clean);
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
        assert_eq!(next_epoch(None, false), 0);
        assert_eq!(next_epoch(None, true), 0);
        assert_eq!(next_epoch(Some(4), true), 4);
        assert_eq!(next_epoch(Some(4), false), 5);
    }

    #[test]
    fn a_crash_moves_to_a_new_actor_and_a_clean_stop_keeps_it() {
        let mem = MemStorage::new();
        let n1 = NodeId::new("n1").unwrap();
        assert_eq!(begin(&mem, &n1).unwrap(), (n1.clone(), true));
        end(&mem).unwrap();
        assert_eq!(
            begin(&mem, &n1).unwrap().0.as_str(),
            "n1",
            "clean stop keeps the actor"
        );
        mem.crash(); // no end(): a crash
        let (actor, clean) = begin(&mem, &n1).unwrap();
        assert_eq!((actor.as_str(), clean), ("n1~1", false));
        mem.crash();
        assert_eq!(
            begin(&mem, &n1).unwrap().0.as_str(),
            "n1~2",
            "every unclean life is a new epoch"
        );
    }

    #[test]
    fn a_damaged_epoch_is_an_error_not_a_reset() {
        let mem = MemStorage::new();
        let mut batch = WriteBatch::new();
        batch.put(Keyspace::Meta, EPOCH_KEY, [1u8, 2]);
        mem.write(batch).unwrap();
        assert!(matches!(
            begin(&mem, &NodeId::new("n1").unwrap()),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
