//! [`MemStorage`]: a deterministic in-memory engine that models crashes.
//!
//! It keeps two views of every keyspace: `current` (what reads see) and
//! `durable` (what would survive a crash), plus the set of keys that differ
//! between them. `sync` copies the dirty keys from `current` to `durable`;
//! `crash` copies them back the other way, forgetting exactly the writes not
//! yet covered by a `sync`. `crash` models an OS crash or power loss; a
//! *process* crash loses nothing (the OS keeps what `write` handed it), so
//! simulating one needs no call here: restart the node on the same engine.
//! [`MemStorage::crashes`] counts power losses, so a simulated host can
//! derive a boot id that changes exactly when the OS would have restarted. Values are stored framed by [`crate::record`],
//! so checksum failures can be injected with [`MemStorage::corrupt`] and are
//! caught on read like on disk. All maps are `BTreeMap`s, so iteration order
//! and therefore every run is deterministic. This module must never read the
//! clock, use randomness or touch the filesystem.

use crate::batch::{Op, WriteBatch};
use crate::error::StorageError;
use crate::keyspace::Keyspace;
use crate::limits::check_key;
use crate::record;
use crate::storage::{scan_is_empty, CorruptRecord, Scanned, Storage};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One `BTreeMap` of framed records per keyspace, indexed by `Keyspace::index`.
type Tables = [BTreeMap<Vec<u8>, Vec<u8>>; 3];

#[derive(Default)]
struct State {
    /// What reads see: every write that returned.
    current: Tables,
    /// What survives `crash`: the state as of the last `sync`.
    durable: Tables,
    /// `(keyspace index, key)` of every key written since the last `sync`;
    /// outside this set `current` and `durable` agree.
    dirty: BTreeSet<(usize, Vec<u8>)>,
    /// How many times `crash` ran.
    crashes: u64,
}

impl State {
    fn apply(&mut self, op: Op) {
        let idx = op.keyspace().index();
        match op {
            Op::Put { key, value, .. } => {
                let framed = record::seal(&key, &value);
                self.dirty.insert((idx, key.clone()));
                self.current[idx].insert(key, framed);
            }
            Op::Delete { key, .. } => {
                self.current[idx].remove(&key);
                self.dirty.insert((idx, key));
            }
        }
    }

    /// Copies every dirty key's state from `from` into `to`, then clears `dirty`.
    fn settle(dirty: &mut BTreeSet<(usize, Vec<u8>)>, from: &Tables, to: &mut Tables) {
        for (idx, key) in std::mem::take(dirty) {
            match from[idx].get(&key) {
                Some(framed) => to[idx].insert(key, framed.clone()),
                None => to[idx].remove(&key),
            };
        }
    }
}

/// In-memory engine for tests and deterministic simulation.
///
/// Clone shares the same state (`Arc` inside). It models a crash:
/// [`MemStorage::crash`] forgets exactly the writes not yet covered by a
/// `sync` (so reads afterwards see only the durable state).
#[derive(Clone, Default)]
pub struct MemStorage {
    state: Arc<Mutex<State>>,
}

impl MemStorage {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a crash and restart: every write since the last `sync`
    /// returned is forgotten; everything synced is kept.
    pub fn crash(&self) {
        let mut guard = self.lock();
        let state = &mut *guard;
        State::settle(&mut state.dirty, &state.durable, &mut state.current);
        state.crashes += 1;
    }

    /// How many simulated power losses ([`MemStorage::crash`]) this engine
    /// has seen; a simulated host's boot id can be derived from it.
    pub fn crashes(&self) -> u64 {
        self.lock().crashes
    }

    /// Test hook: flips a byte of the stored (framed) record so checksum
    /// failures can be tested. Returns false if the key is absent.
    ///
    /// The damage is to the stored record: if that record is already
    /// durable, the durable copy is damaged too, so it survives `crash`.
    pub fn corrupt(&self, ks: Keyspace, key: &[u8]) -> bool {
        let mut guard = self.lock();
        let state = &mut *guard;
        let idx = ks.index();
        let Some(framed) = state.current[idx].get_mut(key) else {
            return false;
        };
        flip_last_byte(framed);
        if !state.dirty.contains(&(idx, key.to_vec())) {
            if let Some(durable) = state.durable[idx].get_mut(key) {
                flip_last_byte(durable);
            }
        }
        true
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Code holding this lock only panics on allocation failure, and each
        // key's entry is updated in one step, so a poisoned lock still guards
        // a usable state: keep serving rather than cascading the panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Flips every bit of the last byte: the payload's last byte, or the top
/// checksum byte for an empty payload. Either is caught by `record::open`.
fn flip_last_byte(framed: &mut [u8]) {
    if let Some(last) = framed.last_mut() {
        *last ^= 0xff;
    }
}

impl Storage for MemStorage {
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        check_key(key)?;
        let state = self.lock();
        match state.current[ks.index()].get(key) {
            None => Ok(None),
            Some(framed) => record::open(key, framed)
                .map(Some)
                .map_err(|reason| StorageError::corrupt(ks, key, reason)),
        }
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        batch.validate()?;
        let mut state = self.lock();
        for op in batch.into_ops() {
            state.apply(op);
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        State::settle(&mut state.dirty, &state.current, &mut state.durable);
        Ok(())
    }

    fn sync_blocks(&self) -> bool {
        false
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
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let state = self.lock();
        let range = state.current[ks.index()].range::<[u8], _>((Bound::Included(start), upper));
        for (key, framed) in range.take(limit) {
            match record::open(key, framed) {
                Ok(payload) => out.records.push((key.clone(), payload)),
                Err(reason) => out.corrupt.push(CorruptRecord {
                    key: key.clone(),
                    reason,
                }),
            }
        }
        Ok(out)
    }

    fn approximate_len(&self, ks: Keyspace) -> Result<u64, StorageError> {
        let len = self.lock().current[ks.index()].len();
        Ok(u64::try_from(len).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(s: &MemStorage, key: &str, value: &str) {
        let mut b = WriteBatch::new();
        b.put(Keyspace::Data, key, value);
        s.write(b).expect("write");
    }

    fn del(s: &MemStorage, key: &str) {
        let mut b = WriteBatch::new();
        b.delete(Keyspace::Data, key);
        s.write(b).expect("write");
    }

    fn get(s: &MemStorage, key: &str) -> Option<String> {
        let v = s.get(Keyspace::Data, key.as_bytes()).expect("get");
        v.map(|v| String::from_utf8(v).expect("utf8"))
    }

    #[test]
    fn crash_keeps_synced_and_forgets_unsynced() {
        let s = MemStorage::new();
        put(&s, "kept", "1");
        put(&s, "overwritten", "old");
        put(&s, "deleted", "x");
        s.sync().expect("sync");
        put(&s, "overwritten", "new");
        del(&s, "deleted");
        put(&s, "lost", "2");
        assert_eq!(get(&s, "lost").as_deref(), Some("2"));

        assert_eq!(s.crashes(), 0);
        s.clone().crash();
        assert_eq!(s.crashes(), 1, "clones share the engine and its count");

        let table = [
            ("kept", Some("1")),
            ("overwritten", Some("old")),
            ("deleted", Some("x")),
            ("lost", None),
        ];
        for (key, want) in table {
            assert_eq!(get(&s, key).as_deref(), want, "{key}");
        }
    }

    #[test]
    fn a_scan_skipping_corrupt_records_names_them_and_returns_the_rest() {
        let s = MemStorage::new();
        for k in ["a", "b", "c"] {
            put(&s, k, "v");
        }
        assert!(s.corrupt(Keyspace::Data, b"b"));
        assert!(matches!(
            s.scan(Keyspace::Data, b"", None, 10),
            Err(StorageError::Corrupt { .. })
        ));
        let scanned = s
            .scan_skipping_corrupt(Keyspace::Data, b"", None, 10)
            .unwrap();
        let keys: Vec<&[u8]> = scanned.records.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [b"a".as_slice(), b"c".as_slice()]);
        assert_eq!(scanned.corrupt.len(), 1);
        assert_eq!(scanned.corrupt[0].key, b"b");
        let two = s
            .scan_skipping_corrupt(Keyspace::Data, b"", None, 2)
            .unwrap();
        assert_eq!(
            (two.records.len(), two.corrupt.len()),
            (1, 1),
            "the limit counts both"
        );
    }

    #[test]
    fn corruption_of_a_durable_record_survives_crash() {
        let s = MemStorage::new();
        put(&s, "k", "v");
        s.sync().expect("sync");
        assert!(s.corrupt(Keyspace::Data, b"k"));
        s.crash();
        assert!(matches!(
            s.get(Keyspace::Data, b"k"),
            Err(StorageError::Corrupt { .. })
        ));
        assert!(!s.corrupt(Keyspace::Data, b"absent"));
        assert!(!s.corrupt(Keyspace::Hints, b"k"));
    }

    #[test]
    fn corruption_of_an_unsynced_record_is_forgotten_by_crash() {
        let s = MemStorage::new();
        put(&s, "k", "old");
        s.sync().expect("sync");
        put(&s, "k", "new");
        assert!(s.corrupt(Keyspace::Data, b"k"));
        s.crash();
        assert_eq!(get(&s, "k").as_deref(), Some("old"));
    }
}
