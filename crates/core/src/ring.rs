//! The hash circle: where a key sits (P1).
//!
//! A key's position is a plain xxh3-64 hash of its bucket and key bytes, so
//! every node computes the same position with no coordination. The circle is
//! cut into Q equal partitions by the top bits of the position
//! ([`crate::layout::partition_of`]); the layout says which nodes hold each
//! partition. Storage keys start with the position (big-endian), so one
//! partition is one contiguous range on disk. The byte layout below is part of
//! the on-disk and wire contract (changing it moves every key): it must never
//! change silently, and a test pins it. This module never depends on
//! membership, order of calls, process state or randomness.

use xxhash_rust::xxh3::Xxh3Default;

/// Position of a key on the ring:
/// `xxh3_64((bucket length as u32 LE) ++ bucket bytes ++ key bytes)`.
///
/// The length prefix keeps `("ab", "c")` and `("a", "bc")` apart. Buckets are
/// bounded far below 4 GiB by [`crate::limits::MAX_BUCKET_BYTES`]; a longer one
/// would have its prefix saturated at `u32::MAX` (never reached in practice).
pub fn key_position(bucket: &str, key: &[u8]) -> u64 {
    let bucket_len = u32::try_from(bucket.len()).unwrap_or(u32::MAX);
    let mut hasher = Xxh3Default::new();
    hasher.update(&bucket_len.to_le_bytes());
    hasher.update(bucket.as_bytes());
    hasher.update(key);
    hasher.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_64;

    #[test]
    fn key_position_is_the_documented_hash_of_a_length_prefixed_input() {
        let cases: &[(&str, &[u8])] = &[
            ("", b""),
            ("carts", b"alice"),
            ("b", &[0, 255, 7]),
            ("x", &[b'k'; 1024]),
        ];
        for &(bucket, key) in cases {
            let mut input = (bucket.len() as u32).to_le_bytes().to_vec();
            input.extend_from_slice(bucket.as_bytes());
            input.extend_from_slice(key);
            assert_eq!(key_position(bucket, key), xxh3_64(&input), "{bucket:?}");
        }
    }

    #[test]
    fn key_position_keeps_bucket_and_key_apart() {
        type BucketKey<'a> = (&'a str, &'a [u8]);
        let pairs: &[(BucketKey, BucketKey)] = &[
            (("ab", b"c"), ("a", b"bc")),
            (("", b"abc"), ("abc", b"")),
            (("a", b""), ("", b"a")),
        ];
        for &((b1, k1), (b2, k2)) in pairs {
            assert_ne!(
                key_position(b1, k1),
                key_position(b2, k2),
                "{b1:?}/{k1:?} vs {b2:?}/{k2:?}"
            );
        }
    }

    #[test]
    fn key_position_is_pinned() {
        // Changing this moves every key in every cluster: a format break.
        assert_eq!(key_position("carts", b"alice"), PINNED_KEY);
    }

    const PINNED_KEY: u64 = 4957824301329592588;
}
