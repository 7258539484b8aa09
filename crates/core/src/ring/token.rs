//! Where things land on the ring: token positions of nodes and positions of keys.
//!
//! Both are plain xxh3-64 hashes, so every node computes the same ring from the
//! same membership with no coordination. The byte layouts below are part of
//! the on-disk and wire contract (changing them moves every key): they must
//! never change silently, and the tests pin them. This module never depends on
//! membership, order of calls, process state or randomness.

use xxhash_rust::xxh3::{xxh3_64, Xxh3Default};

/// Tokens (virtual nodes) each unit of capacity gets.
///
/// A member's share of the ring is the sum of the arcs in front of its `T`
/// tokens. With tokens at independent uniform positions and `n` equal members
/// that share has a relative standard deviation of about `sqrt((1 - 1/n) / T)`.
/// With `T = 1024` and `n = 10` that is 3.0 %, so the most loaded of ten nodes
/// exceeds 1.15x the mean (5 sigma) with probability about 2e-6, a node's share
/// when an eleventh joins exceeds 1.2/11 (6.5 sigma) essentially never, and a
/// capacity-2 node stays within 2 +- 0.3 of a capacity-1 node (> 7 sigma).
/// `T = 512` would give 4.2 %, i.e. a 1.15x outlier in about one ring in 300.
/// Measured over 20,000 random sets of ten names (`[a-z][a-z0-9]{0,11}`):
/// at 512, 66 rings (0.33 %) broke 1.15x; at 1024 none did, the worst being
/// 1.131x, the worst newcomer share 1.136/11 and the worst capacity-2 ratio
/// 2 +- 0.19. 1024 tokens of 12 bytes cost 12 KiB per capacity unit; ten
/// nodes build in about 0.7 ms (release).
pub const TOKENS_PER_CAPACITY_UNIT: u32 = 1024;

/// Longest hash input for a token: a node id, `#` and a `u32`.
const TOKEN_INPUT_MAX_BYTES: usize = crate::node_id::MAX_NODE_ID_BYTES + 1 + 4;

/// Position of token `index` of node `id`:
/// `xxh3_64(id bytes ++ b"#" ++ index as u32 little-endian)`.
///
/// `#` cannot occur in a node id, so distinct `(id, index)` pairs give distinct
/// inputs. Token `i` does not depend on the node's capacity, so raising a
/// capacity from `c` to `c + 1` only adds tokens (and only moves keys onto
/// that node).
pub(super) fn token_position(id: &str, index: u32) -> u64 {
    let mut buf = [0u8; TOKEN_INPUT_MAX_BYTES];
    let id = id.as_bytes();
    assert!(
        id.len() <= crate::node_id::MAX_NODE_ID_BYTES,
        "NodeId enforces its length limit"
    );
    buf[..id.len()].copy_from_slice(id);
    buf[id.len()] = b'#';
    let end = id.len() + 1 + 4;
    buf[id.len() + 1..end].copy_from_slice(&index.to_le_bytes());
    xxh3_64(&buf[..end])
}

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
    fn token_position_is_the_documented_hash() {
        for (id, index) in [
            ("n1", 0u32),
            ("db-03.eu_west", 7),
            (&*"x".repeat(64), u32::MAX),
        ] {
            let mut input = id.as_bytes().to_vec();
            input.push(b'#');
            input.extend_from_slice(&index.to_le_bytes());
            assert_eq!(token_position(id, index), xxh3_64(&input), "{id}#{index}");
        }
    }

    #[test]
    fn key_and_token_positions_are_pinned() {
        // Changing these moves every key in every cluster: a format break.
        assert_eq!(key_position("carts", b"alice"), PINNED_KEY);
        assert_eq!(token_position("n1", 0), PINNED_TOKEN);
    }

    const PINNED_KEY: u64 = 4957824301329592588;
    const PINNED_TOKEN: u64 = 12521129080067839775;
}
