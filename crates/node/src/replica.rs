//! The local replica: this node's copy of the keys it holds.
//!
//! Three operations on one key's [`Siblings`]:
//!
//! - [`LocalReplica::read`]: the stored object, checksum-verified.
//! - [`LocalReplica::merge`]: merge an object sent by a coordinator (or, later,
//!   by read repair, hinted handoff and anti-entropy) into the local copy.
//! - [`LocalReplica::update`]: apply a client write as its coordinator,
//!   minting the new version's dot from the local clock.
//!
//! No engine call runs on an async worker. A read runs on the storage read
//! lane; `update` and `merge` run their whole read-modify-write, including
//! the engine commit, as one job on the single write lane (see
//! [`crate::storage_lanes`]). That lane serialises every write, so two writes
//! of one key never interleave without any per-key lock (the 1024 stripe
//! locks this module used to hold are gone). Waiting for durability (group
//! commit) happens back on the caller's task, after the job, so nothing
//! waits for an fsync on the write lane either. For the in-memory engine the
//! lanes run inline: no hop, no thread, a deterministic simulation.
//!
//! A merge over a record that fails its checksum treats it as missing: the
//! incoming copy (from another replica: a replica write, read repair,
//! anti-entropy) replaces it, so corruption heals from replicas.
//!
//! A merge that changes nothing writes nothing and syncs nothing: when the
//! merged object equals the local copy, there is no commit. The local copy
//! is then exactly as durable as the write that produced it, which under
//! `fsync = always` may not be synced yet (it may have landed a moment ago).
//! We do not track each key's last ticket; the merge waits instead for the
//! durable point to reach [`Committer::last_ticket`], read on the write lane
//! right after the load, which covers the write that produced the copy. If
//! everything is already synced (the common case for hinted handoff and
//! anti-entropy) that returns at once and causes no sync; otherwise it
//! shares the next group-commit sync, which the pending writes need anyway.
//!
//! Every [`ReplicaError`] is made by [`storage_error`], so its shape can
//! change in one place.

use crate::commit::Committer;
use crate::partition_trees::PartitionTrees;
use crate::storage_lanes::{LaneError, StorageLanes, WriteTurn};
use bytes::Bytes;
use ringkv_core::codec::{decode_object, encode_object};
use ringkv_core::key::ObjectKey;
use ringkv_core::limits::MAX_CLOCK_ENTRIES;
use ringkv_core::protocol::{OpError, ReplicaError};
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use ringkv_storage::{Keyspace, Storage, StorageError, WriteBatch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// This node's replica store.
pub struct LocalReplica {
    /// The actor this node mints dots under (see [`crate::actor`]).
    actor: Arc<NodeId>,
    committer: Arc<Committer>,
    /// The anti-entropy trees every data write moves.
    trees: Arc<PartitionTrees>,
    /// Set while a rebuilt store refills ([`crate::refill`]): reads are
    /// refused with [`ReplicaError::Refilling`] (writes and merges are not).
    refilling: AtomicBool,
}

/// Why the local replica could not serve a read or a merge.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The storage lane refused or lost the call (e.g. its queue is full).
    #[error(transparent)]
    Lane(#[from] LaneError),
}

/// The one place a [`ReplicaError`] is made.
/// The detail is logged here, on the replica; only the kind crosses the wire.
pub(crate) fn storage_error(e: LocalError) -> ReplicaError {
    tracing::warn!(error = %e, "local replica call failed");
    match e {
        LocalError::Storage(StorageError::Corrupt { .. }) => ReplicaError::CorruptRecord,
        LocalError::Storage(_) => ReplicaError::StorageFailed,
        LocalError::Lane(LaneError::Overloaded { .. }) => ReplicaError::Overloaded,
        LocalError::Lane(LaneError::Stopped { .. }) => ReplicaError::ShuttingDown,
        LocalError::Lane(LaneError::Panicked { .. }) => ReplicaError::StorageFailed,
    }
}

/// A lane failure during a client write, as the client sees it.
fn lane_op_error(e: LaneError) -> OpError {
    match e {
        LaneError::Overloaded { capacity, .. } => OpError::Overloaded { limit: capacity },
        LaneError::Stopped { .. } => OpError::Internal(format!("local replica: {e}")),
        LaneError::Panicked { .. } => OpError::Internal(format!("local replica: {e}")),
    }
}

fn load(storage: &dyn Storage, storage_key: &[u8]) -> Result<Option<Siblings>, StorageError> {
    Ok(load_raw(storage, storage_key)?.map(|(_, object)| object))
}

/// The stored object and the bytes it was stored as.
fn load_raw(
    storage: &dyn Storage,
    storage_key: &[u8],
) -> Result<Option<(Vec<u8>, Siblings)>, StorageError> {
    let Some(raw) = storage.get(Keyspace::Data, storage_key)? else {
        return Ok(None);
    };
    match decode_object(&raw) {
        Ok(object) => Ok(Some((raw, object))),
        Err(e) => Err(StorageError::Corrupt {
            keyspace: Keyspace::Data.name(),
            key_hex: storage_key.iter().map(|b| format!("{b:02x}")).collect(),
            reason: format!("stored object does not decode: {e}"),
        }),
    }
}

/// Stores `object` over the record that held `old_raw`, and moves the
/// key's hash in its anti-entropy tree.
fn store(
    committer: &Committer,
    trees: &PartitionTrees,
    storage_key: Vec<u8>,
    old_raw: Option<&[u8]>,
    object: &Siblings,
    turn: &WriteTurn,
) -> Result<u64, StorageError> {
    let encoded = encode_object(object).map_err(|e| StorageError::Engine(e.to_string()))?;
    let change = trees.change(&storage_key, old_raw, Some(&encoded));
    let mut batch = WriteBatch::new();
    batch.put(Keyspace::Data, storage_key, encoded);
    let ticket = committer.write_on_lane(batch, turn)?;
    trees.apply(change);
    Ok(ticket)
}

/// What merging an incoming copy into the stored one gives.
enum Merged {
    /// The stored copy already holds everything incoming: write nothing.
    Unchanged,
    /// Store `object` over the record that held `old_raw`.
    Store {
        old_raw: Option<Vec<u8>>,
        object: Siblings,
        /// The record it replaces failed its checks (its partition's tree
        /// may still hold the damaged record's old hash).
        replaced_corrupt: bool,
    },
}

/// Merges `incoming` into the stored copy of `storage_key` (on the write
/// lane), bounded like a client write, so an object can never grow past
/// what one frame carries: more than `max_siblings` versions, or a clock
/// past `MAX_CLOCK_ENTRIES` (which would make the key undecodable), is
/// refused with a typed error and the stored copy is kept.
fn merge_stored(
    storage: &dyn Storage,
    storage_key: &[u8],
    incoming: &Siblings,
    max_siblings: usize,
) -> Result<Merged, ReplicaError> {
    let mut replaced_corrupt = false;
    let (old_raw, local) = match load_raw(storage, storage_key) {
        Ok(Some((raw, local))) => (Some(raw), local),
        Ok(None) => (None, Siblings::default()),
        // A damaged record is treated as missing: the incoming copy, from
        // another replica, replaces it (the record is never served).
        Err(StorageError::Corrupt { reason, .. }) => {
            tracing::warn!(%reason, "replacing a corrupt record with a replica's copy");
            replaced_corrupt = true;
            (None, Siblings::default())
        }
        Err(e) => return Err(storage_error(e.into())),
    };
    let mut merged = local.clone();
    merged.merge(incoming);
    if merged == local {
        return Ok(Merged::Unchanged);
    }
    if merged.clock().len() > MAX_CLOCK_ENTRIES {
        return Err(ReplicaError::ClockFull {
            limit: MAX_CLOCK_ENTRIES,
        });
    }
    if merged.len() > max_siblings {
        return Err(ReplicaError::TooManySiblings {
            count: merged.len(),
            limit: max_siblings,
        });
    }
    Ok(Merged::Store {
        old_raw,
        object: merged,
        replaced_corrupt,
    })
}

/// The read-modify-write of a merge (on the write lane). Returns the ticket
/// to wait on: the new write's, or, if the merge changed nothing, the latest
/// write's (which covers the one that produced the local copy).
fn merge_on_lane(
    committer: &Committer,
    trees: &PartitionTrees,
    storage_key: Vec<u8>,
    incoming: &Siblings,
    max_siblings: usize,
    turn: &WriteTurn,
) -> Result<u64, ReplicaError> {
    let storage = |e: StorageError| storage_error(e.into());
    let merged = merge_stored(&**committer.storage(), &storage_key, incoming, max_siblings)?;
    let Merged::Store {
        old_raw,
        object,
        replaced_corrupt,
    } = merged
    else {
        return Ok(committer.last_ticket());
    };
    let key = storage_key.clone();
    let ticket =
        store(committer, trees, key, old_raw.as_deref(), &object, turn).map_err(storage)?;
    if replaced_corrupt {
        // The tree may still hold the damaged record's old hash.
        let partition = trees.partition_of_key(&storage_key);
        trees
            .rebuild_partition(&**committer.storage(), partition)
            .map_err(storage)?;
    }
    Ok(ticket)
}

/// What a client write writes: the value (None: a delete), when, and when
/// it expires (None: never).
pub struct Written {
    pub value: Option<Bytes>,
    pub timestamp_ms: u64,
    pub expires_ms: Option<u64>,
}

/// A client write to apply locally (moved onto the write lane).
struct Update {
    actor: Arc<NodeId>,
    storage_key: Vec<u8>,
    context: VersionVector,
    written: Written,
    max_siblings: usize,
}

/// The read-modify-write of a client write (on the write lane).
fn update_on_lane(
    committer: &Committer,
    trees: &PartitionTrees,
    u: Update,
    turn: &WriteTurn,
) -> Result<(Siblings, VersionVector, u64), OpError> {
    let internal = |e: StorageError| OpError::Internal(format!("local replica: {e}"));
    let (old_raw, mut object) =
        match load_raw(&**committer.storage(), &u.storage_key).map_err(internal)? {
            Some((raw, object)) => (Some(raw), object),
            None => (None, Siblings::default()),
        };
    let before = object.clock().get(&u.actor);
    let Written {
        value,
        timestamp_ms,
        expires_ms,
    } = u.written;
    let dot = object.update_expiring(&u.context, &u.actor, value, timestamp_ms, expires_ms);
    let writer_context = Siblings::writer_context(&u.context, &dot, before);
    if object.clock().len() > MAX_CLOCK_ENTRIES {
        return Err(OpError::BadRequest(format!(
            "the context would grow this key's clock past {MAX_CLOCK_ENTRIES} entries"
        )));
    }
    if object.len() > u.max_siblings {
        return Err(OpError::TooManySiblings {
            count: object.len(),
            limit: u.max_siblings,
        });
    }
    let ticket = store(
        committer,
        trees,
        u.storage_key,
        old_raw.as_deref(),
        &object,
        turn,
    )
    .map_err(internal)?;
    Ok((object, writer_context, ticket))
}

impl LocalReplica {
    /// A replica minting dots under `actor`, storing through `committer`
    /// (whose lanes it runs its engine calls on).
    pub fn new(actor: NodeId, committer: Arc<Committer>, trees: Arc<PartitionTrees>) -> Self {
        LocalReplica {
            actor: Arc::new(actor),
            committer,
            trees,
            refilling: AtomicBool::new(false),
        }
    }

    /// Starts (`true`) or ends refusing reads while a rebuilt store refills.
    pub fn set_refilling(&self, refilling: bool) {
        self.refilling.store(refilling, Ordering::SeqCst);
    }

    /// Whether reads are refused because the store is refilling.
    pub fn is_refilling(&self) -> bool {
        self.refilling.load(Ordering::SeqCst)
    }

    /// The anti-entropy trees of the keys this replica stores.
    pub fn trees(&self) -> &Arc<PartitionTrees> {
        &self.trees
    }

    /// The storage engine under this replica.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        self.committer.storage()
    }

    pub(crate) fn lanes(&self) -> &StorageLanes {
        self.committer.lanes()
    }

    pub(crate) fn committer(&self) -> &Arc<Committer> {
        &self.committer
    }

    /// Reads the local copy of a key, on the read lane.
    pub async fn read(&self, key: &ObjectKey) -> Result<Option<Siblings>, ReplicaError> {
        if self.is_refilling() {
            return Err(ReplicaError::Refilling);
        }
        let storage = self.committer.storage().clone();
        let storage_key = key.storage_key();
        match self
            .lanes()
            .read(move || load(&*storage, &storage_key))
            .await
        {
            Ok(found) => found.map_err(|e| storage_error(e.into())),
            Err(e) => Err(storage_error(e.into())),
        }
    }

    /// Reads the local copy at once, on the caller's thread, if the read may
    /// run inline (a non-blocking engine, or the read gate admits it);
    /// `None` means: use [`LocalReplica::read`] or [`LocalReplica::read_detached`].
    pub fn read_now(&self, key: &ObjectKey) -> Option<Result<Option<Siblings>, ReplicaError>> {
        if self.is_refilling() {
            return Some(Err(ReplicaError::Refilling));
        }
        let storage = &**self.committer.storage();
        let found = self
            .lanes()
            .read_inline(|| load(storage, &key.storage_key()))?;
        Some(match found {
            Ok(found) => found.map_err(|e| storage_error(e.into())),
            Err(e) => Err(storage_error(e.into())),
        })
    }

    /// Reads the local copy on the read lane and hands the result to `done`
    /// on the lane's thread (or at once, if the lane refuses the job), so a
    /// caller that only forwards the answer needs no task of its own.
    pub fn read_detached(
        &self,
        key: &ObjectKey,
        done: impl FnOnce(Result<Option<Siblings>, ReplicaError>) + Send + 'static,
    ) {
        if self.is_refilling() {
            return done(Err(ReplicaError::Refilling));
        }
        let committer = self.committer.clone();
        let storage_key = key.storage_key();
        let done = Arc::new(Mutex::new(Some(done)));
        let finish = done.clone();
        let submitted = self.lanes().spawn_read(move || {
            let found =
                load(&**committer.storage(), &storage_key).map_err(|e| storage_error(e.into()));
            if let Some(done) = finish.lock().unwrap_or_else(|p| p.into_inner()).take() {
                done(found);
            }
        });
        if let Err(e) = submitted {
            if let Some(done) = done.lock().unwrap_or_else(|p| p.into_inner()).take() {
                done(Err(storage_error(e.into())));
            }
        }
    }

    /// Merges `incoming` into the local copy; returns once the result is
    /// durable. A merge that changes nothing writes nothing (module doc).
    pub async fn merge(
        &self,
        key: &ObjectKey,
        incoming: Siblings,
        max_siblings: usize,
    ) -> Result<(), ReplicaError> {
        let (committer, trees) = (self.committer.clone(), self.trees.clone());
        let storage_key = key.storage_key();
        let ticket = match self
            .lanes()
            .write(move |turn| {
                merge_on_lane(
                    &committer,
                    &trees,
                    storage_key,
                    &incoming,
                    max_siblings,
                    turn,
                )
            })
            .await
        {
            Ok(Ok(ticket)) => ticket,
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(storage_error(e.into())),
        };
        self.durable(ticket).await
    }

    /// Coordinates a client write locally: supersedes what `context` covers,
    /// adds the written value (None = delete; with its expiry) with a fresh dot, and writes the new
    /// object to the engine (on the write lane). Returns it, the context to
    /// hand back to the writer ([`Siblings::writer_context`]: what it has
    /// seen, never siblings it has not), and the ticket to wait on for durability
    /// ([`LocalReplica::durable`]), so the coordinator can send it to the
    /// other replicas while the local fsync runs. Refuses to grow past
    /// `max_siblings` versions; a full write lane is `OpError::Overloaded`.
    pub async fn update(
        &self,
        key: &ObjectKey,
        context: &VersionVector,
        written: Written,
        max_siblings: usize,
    ) -> Result<(Siblings, VersionVector, u64), OpError> {
        let committer = self.committer.clone();
        let update = Update {
            actor: self.actor.clone(),
            storage_key: key.storage_key(),
            context: context.clone(),
            written,
            max_siblings,
        };
        let trees = self.trees.clone();
        self.lanes()
            .write(move |turn| update_on_lane(&committer, &trees, update, turn))
            .await
            .map_err(lane_op_error)?
    }

    /// Rebuilds `partition`'s anti-entropy tree from storage, verifying
    /// every record's checksum, as one write-lane job (so no write moves the
    /// tree meanwhile). A record damaged since it was written (bit rot) is
    /// then missing from the tree, and anti-entropy replaces it.
    pub async fn rebuild_tree(&self, partition: u32) -> Result<(), ReplicaError> {
        let (committer, trees) = (self.committer.clone(), self.trees.clone());
        let rebuilt = self
            .lanes()
            .write(move |_turn| trees.rebuild_partition(&**committer.storage(), partition))
            .await;
        match rebuilt {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(storage_error(LocalError::Storage(e))),
            Err(e) => Err(storage_error(e.into())),
        }
    }

    /// Deletes the key's copy if it is exactly `object` (a tombstone every
    /// home holds; see [`ringkv_core::tombstones`]), as one write-lane job,
    /// so a write that lands meanwhile keeps the key. Returns whether it
    /// deleted. Durability is not awaited: a delete lost in a crash leaves
    /// the tombstone, which is reaped again.
    pub async fn reap_if_unchanged(
        &self,
        key: &ObjectKey,
        object: Siblings,
    ) -> Result<bool, ReplicaError> {
        let (committer, trees) = (self.committer.clone(), self.trees.clone());
        let storage_key = key.storage_key();
        let outcome = self
            .lanes()
            .write(move |turn| {
                let stored = load_raw(&**committer.storage(), &storage_key)?;
                let Some((raw, current)) = stored.filter(|(_, current)| *current == object) else {
                    return Ok(false);
                };
                drop(current);
                let mut batch = WriteBatch::new();
                batch.delete(Keyspace::Data, storage_key.clone());
                committer.write_on_lane(batch, turn)?;
                trees.observe(&storage_key, Some(&raw), None);
                Ok(true)
            })
            .await;
        match outcome {
            Ok(Ok(reaped)) => Ok(reaped),
            Ok(Err(e)) => Err(storage_error(LocalError::Storage(e))),
            Err(e) => Err(storage_error(e.into())),
        }
    }

    /// Waits until the write with `ticket` is durable (per the fsync policy).
    pub async fn durable(&self, ticket: u64) -> Result<(), ReplicaError> {
        self.committer
            .durable(ticket)
            .await
            .map_err(|e| storage_error(e.into()))
    }
}

mod merge_batch;
pub use merge_batch::BatchMerged;

#[cfg(test)]
mod tests;
