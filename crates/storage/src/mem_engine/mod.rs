//! [`MemStorage`]: a deterministic in-memory engine that models crashes.
//!
//! It keeps two views of every keyspace: `current` (what reads see) and
//! `durable` (what would survive a power loss), the set of keys that differ
//! between them, and the batches written since the last `sync`, in order.
//! `sync` copies the dirty keys from `current` to `durable`. A power loss
//! turns `current` back into `durable` plus some of the unsynced batches:
//!
//! - [`MemStorage::crash`] keeps none of them: the "lose every unsynced
//!   write" case.
//! - [`MemStorage::crash_keeping`] keeps a seeded random subset, the way a
//!   disk that wrote some pages and not others would. A batch is the atomic
//!   unit (kept whole or dropped whole), kept batches apply in write order,
//!   and the subset need not be a prefix: batch 3 may survive while batch 2
//!   is lost. That is stricter than fjall, whose journal replay stops at the
//!   first damaged batch (a prefix), and exactly what the [`Storage`] trait
//!   allows: nothing unsynced is promised, in any order.
//!
//! A *process* crash loses nothing (the OS keeps what `write` handed it), so
//! simulating one needs no call here: restart the node on the same engine.
//! [`MemStorage::crashes`] counts power losses, so a simulated host can
//! derive a boot id that changes exactly when the OS would have restarted.
//!
//! [`MemStorage::with_lying_sync`] builds an engine whose `sync` returns `Ok`
//! and makes nothing durable: a test-only fault, the disk (or engine) that
//! acknowledges a flush it never did, so tests can show that a power loss
//! then loses acknowledged writes, i.e. that they can fail.
//!
//! Values are stored framed by [`crate::record`], so checksum failures can
//! be injected with [`MemStorage::corrupt`] and are caught on read like on
//! disk. All maps are `BTreeMap`s and the power-loss choice is a pure
//! function of the seed, so every run is deterministic. This module must
//! never read the clock, use ambient randomness or touch the filesystem.

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

/// What one unsynced batch did, key by key in write order: the framed
/// record it stored, or `None` for a delete.
type BatchEffects = Vec<(usize, Vec<u8>, Option<Vec<u8>>)>;

#[derive(Default)]
struct State {
    /// What reads see: every write that returned.
    current: Tables,
    /// What survives any power loss: the state as of the last `sync`.
    durable: Tables,
    /// `(keyspace index, key)` of every key written since the last `sync`;
    /// outside this set `current` and `durable` agree.
    dirty: BTreeSet<(usize, Vec<u8>)>,
    /// The batches written since the last `sync`, oldest first: the
    /// candidates a power loss may keep.
    unsynced: Vec<BatchEffects>,
    /// How many power losses ran.
    crashes: u64,
    /// `sync` returns `Ok` without making anything durable (a test fault).
    lying_sync: bool,
    /// How many of the next `sync` calls fail (a test fault: an fsync
    /// error), making nothing durable.
    failing_syncs: u32,
    /// What [`Storage::simulated_sync_ms`] answers.
    sync_ms: u64,
}

impl State {
    fn apply(&mut self, ops: Vec<Op>) {
        let mut effects = BatchEffects::with_capacity(ops.len());
        for op in ops {
            let idx = op.keyspace().index();
            match op {
                Op::Put { key, value, .. } => {
                    let framed = record::seal(&key, &value);
                    self.dirty.insert((idx, key.clone()));
                    effects.push((idx, key.clone(), Some(framed.clone())));
                    self.current[idx].insert(key, framed);
                }
                Op::Delete { key, .. } => {
                    self.current[idx].remove(&key);
                    self.dirty.insert((idx, key.clone()));
                    effects.push((idx, key, None));
                }
            }
        }
        if !effects.is_empty() {
            self.unsynced.push(effects);
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

    /// A power loss: the batches `keep` picks (by position among the
    /// unsynced ones) reach `durable` in write order, the rest are lost,
    /// and reads see `durable` again.
    fn power_loss(&mut self, keep: impl Fn(usize) -> bool) -> PowerLoss {
        // A sync failure armed for the old boot's IO does not outlive it.
        self.failing_syncs = 0;
        let unsynced = std::mem::take(&mut self.unsynced);
        let mut report = PowerLoss {
            unsynced: unsynced.len(),
            kept: Vec::new(),
        };
        for (position, effects) in unsynced.into_iter().enumerate() {
            if !keep(position) {
                continue;
            }
            report.kept.push(position);
            for (idx, key, framed) in effects {
                match framed {
                    Some(framed) => self.durable[idx].insert(key, framed),
                    None => self.durable[idx].remove(&key),
                };
            }
        }
        State::settle(&mut self.dirty, &self.durable, &mut self.current);
        self.crashes += 1;
        report
    }
}

/// What a power loss did to the batches written since the last `sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerLoss {
    /// How many batches were unsynced when the power went.
    pub unsynced: usize,
    /// Which of them survived, by position (0 = the oldest), ascending.
    pub kept: Vec<usize>,
}

/// Whether the power loss seeded with `seed` keeps the unsynced batch at
/// `position`: one splitmix64 draw per batch, kept on an odd draw (about
/// half of them, independently, so any subset can come out).
fn keeps_batch(seed: u64, position: usize) -> bool {
    let mut z = seed.wrapping_add((position as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 1 == 1
}

/// In-memory engine for tests and deterministic simulation.
///
/// Clone shares the same state (`Arc` inside). It models power loss:
/// [`MemStorage::crash`] forgets exactly the writes not yet covered by a
/// `sync`, [`MemStorage::crash_keeping`] keeps a seeded subset of them.
#[derive(Clone, Default)]
pub struct MemStorage {
    state: Arc<Mutex<State>>,
}

impl MemStorage {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// A test fault: an engine whose `sync` returns `Ok` but makes nothing
    /// durable, so every power loss drops (some of) the writes it claimed
    /// to have synced. Clones share the lie.
    pub fn with_lying_sync() -> Self {
        let engine = Self::default();
        engine.lock().lying_sync = true;
        engine
    }

    /// A test fault: the next `count` syncs fail with an engine error and
    /// make nothing durable (an fsync that returned EIO). Clones share it;
    /// a power loss disarms it.
    pub fn fail_next_syncs(&self, count: u32) {
        self.lock().failing_syncs = count;
    }

    /// This engine, telling callers that a sync takes `sync_ms` of their
    /// (simulated) time ([`Storage::simulated_sync_ms`]), so that unsynced
    /// writes exist between steps of a simulation. Clones share it.
    pub fn with_simulated_sync_ms(self, sync_ms: u64) -> Self {
        self.lock().sync_ms = sync_ms;
        self
    }

    /// Simulates a power loss and restart: every write since the last
    /// `sync` returned is forgotten; everything synced is kept.
    pub fn crash(&self) {
        self.lock().power_loss(|_| false);
    }

    /// Simulates a power loss that keeps a random subset of the batches
    /// written since the last `sync` (whole batches, in write order, not
    /// necessarily a prefix), chosen by `seed`; everything synced is kept.
    /// The same seed on the same history keeps the same batches.
    pub fn crash_keeping(&self, seed: u64) -> PowerLoss {
        self.lock()
            .power_loss(|position| keeps_batch(seed, position))
    }

    /// How many simulated power losses ([`MemStorage::crash`],
    /// [`MemStorage::crash_keeping`]) this engine
    /// has seen; a simulated host's boot id can be derived from it.
    pub fn crashes(&self) -> u64 {
        self.lock().crashes
    }

    /// Test hook: flips a byte of the stored (framed) record so checksum
    /// failures can be tested. Returns false if the key is absent.
    ///
    /// The damage is to the stored record: if that record is already
    /// durable, the durable copy is damaged too, so it survives `crash`.
    /// An unsynced record is damaged only in what reads see: a power loss
    /// either drops its batch or keeps the bytes the batch wrote.
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
        self.lock().apply(batch.into_ops());
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.lying_sync {
            return Ok(());
        }
        if state.failing_syncs > 0 {
            state.failing_syncs -= 1;
            return Err(StorageError::Engine(
                "sync: simulated fsync failure (EIO)".into(),
            ));
        }
        State::settle(&mut state.dirty, &state.current, &mut state.durable);
        state.unsynced.clear();
        Ok(())
    }

    fn sync_blocks(&self) -> bool {
        false
    }

    fn simulated_sync_ms(&self) -> u64 {
        self.lock().sync_ms
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
mod tests;
