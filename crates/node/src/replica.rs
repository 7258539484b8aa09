//! The local replica: this node's copy of the keys it holds.
//!
//! Three operations, each a read-modify-write of one key's [`Siblings`] under
//! a striped lock (so two writes of one key never interleave, and writes of
//! different keys rarely contend):
//!
//! - [`LocalReplica::read`]: the stored object, checksum-verified.
//! - [`LocalReplica::merge`]: merge an object sent by a coordinator (or, later,
//!   by read repair and anti-entropy) into the local copy.
//! - [`LocalReplica::update`]: apply a client write as its coordinator,
//!   minting the new version's dot from the local clock.
//!
//! The lock is a `std` mutex held only around the storage read and the write
//! into the engine; waiting for durability (group commit) happens after it is
//! released, so no lock is ever held across an fsync or an await.

use crate::commit::Committer;
use bytes::Bytes;
use ringkv_core::codec::{decode_object, encode_object};
use ringkv_core::key::ObjectKey;
use ringkv_core::limits::MAX_CLOCK_ENTRIES;
use ringkv_core::protocol::{OpError, ReplicaError};
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::{Dot, VersionVector};
use ringkv_core::NodeId;
use ringkv_storage::{Keyspace, StorageError, WriteBatch};
use std::sync::{Arc, Mutex};

/// Number of lock stripes (a power of two).
const STRIPES: usize = 1024;

/// This node's replica store.
pub struct LocalReplica {
    /// The actor this node mints dots under (see [`crate::actor`]).
    actor: NodeId,
    committer: Arc<Committer>,
    stripes: Box<[Mutex<()>]>,
}

fn storage_error(e: impl std::fmt::Display) -> ReplicaError {
    ReplicaError {
        message: e.to_string(),
    }
}

impl LocalReplica {
    pub fn new(actor: NodeId, committer: Arc<Committer>) -> Self {
        let stripes = (0..STRIPES).map(|_| Mutex::new(())).collect();
        LocalReplica {
            actor,
            committer,
            stripes,
        }
    }

    fn stripe(&self, storage_key: &[u8]) -> &Mutex<()> {
        // The first 8 bytes are the key's ring position: already a good hash.
        let mut pos = [0u8; 8];
        pos.copy_from_slice(&storage_key[..8]);
        &self.stripes[(u64::from_be_bytes(pos) as usize) & (STRIPES - 1)]
    }

    fn load(&self, storage_key: &[u8]) -> Result<Option<Siblings>, StorageError> {
        let Some(raw) = self.committer.storage().get(Keyspace::Data, storage_key)? else {
            return Ok(None);
        };
        decode_object(&raw)
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                keyspace: Keyspace::Data.name(),
                key_hex: storage_key.iter().map(|b| format!("{b:02x}")).collect(),
                reason: format!("stored object does not decode: {e}"),
            })
    }

    fn store(&self, storage_key: Vec<u8>, object: &Siblings) -> Result<u64, StorageError> {
        let encoded = encode_object(object).map_err(|e| StorageError::Engine(e.to_string()))?;
        let mut batch = WriteBatch::new();
        batch.put(Keyspace::Data, storage_key, encoded);
        self.committer.write(batch)
    }

    /// Reads the local copy of a key.
    pub fn read(&self, key: &ObjectKey) -> Result<Option<Siblings>, ReplicaError> {
        self.load(&key.storage_key()).map_err(storage_error)
    }

    /// Merges `incoming` into the local copy; returns once the result is durable.
    pub async fn merge(&self, key: &ObjectKey, incoming: &Siblings) -> Result<(), ReplicaError> {
        let ticket = self.merge_now(key, incoming).map_err(storage_error)?;
        self.committer.durable(ticket).await.map_err(storage_error)
    }

    fn merge_now(&self, key: &ObjectKey, incoming: &Siblings) -> Result<u64, StorageError> {
        let storage_key = key.storage_key();
        let _guard = self
            .stripe(&storage_key)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let merged = match self.load(&storage_key)? {
            Some(mut local) => {
                local.merge(incoming);
                local
            }
            None => incoming.clone(),
        };
        if merged.clock().len() > MAX_CLOCK_ENTRIES {
            // Storing it would make the key undecodable; keep the local copy.
            return Err(StorageError::Engine(format!(
                "merged clock would exceed {MAX_CLOCK_ENTRIES} entries; write refused"
            )));
        }
        self.store(storage_key, &merged)
    }

    /// Coordinates a client write locally: supersedes what `context` covers,
    /// adds `value` (None = delete) with a fresh dot, and writes the new
    /// object to the engine. Returns it, the new version's dot, and the ticket to wait on for
    /// durability ([`LocalReplica::durable`]), so the coordinator can send it
    /// to the other replicas while the local fsync runs. Refuses to grow past
    /// `max_siblings` versions.
    pub fn update(
        &self,
        key: &ObjectKey,
        context: &VersionVector,
        value: Option<Bytes>,
        timestamp_ms: u64,
        max_siblings: usize,
    ) -> Result<(Siblings, Dot, u64), OpError> {
        let storage_key = key.storage_key();
        let internal = |e: StorageError| OpError::Internal(format!("local replica: {e}"));
        let _guard = self
            .stripe(&storage_key)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut object = self
            .load(&storage_key)
            .map_err(internal)?
            .unwrap_or_default();
        let dot = object.update(context, &self.actor, value, timestamp_ms);
        if object.clock().len() > MAX_CLOCK_ENTRIES {
            return Err(OpError::BadRequest(format!(
                "the context would grow this key's clock past {MAX_CLOCK_ENTRIES} entries"
            )));
        }
        if object.len() > max_siblings {
            return Err(OpError::TooManySiblings {
                count: object.len(),
                limit: max_siblings,
            });
        }
        let ticket = self.store(storage_key, &object).map_err(internal)?;
        Ok((object, dot, ticket))
    }

    /// Waits until the write with `ticket` is durable (per the fsync policy).
    pub async fn durable(&self, ticket: u64) -> Result<(), ReplicaError> {
        self.committer.durable(ticket).await.map_err(storage_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::FsyncPolicy;
    use crate::metrics::Metrics;
    use ringkv_storage::MemStorage;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn a_context_that_would_bloat_the_clock_is_refused_and_the_key_stays_readable() {
        let shutdown = CancellationToken::new();
        let (committer, task) = Committer::start(
            Arc::new(MemStorage::new()),
            FsyncPolicy::Always,
            Arc::new(Metrics::new()),
            shutdown.clone(),
        );
        let replica = LocalReplica::new(NodeId::new("n1").unwrap(), committer);
        let key = ObjectKey::new("b", Bytes::from("k"), 64).unwrap();
        let forged = |from: usize| {
            let entries = (from..from + 600)
                .map(|i| (NodeId::new(&format!("n1~{}", i + 1)).unwrap(), 1))
                .collect();
            VersionVector::from_entries(entries).unwrap()
        };
        replica
            .update(&key, &forged(0), Some(Bytes::from("a")), 1, 64)
            .unwrap();
        let err = replica
            .update(&key, &forged(600), Some(Bytes::from("b")), 2, 64)
            .unwrap_err();
        assert!(
            matches!(err, OpError::BadRequest(ref m) if m.contains("clock")),
            "{err:?}"
        );
        assert_eq!(
            replica.read(&key).unwrap().unwrap().values().count(),
            1,
            "the key still decodes"
        );
        shutdown.cancel();
        task.await.unwrap();
    }
}
