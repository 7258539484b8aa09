//! The actor a node mints dots under, and when it changes after a crash.
//!
//! A dot `(actor, counter)` must never name two different writes. A node
//! mints the next counter from its local copy of the key, and sends the new
//! dot to the other replicas while its own fsync runs. So if a crash took
//! writes that were not yet synced, the node could mint again a dot that
//! another replica already holds for a different value — and merges, which
//! treat equal dots as equal versions, would then silently keep one value
//! and drop the other. Riak avoids this by giving a vnode a new id after such
//! a crash; ringkv does the same with an *epoch*: the node mints dots as
//! `<id>~<epoch>`, and a life that may have lost writes gets the next epoch.
//! A brand-new data directory starts at a fresh epoch taken from the wall
//! clock (as Riak gives a new vnode a random id), so a node whose disk was
//! wiped or replaced cannot mint dots its old disk already used either.
//!
//! **Which crashes lose writes.** `Storage::write` returns only once the
//! batch is in the OS (fjall commits with `PersistMode::Buffer`: written to
//! the page cache; `crates/storage/tests/fjall_journal_facts.rs` checks it),
//! and a dot leaves the node only after the write that minted it returned.
//! A *process* crash (kill -9, panic, OOM kill) loses nothing the OS holds;
//! only an OS crash or power loss loses unsynced writes. So [`begin`] keeps
//! the epoch after an unclean stop when the OS has not restarted since the
//! last life began (same boot id, read by the binary from
//! `/proc/sys/kernel/random/boot_id`), and moves to the next one otherwise:
//!
//! | last life ended | boot id now vs stored | epoch | why no dot is minted twice |
//! |---|---|---|---|
//! | (no directory) | — | fresh | no earlier life wrote to this directory |
//! | cleanly | any | same | the final sync made every write durable |
//! | uncleanly | same | same | every dot sent out is in the OS, so the local counter is at least that dot |
//! | uncleanly | different or unknown | next | unsynced writes may be gone; the new actor has minted nothing |
//!
//! "Unknown" (no boot id readable now, or none stored) always counts as a
//! new boot: the conservative side. The cost is one clock entry per key
//! written after each *new-boot* unclean restart — a crash-looping process
//! no longer adds entries, but a machine that loses power over and over
//! still adds one entry per power loss to every key it writes afterwards,
//! and a key refuses writes at `MAX_CLOCK_ENTRIES` (1,024). Nothing retires
//! those entries today; anti-entropy-era clock GC (dropping entries of
//! epochs every replica has seen superseded) is what will.
//!
//! The epoch, the boot id it was chosen on and a clean-shutdown marker live
//! in the `Meta` keyspace. At start the node reads them, picks its epoch,
//! records the current boot id, removes the marker and syncs; a clean
//! shutdown writes the marker back after the final sync. This module reads
//! and writes only through the `Storage` trait and reads no clock or file:
//! the wall-clock `fresh` epoch and the boot id are inputs.

use ringkv_core::NodeId;
use ringkv_storage::{Keyspace, Storage, StorageError, WriteBatch};

const EPOCH_KEY: &[u8] = b"actor_epoch";
const CLEAN_KEY: &[u8] = b"clean_shutdown";
const BOOT_KEY: &[u8] = b"boot_id";

/// Longest boot id used; a longer or empty one counts as unknown.
pub const MAX_BOOT_ID_BYTES: usize = 128;

/// How a life began, which decides its epoch (see the module doc's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A brand-new data directory: a fresh epoch.
    Fresh,
    /// The last life shut down cleanly: same epoch.
    Clean,
    /// The last life crashed but the OS did not restart: same epoch.
    ProcessCrash,
    /// The last life crashed and the OS restarted (or the boot is unknown):
    /// the next epoch.
    NewBoot,
}

/// The epoch of a new life and how it began. `same_boot` is true only when
/// both the stored and the current boot id are known and equal; `fresh` is
/// a value no earlier life of this node id used (e.g. the wall clock in ms),
/// for a brand-new data directory.
pub fn next_epoch(
    stored: Option<u64>,
    clean_shutdown: bool,
    same_boot: bool,
    fresh: u64,
) -> (u64, Start) {
    match stored {
        None => (fresh.max(1), Start::Fresh),
        Some(epoch) if clean_shutdown => (epoch, Start::Clean),
        Some(epoch) if same_boot => (epoch, Start::ProcessCrash),
        Some(epoch) => (epoch.saturating_add(1), Start::NewBoot),
    }
}

/// `boot_id` if it is usable: non-empty and at most [`MAX_BOOT_ID_BYTES`].
fn usable(boot_id: Option<&str>) -> Option<&str> {
    boot_id.filter(|b| !b.is_empty() && b.len() <= MAX_BOOT_ID_BYTES)
}

/// What [`begin`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    /// The actor id to mint dots under: `<id>~<epoch>`.
    pub actor: NodeId,
    pub start: Start,
}

fn decode_epoch(raw: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = raw.try_into().map_err(|_| StorageError::Corrupt {
        keyspace: Keyspace::Meta.name(),
        key_hex: "actor_epoch".into(),
        reason: format!("epoch is {} bytes, expected 8", raw.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Starts a life: picks the epoch, records it and the current `boot_id`
/// durably, and returns the actor id to mint dots under. `fresh` is the
/// epoch for a brand-new data directory; `boot_id` identifies the running
/// OS boot (`None` if unknown, which is treated as a new boot).
pub fn begin(
    storage: &dyn Storage,
    node: &NodeId,
    fresh: u64,
    boot_id: Option<&str>,
) -> Result<Begun, StorageError> {
    let stored = storage
        .get(Keyspace::Meta, EPOCH_KEY)?
        .map(|raw| decode_epoch(&raw))
        .transpose()?;
    let clean = storage.get(Keyspace::Meta, CLEAN_KEY)?.is_some();
    let boot_id = usable(boot_id);
    let stored_boot = storage.get(Keyspace::Meta, BOOT_KEY)?;
    let same_boot = matches!((boot_id, &stored_boot), (Some(now), Some(then)) if now.as_bytes() == then.as_slice());
    let (epoch, start) = next_epoch(stored, clean, same_boot, fresh);
    let mut batch = WriteBatch::new();
    batch.put(Keyspace::Meta, EPOCH_KEY, epoch.to_be_bytes());
    match boot_id {
        Some(b) => batch.put(Keyspace::Meta, BOOT_KEY, b.as_bytes()),
        None => batch.delete(Keyspace::Meta, BOOT_KEY),
    }
    batch.delete(Keyspace::Meta, CLEAN_KEY);
    storage.write(batch)?;
    storage.sync()?;
    Ok(Begun {
        actor: node.with_epoch(epoch),
        start,
    })
}

/// Whether any life ever began on this store (its epoch is recorded). A
/// store that existed on disk but has no epoch lost its own state: fjall
/// dropped the journal from a damaged batch on (see `ringkv serve`).
pub fn has_lived(storage: &dyn Storage) -> Result<bool, StorageError> {
    Ok(storage.get(Keyspace::Meta, EPOCH_KEY)?.is_some())
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
        use Start::*;
        // (stored epoch, clean, same boot, fresh) -> (epoch, start)
        let table = [
            ((None, false, false, 1_700_000), (1_700_000, Fresh)),
            ((None, true, true, 0), (1, Fresh)), // the bare id is never minted under
            ((Some(4), true, false, 9), (4, Clean)),
            ((Some(4), true, true, 9), (4, Clean)),
            ((Some(4), false, true, 9), (4, ProcessCrash)),
            ((Some(4), false, false, 9), (5, NewBoot)),
            ((Some(u64::MAX), false, false, 9), (u64::MAX, NewBoot)),
        ];
        for ((stored, clean, same_boot, fresh), want) in table {
            assert_eq!(
                next_epoch(stored, clean, same_boot, fresh),
                want,
                "{stored:?} clean={clean} same_boot={same_boot}"
            );
        }
    }

    #[test]
    fn a_crash_keeps_the_actor_on_the_same_boot_and_moves_on_after_a_reboot() {
        let mem = MemStorage::new();
        let n1 = NodeId::new("n1").unwrap();
        assert!(!has_lived(&mem).unwrap());
        let begin = |mem: &MemStorage, fresh, boot: Option<&str>| {
            let b = begin(mem, &n1, fresh, boot).unwrap();
            (b.actor.as_str().to_string(), b.start)
        };
        let s = |a: &str, st| (a.to_string(), st);
        assert_eq!(begin(&mem, 500, Some("A")), s("n1~500", Start::Fresh));
        assert!(has_lived(&mem).unwrap());
        end(&mem).unwrap();
        assert_eq!(begin(&mem, 900, Some("B")), s("n1~500", Start::Clean));
        // No end(): the process died; the OS (boot B) kept every write.
        assert_eq!(
            begin(&mem, 900, Some("B")),
            s("n1~500", Start::ProcessCrash)
        );
        assert_eq!(
            begin(&mem, 900, Some("B")),
            s("n1~500", Start::ProcessCrash)
        );
        // A power loss: unsynced writes are gone and the boot id changed.
        mem.crash();
        assert_eq!(begin(&mem, 900, Some("C")), s("n1~501", Start::NewBoot));
        // Unknown boot ids, now or stored, are new boots.
        assert_eq!(begin(&mem, 900, None), s("n1~502", Start::NewBoot));
        assert_eq!(begin(&mem, 900, Some("C")), s("n1~503", Start::NewBoot));
        let too_long = "x".repeat(MAX_BOOT_ID_BYTES + 1);
        assert_eq!(
            begin(&mem, 900, Some(&too_long)),
            s("n1~504", Start::NewBoot)
        );
        assert_eq!(
            begin(&mem, 900, Some(&too_long)),
            s("n1~505", Start::NewBoot)
        );
        assert_eq!(begin(&mem, 900, Some("")), s("n1~506", Start::NewBoot));
        assert_eq!(
            begin(&MemStorage::new(), 900, Some("C")),
            s("n1~900", Start::Fresh),
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
            begin(&mem, &NodeId::new("n1").unwrap(), 1, Some("A")),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
