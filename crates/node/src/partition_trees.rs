//! This node's anti-entropy trees: one [`PartitionTree`] per partition it
//! stores keys of, kept in step with every write to the `data` keyspace
//! (F5).
//!
//! Every data write (a client write, a replica write, read repair, hint
//! delivery, an anti-entropy repair) runs on the single storage write lane
//! and reports the key's old and new stored bytes here
//! ([`PartitionTrees::observe`]); the key's hash moves in its segment by
//! XOR, with no rescan. A record that fails its checksum is left out of the
//! trees (treated as missing, so anti-entropy fetches a replica's copy);
//! when it is replaced, its partition's tree is rebuilt, since the tree may
//! still hold the hash the record had before it was damaged. A tree is never stored: [`PartitionTrees::rebuild`]
//! scans the `data` keyspace once at start, which reads every stored
//! object once (the cost for 1M keys is in the README's anti-entropy
//! section). Keeping trees in memory only means no second write per write
//! and nothing on disk that can disagree with the data.
//!
//! Only keys of buckets stored at the cluster's N are tracked: a bucket
//! with its own N has a different replica set per partition, and comparing
//! it with the cluster's replicas would copy it where it does not belong.
//! Such buckets converge through read repair and hinted handoff only.
//!
//! This module answers tree questions and computes hashes; it decides
//! nothing about exchanges (the core's [`ringkv_core::anti_entropy`]) and
//! does no IO beyond the start-up scan it is handed.

use ringkv_core::anti_entropy::{
    key_hash, segment_of, storage_position, BadRequest, ExchangeReply, KeySummary, PartitionTree,
    TreeQuery,
};
use ringkv_core::codec::{decode_object, encode_object, is_current_object_format};
use ringkv_core::key::ObjectKey;
use ringkv_core::layout::{partition_of, partition_range};
use ringkv_core::settings::ClusterSettings;
use ringkv_storage::{Keyspace, Storage, StorageError};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The bytes a key's hash is taken over: the stored bytes, or for a record
/// written by an earlier release the same object in today's encoding, so a
/// key stored in two formats on two replicas hashes the same. (A record that
/// does not decode hashes as stored: it differs, and repair overwrites it.)
fn canonical(raw: &[u8]) -> Cow<'_, [u8]> {
    if is_current_object_format(raw) {
        return Cow::Borrowed(raw);
    }
    match decode_object(raw).and_then(|o| encode_object(&o)) {
        Ok(current) => Cow::Owned(current),
        Err(_) => Cow::Borrowed(raw),
    }
}

/// Records read per page while rebuilding the trees.
const REBUILD_PAGE: usize = 4096;

/// One key's hash moving in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeChange {
    partition: u32,
    segment: u16,
    old: Option<u64>,
    new: Option<u64>,
}

/// Trees by partition.
type Trees = HashMap<u32, PartitionTree>; // order-free: looked up by partition; only summed

/// The trees of every partition this node stores keys of.
pub struct PartitionTrees {
    partitions: u32,
    settings: ClusterSettings,
    trees: Mutex<Trees>,
}

impl PartitionTrees {
    /// Empty trees for a cluster of `partitions` partitions.
    pub fn new(partitions: u32, settings: ClusterSettings) -> Self {
        PartitionTrees {
            partitions,
            settings,
            trees: Mutex::new(HashMap::new()),
        }
    }

    /// Trees built from one scan of `storage`'s `data` keyspace. Returns
    /// them and how many keys they hold.
    pub fn rebuild(
        storage: &dyn Storage,
        partitions: u32,
        settings: ClusterSettings,
    ) -> Result<(Self, u64), StorageError> {
        let trees = PartitionTrees::new(partitions, settings);
        let keys = trees.fill(storage, &[], None)?;
        Ok((trees, keys))
    }

    /// Adds every tracked record in `[start, end)` to the trees; returns how
    /// many. A corrupt record is left out (treated as missing, so
    /// anti-entropy fetches it from a replica) and logged.
    fn fill(
        &self,
        storage: &dyn Storage,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<u64, StorageError> {
        let mut start = start.to_vec();
        let mut keys = 0;
        loop {
            let page = storage.scan_skipping_corrupt(Keyspace::Data, &start, end, REBUILD_PAGE)?;
            let Some(next) = page.resume_after() else {
                break;
            };
            start = next;
            for damaged in &page.corrupt {
                tracing::warn!(key = ?damaged.key, reason = %damaged.reason, "a stored record is corrupt: treated as missing until a replica's copy replaces it");
            }
            for (key, raw) in &page.records {
                if self.tracks(key) {
                    self.observe(key, None, Some(raw));
                    keys += 1;
                }
            }
        }
        Ok(keys)
    }

    /// Rebuilds one partition's tree from storage: after a corrupt record
    /// was replaced, since the tree may still hold the hash the record had
    /// before it was damaged.
    pub fn rebuild_partition(
        &self,
        storage: &dyn Storage,
        partition: u32,
    ) -> Result<(), StorageError> {
        self.lock().remove(&partition);
        let (first, last) = partition_range(partition, self.partitions);
        let (start, end) = ObjectKey::storage_range(first, last);
        self.fill(storage, &start, end.as_deref())?;
        Ok(())
    }

    /// The partition of a storage key.
    pub fn partition_of_key(&self, storage_key: &[u8]) -> u32 {
        partition_of(storage_position(storage_key), self.partitions)
    }

    fn lock(&self) -> MutexGuard<'_, Trees> {
        self.trees.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the key (a storage key) belongs in the trees: its bucket is
    /// stored at the cluster's N.
    pub fn tracks(&self, storage_key: &[u8]) -> bool {
        let Some(bucket) = ObjectKey::bucket_of_storage_key(storage_key) else {
            return false;
        };
        let n = self.settings.buckets.get(bucket).and_then(|p| p.n);
        n.is_none_or(|n| n == self.settings.replication.n)
    }

    /// A key's stored bytes went from `old` to `new` (None: absent).
    pub fn observe(&self, storage_key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) {
        self.apply(self.change(storage_key, old, new));
    }

    /// What moving a key's stored bytes from `old` to `new` does to the
    /// trees, computed without touching them (so a writer can hash before
    /// it hands its bytes to storage, and [`PartitionTrees::apply`] once the
    /// write succeeded). `None`: nothing changes.
    pub fn change(
        &self,
        storage_key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Option<TreeChange> {
        if !self.tracks(storage_key) {
            return None;
        }
        let old = old.map(|raw| key_hash(storage_key, &canonical(raw)));
        let new = new.map(|raw| key_hash(storage_key, &canonical(raw)));
        (old != new).then(|| TreeChange {
            partition: partition_of(storage_position(storage_key), self.partitions),
            segment: segment_of(storage_key, self.partitions),
            old,
            new,
        })
    }

    /// Applies a change computed by [`PartitionTrees::change`].
    pub fn apply(&self, change: Option<TreeChange>) {
        let Some(c) = change else {
            return;
        };
        let partitions = self.partitions;
        self.lock()
            .entry(c.partition)
            .or_insert_with(|| PartitionTree::new(c.partition, partitions))
            .apply(c.segment, c.old, c.new);
    }

    /// Answers a tree question from this node's tree of the partition (an
    /// empty tree if it stores no key of it).
    pub fn answer(&self, query: &TreeQuery) -> Result<ExchangeReply, BadRequest> {
        let partition = query.partition();
        self.check_partition(partition)?;
        let trees = self.lock();
        match trees.get(&partition) {
            Some(tree) => tree.answer(query),
            None => PartitionTree::new(partition, self.partitions).answer(query),
        }
    }

    /// A partition a peer asks about must exist (`< Q`).
    pub fn check_partition(&self, partition: u32) -> Result<(), BadRequest> {
        if partition < self.partitions {
            return Ok(());
        }
        Err(BadRequest::WrongPartition {
            asked: partition,
            held: self.partitions,
        })
    }

    /// The summary of one stored record, if it is tracked.
    pub fn summary(&self, storage_key: Vec<u8>, raw: &[u8]) -> Option<KeySummary> {
        self.tracks(&storage_key).then(|| KeySummary {
            hash: key_hash(&storage_key, &canonical(raw)),
            storage_key,
        })
    }

    /// The root of `partition`'s tree (0: no key).
    pub fn root(&self, partition: u32) -> u64 {
        self.lock().get(&partition).map_or(0, PartitionTree::root)
    }

    /// How many keys the trees hold.
    pub fn len(&self) -> u64 {
        self.lock().values().map(PartitionTree::len).sum()
    }

    /// Whether the trees hold no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Q.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_about_a_partition_past_q_is_refused_not_a_panic() {
        let trees = PartitionTrees::new(16, ClusterSettings::default());
        assert!(trees.answer(&TreeQuery::Root { partition: 15 }).is_ok());
        for partition in [16, u32::MAX] {
            assert!(trees.answer(&TreeQuery::Root { partition }).is_err());
            assert!(trees.answer(&TreeQuery::Branches { partition }).is_err());
        }
    }
}
