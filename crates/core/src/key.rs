//! Object keys: a bucket name plus arbitrary key bytes, and their storage layout.
//!
//! Buckets are short printable names; keys are any bytes up to the configured
//! limit. On disk a key is stored under its ring position first
//! (`position: u64 big-endian ++ bucket length: u8 ++ bucket ++ key`), so the
//! data keyspace is ordered by ring position: a key range of the ring is one
//! contiguous scan, which is what per-range Merkle trees and range streaming
//! need.
//!
//! Every way in checks the limits: [`ObjectKey::new`] for clients (with the
//! node's configured `max_key_bytes`), and serde's `Deserialize` for peers
//! and disks (through [`RawObjectKey`], with the fixed protocol bound
//! [`MAX_KEY_BYTES_ON_WIRE`]), so a key that decodes is always a valid key:
//! in particular its bucket fits the one length byte of the storage layout.
//! The fields stay public for reading; never build an `ObjectKey` with a
//! struct literal outside this module.

use crate::limits::{MAX_BUCKET_BYTES, MAX_KEY_BYTES_ON_WIRE};
use crate::ring::key_position;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A bucket (namespace) and a key within it.
///
/// Decoding validates (see [`RawObjectKey`]); the wire layout is the same as
/// `RawObjectKey`'s, so validation changes no bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawObjectKey")]
pub struct ObjectKey {
    pub bucket: String,
    pub key: Bytes,
}

/// An `ObjectKey` as it arrives from a peer or a disk, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RawObjectKey {
    pub bucket: String,
    pub key: Bytes,
}

impl TryFrom<RawObjectKey> for ObjectKey {
    type Error = KeyError;

    /// Checks an untrusted key as strictly as a client's, against the fixed
    /// protocol bound [`MAX_KEY_BYTES_ON_WIRE`] (nodes may configure
    /// different client limits; the wire bound is the same for all).
    fn try_from(raw: RawObjectKey) -> Result<Self, KeyError> {
        ObjectKey::new(&raw.bucket, raw.key, MAX_KEY_BYTES_ON_WIRE)
    }
}

/// Why a bucket or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("bucket name must be 1 to {MAX_BUCKET_BYTES} bytes of ASCII letters, digits, '-', '_' or '.'")]
    BadBucket,
    #[error("key is empty")]
    EmptyKey,
    #[error("key is {len} bytes; the limit is {limit}")]
    KeyTooLarge { len: usize, limit: usize },
    #[error("stored key is malformed")]
    BadStorageKey,
}

impl ObjectKey {
    /// Validates a bucket and key against the limits.
    pub fn new(bucket: &str, key: Bytes, max_key_bytes: usize) -> Result<Self, KeyError> {
        check_bucket(bucket)?;
        if key.is_empty() {
            return Err(KeyError::EmptyKey);
        }
        if key.len() > max_key_bytes {
            return Err(KeyError::KeyTooLarge {
                len: key.len(),
                limit: max_key_bytes,
            });
        }
        Ok(ObjectKey {
            bucket: bucket.to_string(),
            key,
        })
    }

    /// Where this key sits on the ring.
    pub fn position(&self) -> u64 {
        key_position(&self.bucket, &self.key)
    }

    /// The bytes this key is stored under (ordered by ring position).
    pub fn storage_key(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.bucket.len() + self.key.len());
        out.extend_from_slice(&self.position().to_be_bytes());
        // Fits: every constructor checks `bucket.len() <= MAX_BUCKET_BYTES`.
        debug_assert!(self.bucket.len() <= MAX_BUCKET_BYTES);
        out.push(self.bucket.len() as u8);
        out.extend_from_slice(self.bucket.as_bytes());
        out.extend_from_slice(&self.key);
        out
    }

    /// The storage keys of the positions `first..=last`: `[start, end)`,
    /// `end` None when `last` is the top of the ring. Storage keys start
    /// with the position, so a range of positions (a partition, a segment)
    /// is one range of keys.
    pub fn storage_range(first: u64, last: u64) -> (Vec<u8>, Option<Vec<u8>>) {
        let end = last.checked_add(1).map(|e| e.to_be_bytes().to_vec());
        (first.to_be_bytes().to_vec(), end)
    }

    /// The bucket named in a storage key, without building the key (`None`
    /// if the bytes are not a storage key).
    pub fn bucket_of_storage_key(raw: &[u8]) -> Option<&str> {
        let (&len, rest) = raw.get(8..)?.split_first()?;
        std::str::from_utf8(rest.get(..usize::from(len))?).ok()
    }

    /// Inverse of [`ObjectKey::storage_key`]; checks the stored position.
    pub fn from_storage_key(raw: &[u8]) -> Result<Self, KeyError> {
        let (pos, rest) = raw.split_at_checked(8).ok_or(KeyError::BadStorageKey)?;
        let (&len, rest) = rest.split_first().ok_or(KeyError::BadStorageKey)?;
        let (bucket, key) = rest
            .split_at_checked(len as usize)
            .ok_or(KeyError::BadStorageKey)?;
        let bucket = std::str::from_utf8(bucket).map_err(|_| KeyError::BadStorageKey)?;
        check_bucket(bucket).map_err(|_| KeyError::BadStorageKey)?;
        let key = ObjectKey {
            bucket: bucket.to_string(),
            key: Bytes::copy_from_slice(key),
        };
        if key.position().to_be_bytes() != pos {
            return Err(KeyError::BadStorageKey);
        }
        Ok(key)
    }
}

/// Checks a bucket name.
pub fn check_bucket(bucket: &str) -> Result<(), KeyError> {
    let ok = !bucket.is_empty()
        && bucket.len() <= MAX_BUCKET_BYTES
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadBucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_table() {
        let k = |b: &str, key: &[u8]| ObjectKey::new(b, Bytes::copy_from_slice(key), 8);
        assert!(k("carts", b"\x00\xff/x").is_ok());
        assert_eq!(k("", b"x"), Err(KeyError::BadBucket));
        assert_eq!(k("a/b", b"x"), Err(KeyError::BadBucket));
        assert_eq!(k(&"b".repeat(65), b"x"), Err(KeyError::BadBucket));
        assert_eq!(k("b", b""), Err(KeyError::EmptyKey));
        assert_eq!(
            k("b", b"123456789"),
            Err(KeyError::KeyTooLarge { len: 9, limit: 8 })
        );
    }

    #[test]
    fn a_range_of_positions_is_a_range_of_storage_keys() {
        let k = ObjectKey::new("b", Bytes::from("k"), 64).unwrap();
        let p = k.position();
        let (start, end) = ObjectKey::storage_range(p, p);
        assert!(start <= k.storage_key() && Some(k.storage_key()) < end);
        let (_, top) = ObjectKey::storage_range(0, u64::MAX);
        assert_eq!(top, None, "the top of the ring has no end key");
    }

    #[test]
    fn the_bucket_is_read_from_a_storage_key() {
        let k = ObjectKey::new("carts", Bytes::from("alice"), 64).unwrap();
        assert_eq!(
            ObjectKey::bucket_of_storage_key(&k.storage_key()),
            Some("carts")
        );
        assert_eq!(ObjectKey::bucket_of_storage_key(b"short"), None);
        assert_eq!(
            ObjectKey::bucket_of_storage_key(b"\0\0\0\0\0\0\0\0\x09ab"),
            None
        );
    }

    #[test]
    fn storage_keys_round_trip_and_sort_by_ring_position() {
        let keys: Vec<ObjectKey> = (0..50u32)
            .map(|i| ObjectKey::new("b", Bytes::from(i.to_string()), 64).unwrap())
            .collect();
        for k in &keys {
            assert_eq!(
                ObjectKey::from_storage_key(&k.storage_key()).as_ref(),
                Ok(k)
            );
        }
        let mut by_bytes = keys.clone();
        by_bytes.sort_by_key(|k| k.storage_key());
        assert!(by_bytes
            .windows(2)
            .all(|w| w[0].position() <= w[1].position()));
        assert_eq!(
            ObjectKey::from_storage_key(b"short"),
            Err(KeyError::BadStorageKey)
        );
        let mut tampered = keys[0].storage_key();
        tampered[0] ^= 1;
        assert_eq!(
            ObjectKey::from_storage_key(&tampered),
            Err(KeyError::BadStorageKey)
        );
    }

    /// Postcard bytes of `(bucket, key)`, written by hand: varint length ++
    /// bytes, twice (the layout of a two-field struct of a string and bytes).
    fn wire(bucket: &[u8], key: &[u8]) -> Vec<u8> {
        fn varint(mut n: usize, out: &mut Vec<u8>) {
            while n >= 0x80 {
                out.push((n as u8) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
        }
        let mut out = Vec::new();
        varint(bucket.len(), &mut out);
        out.extend_from_slice(bucket);
        varint(key.len(), &mut out);
        out.extend_from_slice(key);
        out
    }

    #[test]
    fn keys_from_peers_are_validated_like_keys_from_clients() {
        let decode = |bytes: &[u8]| postcard::from_bytes::<ObjectKey>(bytes);
        let ok = decode(&wire(b"carts", b"alice")).unwrap();
        assert_eq!(
            ok,
            ObjectKey::new("carts", Bytes::from("alice"), 8).unwrap()
        );
        assert_eq!(
            wire(b"carts", b"alice"),
            postcard::to_allocvec(&ok).unwrap(),
            "the hand-written layout is the real one"
        );
        let max_key = vec![7u8; MAX_KEY_BYTES_ON_WIRE];
        assert!(decode(&wire(b"b", &max_key)).is_ok());
        let refused: [(&str, Vec<u8>); 6] = [
            // 300 bytes: `as u8` would have stored it as 44 and misparsed it.
            ("300-byte bucket", wire(&[b'a'; 300], b"k")),
            ("65-byte bucket", wire(&[b'a'; 65], b"k")),
            ("empty bucket", wire(b"", b"k")),
            ("bucket with '/'", wire(b"a/b", b"k")),
            ("empty key", wire(b"b", b"")),
            (
                "key over the wire bound",
                wire(b"b", &vec![7u8; MAX_KEY_BYTES_ON_WIRE + 1]),
            ),
        ];
        for (what, bytes) in refused {
            assert!(decode(&bytes).is_err(), "{what} must be refused");
        }
    }
}
