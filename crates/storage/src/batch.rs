//! [`WriteBatch`]: an ordered group of puts and deletes applied atomically.
//!
//! A batch is plain data: building one never touches an engine and never
//! fails. Engines validate it ([`WriteBatch::validate`]) before applying
//! anything, so an oversized key or value rejects the whole batch. When a
//! batch touches the same key twice, the later operation wins, exactly as if
//! the operations were applied one after another. This module must never do
//! IO.

use crate::error::StorageError;
use crate::keyspace::Keyspace;
use crate::limits::{check_key, check_value};
use std::collections::BTreeMap;

/// One operation inside a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Store `value` under `key`, replacing any previous value.
    Put {
        ks: Keyspace,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Remove `key` (a no-op when it is absent).
    Delete { ks: Keyspace, key: Vec<u8> },
}

impl Op {
    pub(crate) fn keyspace(&self) -> Keyspace {
        match self {
            Op::Put { ks, .. } | Op::Delete { ks, .. } => *ks,
        }
    }

    pub(crate) fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

/// An atomic group of writes. Not durable until `Storage::sync` returns after it.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    ops: Vec<Op>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues storing `value` under `key` in `ks`.
    pub fn put(&mut self, ks: Keyspace, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put {
            ks,
            key: key.into(),
            value: value.into(),
        });
    }

    /// Queues removing `key` from `ks`.
    pub fn delete(&mut self, ks: Keyspace, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete {
            ks,
            key: key.into(),
        });
    }

    /// Number of queued operations (duplicates of one key count separately).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when no operation is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Checks every key and value against the storage limits.
    pub(crate) fn validate(&self) -> Result<(), StorageError> {
        for op in &self.ops {
            check_key(op.key())?;
            if let Op::Put { value, .. } = op {
                check_value(value)?;
            }
        }
        Ok(())
    }

    /// The operations in the order they were queued.
    pub(crate) fn into_ops(self) -> Vec<Op> {
        self.ops
    }

    /// The operations with only the last one per `(keyspace, key)` kept.
    ///
    /// Engines that stamp a whole batch with one sequence number (fjall)
    /// must not see two versions of one key in it, so they apply this form.
    /// The result is ordered by keyspace, then key.
    pub(crate) fn into_last_writes(self) -> Vec<Op> {
        let mut last: BTreeMap<(usize, Vec<u8>), Op> = BTreeMap::new();
        for op in self.ops {
            last.insert((op.keyspace().index(), op.key().to_vec()), op);
        }
        last.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{MAX_STORAGE_KEY_BYTES, MAX_STORAGE_VALUE_BYTES};

    #[test]
    fn len_counts_every_queued_op() {
        let mut b = WriteBatch::new();
        assert!(b.is_empty());
        b.put(Keyspace::Data, "a", "1");
        b.put(Keyspace::Data, "a", "2");
        b.delete(Keyspace::Hints, "a");
        assert_eq!(b.len(), 3);
        assert!(!b.is_empty());
    }

    #[test]
    fn last_write_per_key_wins() {
        let mut b = WriteBatch::new();
        b.put(Keyspace::Data, "a", "1");
        b.delete(Keyspace::Data, "b");
        b.put(Keyspace::Hints, "a", "h");
        b.delete(Keyspace::Data, "a");
        b.put(Keyspace::Data, "b", "2");
        let got = b.into_last_writes();
        let want = vec![
            Op::Delete {
                ks: Keyspace::Data,
                key: b"a".to_vec(),
            },
            Op::Put {
                ks: Keyspace::Data,
                key: b"b".to_vec(),
                value: b"2".to_vec(),
            },
            Op::Put {
                ks: Keyspace::Hints,
                key: b"a".to_vec(),
                value: b"h".to_vec(),
            },
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn validate_rejects_any_oversized_op() {
        let big_key = vec![0u8; MAX_STORAGE_KEY_BYTES + 1];
        let mut put_key = WriteBatch::new();
        put_key.put(Keyspace::Data, "ok", "ok");
        put_key.put(Keyspace::Data, big_key.clone(), "v");
        let mut del_key = WriteBatch::new();
        del_key.delete(Keyspace::Meta, big_key);
        let mut value = WriteBatch::new();
        value.put(Keyspace::Data, "k", vec![0u8; MAX_STORAGE_VALUE_BYTES + 1]);

        assert!(matches!(
            put_key.validate(),
            Err(StorageError::KeyTooLarge { .. })
        ));
        assert!(matches!(
            del_key.validate(),
            Err(StorageError::KeyTooLarge { .. })
        ));
        assert!(matches!(
            value.validate(),
            Err(StorageError::ValueTooLarge { .. })
        ));
        assert!(WriteBatch::new().validate().is_ok());
    }
}
