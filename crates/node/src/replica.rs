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
use std::sync::{Arc, Mutex};

/// This node's replica store.
pub struct LocalReplica {
    /// The actor this node mints dots under (see [`crate::actor`]).
    actor: Arc<NodeId>,
    committer: Arc<Committer>,
    /// The anti-entropy trees every data write moves.
    trees: Arc<PartitionTrees>,
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
fn storage_error(e: LocalError) -> ReplicaError {
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
    let mut batch = WriteBatch::new();
    batch.put(Keyspace::Data, storage_key.clone(), encoded.clone());
    let ticket = committer.write_on_lane(batch, turn)?;
    trees.observe(&storage_key, old_raw, Some(&encoded));
    Ok(ticket)
}

/// The read-modify-write of a merge (on the write lane). Returns the ticket
/// to wait on: the new write's, or, if the merge changed nothing, the latest
/// write's (which covers the one that produced the local copy).
///
/// A merge is bounded like a client write, so an object can never grow past
/// what one frame carries: more than `max_siblings` versions, or a clock
/// past `MAX_CLOCK_ENTRIES` (which would make the key undecodable), is
/// refused with a typed error and the local copy is kept.
fn merge_on_lane(
    committer: &Committer,
    trees: &PartitionTrees,
    storage_key: Vec<u8>,
    incoming: &Siblings,
    max_siblings: usize,
    turn: &WriteTurn,
) -> Result<u64, ReplicaError> {
    let storage = |e: StorageError| storage_error(e.into());
    let (old_raw, local) = match load_raw(&**committer.storage(), &storage_key).map_err(storage)? {
        Some((raw, local)) => (Some(raw), local),
        None => (None, Siblings::default()),
    };
    let mut merged = local.clone();
    merged.merge(incoming);
    if merged == local {
        return Ok(committer.last_ticket());
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
    store(
        committer,
        trees,
        storage_key,
        old_raw.as_deref(),
        &merged,
        turn,
    )
    .map_err(storage)
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
        }
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

    /// Reads the local copy of a key, on the read lane.
    pub async fn read(&self, key: &ObjectKey) -> Result<Option<Siblings>, ReplicaError> {
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

    /// Waits until the write with `ticket` is durable (per the fsync policy).
    pub async fn durable(&self, ticket: u64) -> Result<(), ReplicaError> {
        self.committer
            .durable(ticket)
            .await
            .map_err(|e| storage_error(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::FsyncPolicy;
    use crate::metrics::Metrics;
    use ringkv_storage::MemStorage;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio_util::sync::CancellationToken;

    /// `MemStorage` that counts the writes and syncs reaching it.
    #[derive(Default)]
    struct Counting {
        inner: MemStorage,
        writes: AtomicUsize,
        syncs: AtomicUsize,
    }

    impl Storage for Counting {
        fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            self.inner.get(ks, key)
        }
        fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.inner.write(batch)
        }
        fn sync(&self) -> Result<(), StorageError> {
            self.syncs.fetch_add(1, Ordering::SeqCst);
            self.inner.sync()
        }
        fn sync_blocks(&self) -> bool {
            false
        }
        #[allow(clippy::type_complexity)]
        fn scan(
            &self,
            ks: Keyspace,
            start: &[u8],
            end: Option<&[u8]>,
            limit: usize,
        ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StorageError> {
            self.inner.scan(ks, start, end, limit)
        }
        fn approximate_len(&self, ks: Keyspace) -> Result<u64, StorageError> {
            self.inner.approximate_len(ks)
        }
    }

    /// A replica on `storage` under `fsync = always`, and its shutdown.
    fn replica_on(
        storage: Arc<dyn Storage>,
    ) -> (LocalReplica, CancellationToken, tokio::task::JoinHandle<()>) {
        let shutdown = CancellationToken::new();
        let lanes = Arc::new(StorageLanes::for_engine(&*storage).unwrap());
        let (committer, task) = Committer::start(
            storage,
            FsyncPolicy::Always,
            Arc::new(Metrics::new()),
            lanes,
            shutdown.clone(),
        );
        let trees = PartitionTrees::new(256, ringkv_core::settings::ClusterSettings::default());
        let replica = LocalReplica::new(NodeId::new("n1").unwrap(), committer, Arc::new(trees));
        (replica, shutdown, task)
    }

    fn written(value: &'static str, timestamp_ms: u64) -> Written {
        Written {
            value: Some(Bytes::from(value)),
            timestamp_ms,
            expires_ms: None,
        }
    }

    fn key() -> ObjectKey {
        ObjectKey::new("b", Bytes::from("k"), 64).unwrap()
    }

    /// An object holding one write by `node`.
    fn written_by(node: &str, value: &str) -> Siblings {
        let mut object = Siblings::new();
        let node = NodeId::new(node).unwrap();
        object.update(
            &VersionVector::default(),
            &node,
            Some(Bytes::from(value.to_string())),
            1,
        );
        object
    }

    #[tokio::test]
    async fn a_context_that_would_bloat_the_clock_is_refused_and_the_key_stays_readable() {
        let (replica, shutdown, task) = replica_on(Arc::new(MemStorage::new()));
        let key = key();
        let forged = |from: usize| {
            let entries = (from..from + 600)
                .map(|i| (NodeId::new(&format!("n1~{}", i + 1)).unwrap(), 1))
                .collect();
            VersionVector::from_entries(entries).unwrap()
        };
        replica
            .update(&key, &forged(0), written("a", 1), 64)
            .await
            .unwrap();
        let err = replica
            .update(&key, &forged(600), written("b", 2), 64)
            .await
            .unwrap_err();
        assert!(
            matches!(err, OpError::BadRequest(ref m) if m.contains("clock")),
            "{err:?}"
        );
        assert_eq!(
            replica.read(&key).await.unwrap().unwrap().values().count(),
            1,
            "the key still decodes"
        );
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn every_write_moves_the_tree_to_what_a_rebuild_would_find() {
        let engine = Arc::new(MemStorage::new());
        let (replica, shutdown, task) = replica_on(engine.clone());
        let partition = ringkv_core::layout::partition_of(key().position(), 256);
        let rebuilt = || {
            let settings = ringkv_core::settings::ClusterSettings::default();
            let (trees, _) = PartitionTrees::rebuild(&*engine, 256, settings).unwrap();
            trees.root(partition)
        };
        assert_eq!(replica.trees().root(partition), 0);
        replica
            .merge(&key(), written_by("n2", "v"), 64)
            .await
            .unwrap();
        let after_merge = replica.trees().root(partition);
        assert_ne!(after_merge, 0);
        assert_eq!(after_merge, rebuilt());
        let context = VersionVector::new();
        replica
            .update(&key(), &context, written("x", 1), 64)
            .await
            .unwrap();
        let after_update = replica.trees().root(partition);
        assert_ne!(
            after_update, after_merge,
            "a new version moves the key's hash"
        );
        assert_eq!(after_update, rebuilt());
        assert_eq!(replica.trees().len(), 1, "one key, however often written");
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn merging_an_identical_object_twice_writes_once_and_syncs_once() {
        let engine = Arc::new(Counting::default());
        let (replica, shutdown, task) = replica_on(engine.clone());
        let object = written_by("n2", "v");
        replica.merge(&key(), object.clone(), 64).await.unwrap();
        assert_eq!(engine.writes.load(Ordering::SeqCst), 1);
        assert_eq!(engine.syncs.load(Ordering::SeqCst), 1);
        // The same object again, an empty one, and one the copy already covers.
        for stale in [object.clone(), Siblings::new(), object.clone()] {
            replica.merge(&key(), stale, 64).await.unwrap();
        }
        assert_eq!(
            engine.writes.load(Ordering::SeqCst),
            1,
            "no-op merges write nothing"
        );
        assert_eq!(engine.syncs.load(Ordering::SeqCst), 1, "and sync nothing");
        // A merge that adds a concurrent write does write.
        replica
            .merge(&key(), written_by("n3", "w"), 64)
            .await
            .unwrap();
        assert_eq!(engine.writes.load(Ordering::SeqCst), 2);
        assert_eq!(replica.read(&key()).await.unwrap().unwrap().len(), 2);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_no_op_merge_of_an_unsynced_copy_returns_only_once_it_is_durable() {
        let mem = MemStorage::new();
        let (replica, shutdown, task) = replica_on(Arc::new(mem.clone()));
        // A client write, not yet waited on: its copy may be unsynced.
        let (object, _, _) = replica
            .update(&key(), &VersionVector::default(), written("v", 1), 64)
            .await
            .unwrap();
        replica.merge(&key(), object.clone(), 64).await.unwrap();
        mem.crash();
        assert_eq!(
            replica.read(&key()).await.unwrap(),
            Some(object),
            "the merge was acknowledged, so the copy it matched survives a crash"
        );
        shutdown.cancel();
        task.await.unwrap();
    }
}
