//! The [`Storage`] trait: the small contract every engine implements.
//!
//! The trait states the semantics (atomic batches, durability only after
//! `sync`, checksummed reads, byte-ordered scans) and the conformance suite
//! in `tests/conformance.rs` checks them against every engine. This module
//! must never name a concrete engine.

use crate::batch::WriteBatch;
use crate::error::StorageError;
use crate::keyspace::Keyspace;

/// The small trait every engine implements.
///
/// Implementations are internally synchronized (`&self` methods) and cheap
/// to share via `Arc`. The trait is object safe, so `Arc<dyn Storage>` works.
pub trait Storage: Send + Sync + 'static {
    /// Reads one value, verifying its checksum. Corruption is
    /// `Err(Corrupt)`, never a wrong value. A key over the storage limit is
    /// `Err(KeyTooLarge)` (it can never have been written).
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Applies a batch atomically (all or nothing, visible to reads at
    /// once). NOT durable until a later `sync` returns, but it survives a
    /// crash of the *process* (its bytes are in the OS when this returns;
    /// only an OS crash or power loss can lose it) — the node's actor
    /// epochs rely on this. A batch with any oversized key or value is
    /// rejected whole, before anything is applied.
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError>;

    /// Makes every write that returned before this call durable (fsync).
    /// May block on the disk.
    fn sync(&self) -> Result<(), StorageError>;

    /// True when the engine's calls can block the calling thread: `sync`
    /// waits for a real disk, and writes may stall (fjall's write throttle
    /// sleeps). Callers then keep every call off their async workers; false
    /// for the in-memory engine, whose calls callers may make inline.
    fn sync_blocks(&self) -> bool;

    /// How long a `sync` of a simulated disk takes, in the caller's
    /// (simulated) time: a caller that makes non-blocking calls inline
    /// waits this long before each `sync`, so writes stay unsynced for a
    /// while, as on a real disk, and a simulated power loss can land
    /// between a write and its sync. 0 (the default) for real engines,
    /// whose `sync` takes real time by itself.
    fn simulated_sync_ms(&self) -> u64 {
        0
    }

    /// Ordered scan of keys in `[start, end)` (`end` None = to the end of
    /// the keyspace), at most `limit` pairs, checksums verified.
    ///
    /// Ordered by key bytes (used for per-range Merkle trees and range
    /// streaming). An empty range (`end <= start`) or `limit == 0` returns
    /// no pairs. If any record in the returned window is corrupt, the whole
    /// scan is `Err(Corrupt)`. The caller bounds memory through `limit`.
    #[allow(
        clippy::type_complexity,
        reason = "the plain pair type is the agreed public signature"
    )]
    fn scan(
        &self,
        ks: Keyspace,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StorageError> {
        let scanned = self.scan_skipping_corrupt(ks, start, end, limit)?;
        match scanned.corrupt.into_iter().next() {
            Some(damaged) => Err(StorageError::corrupt(ks, &damaged.key, damaged.reason)),
            None => Ok(scanned.records),
        }
    }

    /// Like [`Storage::scan`], but a record that fails its checks is left
    /// out and named in [`Scanned::corrupt`] instead of failing the scan,
    /// so background work (anti-entropy, tombstone collection) can carry on
    /// past it and treat it as missing. `limit` counts both kinds.
    fn scan_skipping_corrupt(
        &self,
        ks: Keyspace,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Scanned, StorageError>;

    /// Approximate number of keys in a keyspace (for metrics / summaries).
    /// Exact for the in-memory engine; fjall may over-count after deletes.
    fn approximate_len(&self, ks: Keyspace) -> Result<u64, StorageError>;
}

/// What [`Storage::scan_skipping_corrupt`] found, in key order.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Records that passed their checks: (key, payload).
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
    /// Records that did not, with why.
    pub corrupt: Vec<CorruptRecord>,
}

impl Scanned {
    /// Where the next page of the same scan starts: just after the last key
    /// this page saw, good or corrupt; `None` if it saw none (the end).
    pub fn resume_after(&self) -> Option<Vec<u8>> {
        let keys = self.records.iter().map(|(k, _)| k);
        let last = keys.chain(self.corrupt.iter().map(|c| &c.key)).max()?;
        let mut next = last.clone();
        next.push(0);
        Some(next)
    }
}

/// A record a scan skipped because it failed its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRecord {
    pub key: Vec<u8>,
    pub reason: String,
}

/// True when a scan of `[start, end)` with `limit` can return nothing, so
/// engines can answer without touching their state (and without handing an
/// inverted range to a `BTreeMap`, which would panic).
pub(crate) fn scan_is_empty(start: &[u8], end: Option<&[u8]>, limit: usize) -> bool {
    limit == 0 || end.is_some_and(|end| end <= start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_is_empty_table() {
        type Case<'a> = (&'a [u8], Option<&'a [u8]>, usize, bool);
        let cases: [Case; 6] = [
            (b"a", None, 1, false),
            (b"a", Some(b"b"), 1, false),
            (b"a", Some(b"a"), 1, true),
            (b"b", Some(b"a"), 1, true),
            (b"", Some(b""), 5, true),
            (b"a", None, 0, true),
        ];
        for (start, end, limit, want) in cases {
            assert_eq!(
                scan_is_empty(start, end, limit),
                want,
                "{start:?} {end:?} {limit}"
            );
        }
    }

    #[test]
    fn trait_is_object_safe() {
        fn takes(_: Option<&dyn Storage>) {}
        takes(None);
    }
}
