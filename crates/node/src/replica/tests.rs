//! Tests of the local replica: bounded merges and updates, no-op merges
//! that write and sync nothing, durability of no-op merges, and the
//! anti-entropy trees every write moves, and batch merges (one atomic
//! write of many keys and meta records).
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
    fn scan_skipping_corrupt(
        &self,
        ks: Keyspace,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<ringkv_storage::Scanned, StorageError> {
        self.inner.scan_skipping_corrupt(ks, start, end, limit)
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

#[tokio::test]
async fn a_batch_merge_is_one_write_holding_every_changed_key_and_the_meta_records() {
    let engine = Arc::new(Counting::default());
    let (replica, shutdown, task) = replica_on(engine.clone());
    let k = |s: &str| ObjectKey::new("b", Bytes::from(s.to_string()), 64).unwrap();
    replica
        .merge(&k("same"), written_by("n2", "v"), 2)
        .await
        .unwrap();
    for writer in ["n2", "n4"] {
        replica
            .merge(&k("full"), written_by(writer, "v"), 2)
            .await
            .unwrap();
    }
    let writes_before = engine.writes.load(Ordering::SeqCst);
    let entries = vec![
        (k("new"), written_by("n2", "a")),
        (k("same"), written_by("n2", "v")),
        (k("full"), written_by("n3", "w")),
        (k("new"), written_by("n3", "b")),
    ];
    let meta = vec![(b"stream/cursor".to_vec(), b"c".to_vec())];
    let merged = replica.merge_batch(entries, meta, 2).await.unwrap();
    assert_eq!(
        (merged.stored, merged.unchanged, merged.refused),
        (1, 1, 1),
        "two entries of one key merge into one; a merge past the limit keeps the copy"
    );
    assert_eq!(
        engine.writes.load(Ordering::SeqCst),
        writes_before + 1,
        "one batch"
    );
    replica.durable(merged.ticket).await.unwrap();
    assert_eq!(replica.read(&k("new")).await.unwrap().unwrap().len(), 2);
    assert_eq!(replica.read(&k("full")).await.unwrap().unwrap().len(), 2);
    let cursor = engine.get(Keyspace::Meta, b"stream/cursor").unwrap();
    assert_eq!(cursor, Some(b"c".to_vec()));
    let settings = ringkv_core::settings::ClusterSettings::default();
    let (rebuilt, _) = PartitionTrees::rebuild(&engine.inner, 256, settings).unwrap();
    let partition = ringkv_core::layout::partition_of(k("new").position(), 256);
    assert_eq!(replica.trees().root(partition), rebuilt.root(partition));
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_refilling_replica_refuses_reads_on_every_path_but_still_merges() {
    let (replica, _shutdown, _task) = replica_on(Arc::new(MemStorage::new()));
    replica.set_refilling(true);
    replica
        .merge(&key(), written_by("n2", "v"), 64)
        .await
        .expect("merges are accepted while refilling");
    assert_eq!(replica.read(&key()).await, Err(ReplicaError::Refilling));
    assert_eq!(replica.read_now(&key()), Some(Err(ReplicaError::Refilling)));
    let (tx, rx) = tokio::sync::oneshot::channel();
    replica.read_detached(&key(), move |found| {
        let _ = tx.send(found);
    });
    assert_eq!(rx.await.unwrap(), Err(ReplicaError::Refilling));
    replica.set_refilling(false);
    assert_eq!(
        replica.read(&key()).await,
        Ok(Some(written_by("n2", "v"))),
        "the merged copy is served once the refill is done"
    );
}
