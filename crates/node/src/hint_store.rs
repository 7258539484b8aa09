//! The hints this node holds as a stand-in (F3): durable, apart from normal
//! data, bounded per home.
//!
//! One record per (home, key) in the `hints` keyspace, keyed and bounded as
//! [`ringkv_core::hints`] describes. Every change of a record runs as one
//! job on the storage write lane (the same single thread as every data
//! write), so a hinted write and a delivery never interleave on one record:
//!
//! - [`HintStore::store`] merges an incoming object into the record, unless
//!   the home's limits ([`HintBook::admit`]) say no: then nothing is stored,
//!   the skip is counted, and the caller answers `HintsFull`. It returns
//!   once the record is durable, like a replica write.
//! - [`HintStore::remove_if_unchanged`] deletes a record only if it is still
//!   byte-for-byte what was delivered: a hint merged into it meanwhile keeps
//!   it for the next round. So a hint is deleted only after the home has
//!   acknowledged everything in it.
//!
//! The per-home counts and bytes live in memory and are rebuilt by one scan
//! of the keyspace on start (bounded: at most the limits' worth of hints).
//! Delivery itself is [`crate::handoff`].

use crate::commit::Committer;
use crate::metrics::Metrics;
use crate::storage_lanes::WriteTurn;
use ringkv_core::hints::{hint_key, target_prefix, Held, HintBook, HintLimits, HintRecord};
use ringkv_core::key::ObjectKey;
use ringkv_core::limits::MAX_CLOCK_ENTRIES;
use ringkv_core::protocol::ReplicaError;
use ringkv_core::siblings::Siblings;
use ringkv_core::NodeId;
use ringkv_storage::{Keyspace, StorageError, WriteBatch};
use std::sync::{Arc, Mutex, MutexGuard};

/// Wall-clock milliseconds, as the node reads them.
type WallClock = crate::coordinator::WallClock;

/// Records read per scan while rebuilding the book on start.
const REBUILD_SCAN_BATCH: usize = 1024;

/// This node's hints, as a stand-in for unreachable homes.
pub struct HintStore {
    committer: Arc<Committer>,
    limits: HintLimits,
    max_siblings: usize,
    book: Mutex<HintBook>,
    wall_clock: WallClock,
    metrics: Arc<Metrics>,
}

/// One stored hint, as delivery reads it.
pub struct StoredHint {
    pub hint_key: Vec<u8>,
    /// The record's bytes as stored (compared again before deleting).
    pub raw: Vec<u8>,
}

fn storage_failed(e: StorageError) -> ReplicaError {
    tracing::warn!(error = %e, "hint store call failed");
    match e {
        StorageError::Corrupt { .. } => ReplicaError::CorruptRecord,
        _ => ReplicaError::StorageFailed,
    }
}

impl HintStore {
    /// Opens the store over `committer`'s engine and rebuilds the per-home
    /// book with one scan of the `hints` keyspace. Records that do not
    /// decode are deleted (and logged): a hint is a copy, anti-entropy
    /// restores what it held.
    pub fn open(
        committer: Arc<Committer>,
        limits: HintLimits,
        max_siblings: usize,
        wall_clock: WallClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StorageError> {
        let mut book = HintBook::default();
        let storage = committer.storage().clone();
        let mut start: Vec<u8> = Vec::new();
        let mut damaged = WriteBatch::new();
        loop {
            let page =
                storage.scan_skipping_corrupt(Keyspace::Hints, &start, None, REBUILD_SCAN_BATCH)?;
            let Some(next) = page.resume_after() else {
                break;
            };
            start = next;
            for corrupt in &page.corrupt {
                tracing::warn!(key = ?corrupt.key, reason = %corrupt.reason, "dropping a corrupt hint record");
                damaged.delete(Keyspace::Hints, corrupt.key.clone());
            }
            for (key, raw) in &page.records {
                match ringkv_core::hints::parse_hint_key(key)
                    .filter(|_| HintRecord::decode(raw).is_ok())
                {
                    Some((target, _)) => book.replaced(&target, None, Some(raw.len() as u64)),
                    None => {
                        tracing::warn!(key = ?key, "dropping a hint record that does not decode");
                        damaged.delete(Keyspace::Hints, key.clone());
                    }
                }
            }
        }
        if !damaged.is_empty() {
            storage.write(damaged)?;
        }
        let store = HintStore {
            committer,
            limits,
            max_siblings,
            book: Mutex::new(book),
            wall_clock,
            metrics,
        };
        store.publish();
        Ok(store)
    }

    fn book(&self) -> MutexGuard<'_, HintBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The limits this store keeps to.
    pub fn limits(&self) -> &HintLimits {
        &self.limits
    }

    /// Every home with hints held here, and how much.
    pub fn held(&self) -> Vec<(NodeId, Held)> {
        let mut out: Vec<(NodeId, Held)> = self
            .book()
            .targets()
            .map(|(t, h)| (t.clone(), *h))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Updates the pending-hints gauges from the book.
    fn publish(&self) {
        for (target, held) in self.held() {
            self.metrics.hints_pending(target.as_str(), held.hints);
        }
    }

    /// Keeps `object` as a hint for `target`, merged into any hint already
    /// held for the key; returns once it is durable. `HintsFull` when the
    /// home's limits leave no room (the skip is counted).
    pub async fn store(
        self: &Arc<Self>,
        target: &NodeId,
        key: &ObjectKey,
        object: Siblings,
    ) -> Result<(), ReplicaError> {
        let this = self.clone();
        let (target2, storage_key) = (target.clone(), key.storage_key());
        let now_ms = (self.wall_clock)();
        let outcome = self
            .committer
            .lanes()
            .write(move |turn| this.store_on_lane(&target2, &storage_key, &object, now_ms, turn))
            .await;
        let ticket = match outcome {
            Ok(Ok(ticket)) => ticket,
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(storage_failed(StorageError::Engine(e.to_string()))),
        };
        self.committer.durable(ticket).await.map_err(storage_failed)
    }

    fn store_on_lane(
        &self,
        target: &NodeId,
        storage_key: &[u8],
        incoming: &Siblings,
        now_ms: u64,
        turn: &WriteTurn,
    ) -> Result<u64, ReplicaError> {
        let key = hint_key(target, storage_key);
        let storage = self.committer.storage();
        let old_raw = storage.get(Keyspace::Hints, &key).map_err(storage_failed)?;
        let old = old_raw
            .as_deref()
            .and_then(|raw| HintRecord::decode(raw).ok());
        let mut record = old.clone().unwrap_or(HintRecord {
            stored_at_ms: now_ms,
            object: Siblings::new(),
        });
        record.object.merge(incoming);
        if old.as_ref() == Some(&record) {
            return Ok(self.committer.last_ticket());
        }
        if record.object.clock().len() > MAX_CLOCK_ENTRIES {
            return Err(ReplicaError::ClockFull {
                limit: MAX_CLOCK_ENTRIES,
            });
        }
        if record.object.len() > self.max_siblings {
            return Err(ReplicaError::TooManySiblings {
                count: record.object.len(),
                limit: self.max_siblings,
            });
        }
        let raw = record
            .encode()
            .map_err(|e| storage_failed(StorageError::Engine(e.to_string())))?;
        let old_bytes = old_raw.as_ref().map(|r| r.len() as u64);
        let new_bytes = raw.len() as u64;
        let admitted = self
            .book()
            .admit(target, old_bytes, new_bytes, &self.limits);
        if let Err(skip) = admitted {
            self.metrics.hint_skipped(target.as_str());
            tracing::debug!(%target, %skip, "hint not stored");
            return Err(ReplicaError::HintsFull {
                target: target.clone(),
            });
        }
        let mut batch = WriteBatch::new();
        batch.put(Keyspace::Hints, key, raw);
        let ticket = self
            .committer
            .write_on_lane(batch, turn)
            .map_err(storage_failed)?;
        self.book().replaced(target, old_bytes, Some(new_bytes));
        self.metrics.hint_stored(target.as_str());
        self.publish();
        Ok(ticket)
    }

    /// The object held as a hint for (`target`, `key`), if any.
    pub fn read(&self, target: &NodeId, key: &ObjectKey) -> Result<Option<Siblings>, ReplicaError> {
        let raw = self
            .committer
            .storage()
            .get(Keyspace::Hints, &hint_key(target, &key.storage_key()))
            .map_err(storage_failed)?;
        Ok(raw
            .as_deref()
            .and_then(|raw| HintRecord::decode(raw).ok())
            .map(|r| r.object))
    }

    /// Up to `limit` hints for `target`, from `after` (exclusive) on.
    pub async fn next_hints(
        &self,
        target: &NodeId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<StoredHint>, StorageError> {
        let prefix = target_prefix(target);
        let start = match after {
            Some(a) => {
                let mut s = a.to_vec();
                s.push(0);
                s
            }
            None => prefix.clone(),
        };
        let end = prefix_end(&prefix);
        let storage = self.committer.storage().clone();
        let page = self
            .committer
            .lanes()
            .read(move || storage.scan(Keyspace::Hints, &start, end.as_deref(), limit))
            .await
            .map_err(|e| StorageError::Engine(e.to_string()))??;
        Ok(page
            .into_iter()
            .map(|(hint_key, raw)| StoredHint { hint_key, raw })
            .collect())
    }

    /// Deletes `hint` if its record is still exactly as read (delivered,
    /// expired, or its home left the cluster); returns whether it did.
    /// Durability is not awaited: a delete lost in a crash only means one
    /// more (harmless) delivery.
    pub async fn remove_if_unchanged(
        self: &Arc<Self>,
        target: &NodeId,
        hint: StoredHint,
    ) -> Result<bool, StorageError> {
        let this = self.clone();
        let target = target.clone();
        self.committer
            .lanes()
            .write(move |turn| {
                let storage = this.committer.storage();
                let current = storage.get(Keyspace::Hints, &hint.hint_key)?;
                if current.as_deref() != Some(&hint.raw[..]) {
                    return Ok(false);
                }
                let mut batch = WriteBatch::new();
                batch.delete(Keyspace::Hints, hint.hint_key);
                this.committer.write_on_lane(batch, turn)?;
                this.book()
                    .replaced(&target, Some(hint.raw.len() as u64), None);
                this.publish_target(&target);
                Ok(true)
            })
            .await
            .map_err(|e| StorageError::Engine(e.to_string()))?
    }

    fn publish_target(&self, target: &NodeId) {
        let held = self.book().held(target);
        self.metrics.hints_pending(target.as_str(), held.hints);
    }
}

/// The first key after every key starting with `prefix` (`None`: no such
/// key, the prefix is all 0xff).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"\x02n2"), Some(b"\x02n3".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
