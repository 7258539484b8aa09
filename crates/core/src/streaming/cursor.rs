//! Where a receiver is in each stream, as it keeps it in its `Meta`
//! keyspace: one [`CursorRecord`] per (layout version, partition, source).
//!
//! Key: `stream/<version, 20 digits>/<partition, 10 digits>/<source id>`
//! ([`cursor_key`]). Zero-padded numbers make the byte order the numeric
//! order, so every cursor of one version is one prefix
//! ([`version_prefix`]) and every cursor of the versions before `v` is
//! the range `[CURSOR_KEY_PREFIX, version_prefix(v))`: a version's cursors
//! are loaded, and older ones cleared, with one range scan each.
//!
//! The node writes a record in the same atomic storage batch as the merged
//! entries it stands for (see the node's `streaming` module), so a record
//! read back after any crash never claims more than the data holds. A
//! record that does not decode is ignored: the stream of that pull starts
//! over from the partition's start, which is safe because merges are
//! idempotent, only slower.
//!
//! Pure: bytes in, bytes out.

use crate::codec::{self, CodecError};
use crate::NodeId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Format byte of stored cursor records.
pub const CURSOR_FORMAT_V1: u8 = 1;
/// Every cursor key starts with this.
pub const CURSOR_KEY_PREFIX: &[u8] = b"stream/";

/// One stream of a transfer: one partition from one source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PullId {
    pub partition: u32,
    pub source: NodeId,
}

/// How far one pull got, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorRecord {
    /// The last storage key merged (exclusive cursor of the next request);
    /// None: nothing yet.
    pub after: Option<Bytes>,
    /// The source said no key of the partition lies past `after`, and
    /// everything it sent is merged.
    pub done: bool,
    /// Keys and wire bytes merged so far by this pull, over every run.
    pub keys: u64,
    pub bytes: u64,
}

impl CursorRecord {
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(CURSOR_FORMAT_V1, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<CursorRecord, CodecError> {
        codec::decode(CURSOR_FORMAT_V1, bytes)
    }
}

/// The prefix of every cursor key of `version`.
pub fn version_prefix(version: u64) -> Vec<u8> {
    let mut key = CURSOR_KEY_PREFIX.to_vec();
    key.extend_from_slice(format!("{version:020}/").as_bytes());
    key
}

/// The `Meta` key of `pull`'s cursor in the stream to `version`.
pub fn cursor_key(version: u64, pull: &PullId) -> Vec<u8> {
    let mut key = version_prefix(version);
    key.extend_from_slice(format!("{:010}/", pull.partition).as_bytes());
    key.extend_from_slice(pull.source.as_str().as_bytes());
    key
}

/// The version and pull a cursor key names; None if it is not one.
pub fn parse_cursor_key(raw: &[u8]) -> Option<(u64, PullId)> {
    let rest = std::str::from_utf8(raw.strip_prefix(CURSOR_KEY_PREFIX)?).ok()?;
    let (version, rest) = rest.split_once('/')?;
    let (partition, source) = rest.split_once('/')?;
    let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(version, 20) || !digits(partition, 10) {
        return None;
    }
    let pull = PullId {
        partition: partition.parse().ok()?,
        source: NodeId::new(source).ok()?,
    };
    Some((version.parse().ok()?, pull))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(partition: u32, source: &str) -> PullId {
        PullId {
            partition,
            source: NodeId::new(source).unwrap(),
        }
    }

    #[test]
    fn cursor_keys_round_trip_and_sort_by_version_then_partition() {
        let keys = [
            cursor_key(2, &pull(7, "n1")),
            cursor_key(2, &pull(10, "n1")),
            cursor_key(10, &pull(0, "n2")),
            cursor_key(u64::MAX, &pull(u32::MAX, "zz")),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "numeric order");
        assert_eq!(parse_cursor_key(&keys[1]), Some((2, pull(10, "n1"))));
        assert_eq!(
            parse_cursor_key(&keys[3]),
            Some((u64::MAX, pull(u32::MAX, "zz")))
        );
        assert!(keys[0].starts_with(&version_prefix(2)));
        assert!(!keys[2].starts_with(&version_prefix(1)));
        assert!(
            keys[1] < version_prefix(3) && keys[2] > version_prefix(3),
            "versions before 3 are the range [prefix, version_prefix(3))"
        );
        for bad in [
            &b"stream/1/2/n1"[..],
            b"stream/00000000000000000002/0000000007",
            b"stream/00000000000000000002/0000000007/",
            b"other/00000000000000000002/0000000007/n1",
            b"stream/0000000000000000000x/0000000007/n1",
            b"stream/00000000000000000002/9999999999/n1",
            b"\xff",
        ] {
            assert_eq!(parse_cursor_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_an_error() {
        let record = CursorRecord {
            after: Some(Bytes::from_static(b"\x00\x01key")),
            done: false,
            keys: 12,
            bytes: 3400,
        };
        let encoded = record.encode().unwrap();
        assert_eq!(CursorRecord::decode(&encoded), Ok(record));
        assert!(CursorRecord::decode(&encoded[..encoded.len() - 1]).is_err());
        assert!(CursorRecord::decode(b"\x09junk").is_err());
        assert!(CursorRecord::decode(b"").is_err());
    }
}
