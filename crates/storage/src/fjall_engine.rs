//! [`FjallStorage`]: the durable engine, one fjall database per node.
//!
//! Layout: one fjall `Database` in the node's directory and one fjall
//! keyspace per [`Keyspace`], named by [`Keyspace::name`]. Every value is
//! framed by [`crate::record`] before it is written and checked after it is
//! read. Every fjall key is [`KEY_TAG`] followed by the caller's key: fjall
//! rejects empty keys (it panics), while ringkv's contract allows them, and
//! a shared one-byte prefix keeps the byte order of keys unchanged. A stored
//! key without the tag is reported as corrupt.
//!
//! A [`WriteBatch`] becomes one fjall `OwnedWriteBatch` (atomic across
//! keyspaces), committed with `PersistMode::Buffer` so its journal bytes are
//! in the OS when `write` returns; `sync` is an `fdatasync` of the active
//! journal through [`JournalSync`], outside fjall's journal lock.
//!
//! fjall settings, and why:
//! - Batches commit with `PersistMode::Buffer` (and `manual_journal_persist`
//!   is fjall's default `false`, set explicitly): each commit hands its
//!   journal bytes to the OS before returning, so a process crash loses
//!   nothing that `write` acknowledged; only a machine crash loses writes not
//!   yet covered by `sync`, which is what the trait allows.
//! - Block cache [`FJALL_CACHE_BYTES`] (16 MiB) shared by all keyspaces:
//!   the OS page cache holds the tables too, so the block cache only saves
//!   re-parsing hot blocks.
//! - Memtables: [`DATA_MEMTABLE_BYTES`] (32 MiB, half of fjall's default)
//!   for `Data`; [`SMALL_MEMTABLE_BYTES`] (8 MiB) for the small `Hints` and
//!   `Meta` keyspaces, so they hold less memory and journal back. With
//!   fjall's 64 MiB memtable and a 64 MiB cache, a node loaded with
//!   1,000,000 keys peaked near 300 MB resident (an active memtable, sealed
//!   ones waiting for their flush, a full cache); with 32 MiB each, 204–222
//!   MB; with these settings, 182–201 MB. See the README's performance
//!   section (`bench/peak_rss.sh`).
//! - Everything else (leveled compaction, LZ4 on the last level, bloom
//!   filters, worker threads = min(cores, 4)) is fjall's default. Key-value
//!   separation is off: values are usually small; revisit with measurements.
//!
//! Reads go through a fresh fjall snapshot, so a batch that is still being
//! applied is invisible until it is complete. This module must never panic
//! or unwrap on data read from disk, and must never hand out an unchecked
//! payload.

use crate::batch::{Op, WriteBatch};
use crate::damage::{classify_open_error, DamageKind};
use crate::error::StorageError;
use crate::journal_sync::JournalSync;
use crate::keyspace::Keyspace;
use crate::limits::check_key;
use crate::record;
use crate::storage::{scan_is_empty, CorruptRecord, Scanned, Storage};
use fjall::{Database, KeyspaceCreateOptions, PersistMode, Readable};
use std::path::Path;

/// First byte of every fjall key this engine writes (format version 1 of
/// the key layout). Never change it for existing data.
const KEY_TAG: u8 = 0x01;

/// Block cache shared by all keyspaces, in bytes.
pub const FJALL_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Memtable size for the small `Hints` and `Meta` keyspaces, in bytes.
pub const SMALL_MEMTABLE_BYTES: u64 = 8 * 1024 * 1024;

/// Memtable size for the `Data` keyspace, in bytes: it bounds most of a
/// node's memory under writes (sealed memtables stay until flushed).
pub const DATA_MEMTABLE_BYTES: u64 = 32 * 1024 * 1024;

/// The durable engine: a fjall database with one keyspace per [`Keyspace`].
pub struct FjallStorage {
    db: Database,
    /// fjall keyspace handles, indexed by `Keyspace::index`.
    keyspaces: [fjall::Keyspace; 3],
    /// Syncs the journal without holding fjall's journal lock.
    journal: JournalSync,
}

impl FjallStorage {
    /// Opens (creating if needed) the database in `dir`, recovering any
    /// journal left by a crash. Fails with `Engine` if the directory is
    /// already open (in this or another process) or cannot be read.
    ///
    /// Files that do not check out are [`StorageError::Damaged`] (see
    /// [`crate::damage`]), also when fjall panics on them: a panic while
    /// opening is caught here and reported as damage, never propagated.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let opened = std::panic::catch_unwind(|| {
            Database::builder(dir)
                .cache_size(FJALL_CACHE_BYTES)
                .manual_journal_persist(false)
                .open()
        });
        let damaged = |kind, found: String| StorageError::Damaged {
            dir: dir.display().to_string(),
            kind,
            found,
        };
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => match classify_open_error(&e) {
                Some(kind) => return Err(damaged(kind, e.to_string())),
                None => return Err(StorageError::engine(&format!("open {}", dir.display()), e)),
            },
            Err(payload) => {
                let text = crate::damage::panic_text(&*payload);
                return Err(damaged(DamageKind::Panicked, text));
            }
        };
        let [data, hints, meta] = Keyspace::ALL.map(|ks| open_keyspace(&db, ks));
        Ok(Self {
            keyspaces: [data?, hints?, meta?],
            db,
            journal: JournalSync::new(dir),
        })
    }

    /// Test hook: stores `raw` as the record for `key` without framing it
    /// (the key still gets its tag), so tests can plant corrupt records.
    #[doc(hidden)]
    pub fn raw_put_for_tests(
        &self,
        ks: Keyspace,
        key: &[u8],
        raw: &[u8],
    ) -> Result<(), StorageError> {
        self.handle(ks)
            .insert(tagged(key), raw)
            .map_err(|e| StorageError::engine("raw insert", e))
    }

    fn handle(&self, ks: Keyspace) -> &fjall::Keyspace {
        &self.keyspaces[ks.index()]
    }
}

/// The fjall key for a caller's `key`: [`KEY_TAG`] ++ `key`.
fn tagged(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(KEY_TAG);
    out.extend_from_slice(key);
    out
}

/// The caller's key inside a stored fjall key, or a corruption reason.
fn untagged(stored: &[u8]) -> Result<&[u8], String> {
    match stored.split_first() {
        Some((&KEY_TAG, key)) => Ok(key),
        Some((tag, _)) => Err(format!("stored key has unknown tag {tag:#04x}")),
        None => Err("stored key is empty".to_string()),
    }
}

fn open_keyspace(db: &Database, ks: Keyspace) -> Result<fjall::Keyspace, StorageError> {
    let options = move || match ks {
        Keyspace::Data => KeyspaceCreateOptions::default().max_memtable_size(DATA_MEMTABLE_BYTES),
        Keyspace::Hints | Keyspace::Meta => {
            KeyspaceCreateOptions::default().max_memtable_size(SMALL_MEMTABLE_BYTES)
        }
    };
    db.keyspace(ks.name(), options)
        .map_err(|e| match classify_open_error(&e) {
            Some(kind) => StorageError::Damaged {
                dir: format!("keyspace {}", ks.name()),
                kind,
                found: e.to_string(),
            },
            None => StorageError::engine(&format!("open keyspace {}", ks.name()), e),
        })
}

impl Storage for FjallStorage {
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        check_key(key)?;
        let framed = self
            .db
            .snapshot()
            .get(self.handle(ks), tagged(key))
            .map_err(|e| StorageError::engine(&format!("get from {}", ks.name()), e))?;
        match framed {
            None => Ok(None),
            Some(framed) => record::open(key, &framed)
                .map(Some)
                .map_err(|reason| StorageError::corrupt(ks, key, reason)),
        }
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        // fjall stamps the whole batch with one sequence number, so it must
        // hold at most one operation per key: keep the last, as the trait says.
        // Buffer: the batch's journal bytes reach the OS before commit
        // returns, which `JournalSync` relies on (and a process crash loses
        // nothing committed).
        let mut fjall_batch = self.db.batch().durability(Some(PersistMode::Buffer));
        for op in batch.into_last_writes() {
            match op {
                Op::Put { ks, key, value } => {
                    let framed = record::seal(&key, &value);
                    fjall_batch.insert(self.handle(ks), tagged(&key), framed);
                }
                Op::Delete { ks, key } => fjall_batch.remove(self.handle(ks), tagged(&key)),
            }
        }
        fjall_batch
            .commit()
            .map_err(|e| StorageError::engine("commit batch", e))
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.journal
            .sync()
            .map_err(|e| StorageError::engine("fdatasync journal", e))
    }

    fn sync_blocks(&self) -> bool {
        true
    }

    fn scan_skipping_corrupt(
        &self,
        ks: Keyspace,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Scanned, StorageError> {
        let mut out = Scanned::default();
        if scan_is_empty(start, end, limit) {
            return Ok(out);
        }
        let snapshot = self.db.snapshot();
        let handle = self.handle(ks);
        let start = tagged(start);
        let iter = match end {
            Some(end) => snapshot.range(handle, start..tagged(end)),
            // Unbounded on purpose: a stored key with a foreign tag is
            // reported as corrupt below instead of being silently skipped.
            None => snapshot.range(handle, start..),
        };
        for guard in iter.take(limit) {
            let (stored_key, framed) = guard
                .into_inner()
                .map_err(|e| StorageError::engine(&format!("scan {}", ks.name()), e))?;
            let opened = untagged(&stored_key)
                .and_then(|key| record::open(key, &framed).map(|payload| (key.to_vec(), payload)));
            match opened {
                Ok(pair) => out.records.push(pair),
                Err(reason) => out.corrupt.push(CorruptRecord {
                    key: untagged(&stored_key).map_or_else(|_| stored_key.to_vec(), |k| k.to_vec()),
                    reason,
                }),
            }
        }
        Ok(out)
    }

    fn approximate_len(&self, ks: Keyspace) -> Result<u64, StorageError> {
        let len = self.handle(ks).approximate_len();
        Ok(u64::try_from(len).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_roundtrips_and_keeps_order() {
        let keys: [&[u8]; 5] = [b"", &[0x00], b"a", b"ab", &[0xff, 0xff]];
        for pair in keys.windows(2) {
            assert!(tagged(pair[0]) < tagged(pair[1]), "{pair:?}");
        }
        for key in keys {
            assert_eq!(untagged(&tagged(key)), Ok(key));
        }
    }

    #[test]
    fn untagged_rejects_foreign_keys() {
        assert!(untagged(b"").is_err());
        assert!(untagged(&[0x02, b'k']).is_err());
    }
}
