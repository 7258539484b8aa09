//! A batch merge: many keys' incoming copies merged into the local replica
//! together with caller-chosen `Meta` records, as one atomic storage batch
//! (one write-lane job, one engine commit).
//!
//! Partition streaming ([`crate::streaming`]) needs this: a chunk's
//! entries and the cursor saying they are merged reach storage together or
//! not at all, so a cursor read back after any crash never claims a key the
//! data lacks. Each key is merged exactly as [`LocalReplica::merge`] merges
//! one (a causal merge; a corrupt record is replaced and its partition's
//! tree rebuilt; a merge that changes nothing writes nothing). A key whose
//! merge would pass the sibling or clock limit keeps its local copy and is
//! counted as refused, like a refused replica write, and the batch goes on,
//! so one over-full key cannot stall a stream. Two entries for one key are
//! merged with each other first. Every tree change is computed before the
//! commit and applied after it succeeds, on the write lane, so no other
//! write moves the trees in between.

use super::{merge_stored, storage_error, LocalReplica, Merged};
use crate::commit::Committer;
use crate::partition_trees::PartitionTrees;
use crate::storage_lanes::WriteTurn;
use ringkv_core::codec::encode_object;
use ringkv_core::key::ObjectKey;
use ringkv_core::protocol::ReplicaError;
use ringkv_core::siblings::Siblings;
use ringkv_storage::{Keyspace, StorageError, WriteBatch};
use std::collections::{BTreeMap, BTreeSet};

/// What a batch merge did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchMerged {
    /// Wait on this with [`LocalReplica::durable`].
    pub ticket: u64,
    /// Keys whose stored copy changed.
    pub stored: u64,
    /// Keys that already held everything incoming.
    pub unchanged: u64,
    /// Keys kept as they were because the merge would pass a limit.
    pub refused: u64,
}

impl LocalReplica {
    /// Merges every entry into the local copy of its key and puts every
    /// `meta` record, in one atomic batch on the write lane. Returns once
    /// applied, not durable: wait on [`BatchMerged::ticket`].
    pub async fn merge_batch(
        &self,
        entries: Vec<(ObjectKey, Siblings)>,
        meta: Vec<(Vec<u8>, Vec<u8>)>,
        max_siblings: usize,
    ) -> Result<BatchMerged, ReplicaError> {
        let (committer, trees) = (self.committer.clone(), self.trees.clone());
        let job = move |turn: &WriteTurn| {
            merge_batch_on_lane(&committer, &trees, entries, meta, max_siblings, turn)
        };
        match self.lanes().write(job).await {
            Ok(merged) => merged,
            Err(e) => Err(storage_error(e.into())),
        }
    }
}

fn merge_batch_on_lane(
    committer: &Committer,
    trees: &PartitionTrees,
    entries: Vec<(ObjectKey, Siblings)>,
    meta: Vec<(Vec<u8>, Vec<u8>)>,
    max_siblings: usize,
    turn: &WriteTurn,
) -> Result<BatchMerged, ReplicaError> {
    let storage = &**committer.storage();
    let failed = |e: StorageError| storage_error(e.into());
    let mut incoming: BTreeMap<Vec<u8>, Siblings> = BTreeMap::new();
    for (key, object) in entries {
        incoming
            .entry(key.storage_key())
            .or_default()
            .merge(&object);
    }
    let mut batch = WriteBatch::new();
    let mut changes = Vec::with_capacity(incoming.len());
    let mut damaged = BTreeSet::new();
    let mut out = BatchMerged::default();
    for (storage_key, object) in incoming {
        match merge_stored(storage, &storage_key, &object, max_siblings) {
            Ok(Merged::Unchanged) => out.unchanged += 1,
            Ok(Merged::Store {
                old_raw,
                object,
                replaced_corrupt,
            }) => {
                let encoded = encode_object(&object)
                    .map_err(|e| failed(StorageError::Engine(e.to_string())))?;
                changes.push(trees.change(&storage_key, old_raw.as_deref(), Some(&encoded)));
                if replaced_corrupt {
                    damaged.insert(trees.partition_of_key(&storage_key));
                }
                batch.put(Keyspace::Data, storage_key, encoded);
                out.stored += 1;
            }
            Err(e @ (ReplicaError::ClockFull { .. } | ReplicaError::TooManySiblings { .. })) => {
                tracing::warn!(error = %e, "a merged key passes a limit; its local copy is kept");
                out.refused += 1;
            }
            Err(e) => return Err(e),
        }
    }
    for (key, value) in meta {
        batch.put(Keyspace::Meta, key, value);
    }
    out.ticket = if batch.is_empty() {
        committer.last_ticket()
    } else {
        committer.write_on_lane(batch, turn).map_err(failed)?
    };
    for change in changes {
        trees.apply(change);
    }
    for partition in damaged {
        trees
            .rebuild_partition(storage, partition)
            .map_err(failed)?;
    }
    Ok(out)
}
