//! Hint bookkeeping for hinted handoff (F3): how hints are keyed and
//! stored, what bounds them, and how fast they are handed back.
//!
//! A stand-in that takes a write for an unreachable home (sloppy quorum,
//! F2) keeps it as a *hint*: one record per (home, key) in the `hints`
//! keyspace, apart from normal data. A second hinted write of the same key
//! for the same home is merged into the record ([`crate::siblings::Siblings::merge`]),
//! so a home down for an hour while one key is written a thousand times
//! costs one record, and delivering a record twice is harmless (merges are
//! idempotent). The key layout ([`hint_key`]) puts every hint for one home
//! in one contiguous range, so delivery is a prefix scan.
//!
//! Bounded per home, as operators of Cassandra and Scylla wish theirs were
//! ([`HintLimits`]): a count, a byte total, and an age. [`HintBook`] decides
//! whether a new hint fits; when it does not, the hint is not stored, the
//! skip is counted, and anti-entropy repairs the home later. A record's age
//! is that of its *newest write* ([`HintRecord::is_expired`]): a record
//! whose writes are all older than `max_age_ms` is dropped, never
//! delivered. That is what lets tombstones be reaped after a grace period
//! longer than `max_age_ms` without a late hint resurrecting a deleted key.
//! Delivery is paced by a [`TokenBucket`] in bytes per second, so a node
//! that returns is not flooded by every peer at once.
//!
//! Pure: time is an argument; nothing here does IO.

use crate::codec::{self, CodecError};
use crate::siblings::Siblings;
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Format byte of stored hint records.
pub const HINT_FORMAT_V1: u8 = 1;

/// Hints kept for one home, at most (count).
pub const DEFAULT_MAX_HINTS_PER_TARGET: u64 = 100_000;
/// Hint bytes kept for one home, at most.
pub const DEFAULT_MAX_HINT_BYTES_PER_TARGET: u64 = 128 * 1024 * 1024;
/// A hint older than this is dropped, not delivered (Cassandra's
/// `max_hint_window` is 3 h).
pub const DEFAULT_MAX_HINT_AGE_MS: u64 = 3 * 60 * 60 * 1000;
/// Hint bytes this node hands back per second, to all homes together.
pub const DEFAULT_HINT_DELIVERY_BYTES_PER_SEC: u64 = 4 * 1024 * 1024;

/// The bounds on the hints one node keeps and hands back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HintLimits {
    pub max_hints_per_target: u64,
    pub max_bytes_per_target: u64,
    pub max_age_ms: u64,
    pub delivery_bytes_per_sec: u64,
}

impl HintLimits {
    /// Every limit must be positive.
    pub fn validate(&self) -> Result<(), String> {
        let zero = [
            ("max_hints_per_target", self.max_hints_per_target),
            ("max_bytes_per_target", self.max_bytes_per_target),
            ("max_age_ms", self.max_age_ms),
            ("delivery_bytes_per_sec", self.delivery_bytes_per_sec),
        ]
        .into_iter()
        .find(|(_, v)| *v == 0);
        match zero {
            Some((name, _)) => Err(format!("hints.{name} must be positive")),
            None => Ok(()),
        }
    }
}

impl Default for HintLimits {
    fn default() -> Self {
        HintLimits {
            max_hints_per_target: DEFAULT_MAX_HINTS_PER_TARGET,
            max_bytes_per_target: DEFAULT_MAX_HINT_BYTES_PER_TARGET,
            max_age_ms: DEFAULT_MAX_HINT_AGE_MS,
            delivery_bytes_per_sec: DEFAULT_HINT_DELIVERY_BYTES_PER_SEC,
        }
    }
}

/// One stored hint: the merged object for one (home, key), and when its
/// oldest content was stored (wall-clock ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintRecord {
    pub stored_at_ms: u64,
    pub object: Siblings,
}

impl HintRecord {
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(HINT_FORMAT_V1, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<HintRecord, CodecError> {
        codec::decode(HINT_FORMAT_V1, bytes)
    }

    /// Whether the record's newest write is older than `max_age_ms` at
    /// `now_ms` (wall clock): then everything in it is, and it is dropped,
    /// not delivered. Measured on the writes' own times, not on when the
    /// hint was stored, so a hint carrying only writes from before a delete
    /// can never be delivered once the delete's grace period (longer than
    /// `max_age_ms`) has passed and the tombstone may have been reaped (see
    /// [`crate::tombstones`]).
    pub fn is_expired(&self, now_ms: u64, max_age_ms: u64) -> bool {
        let newest = self
            .object
            .versions()
            .iter()
            .map(|v| v.timestamp_ms)
            .max()
            .unwrap_or(self.stored_at_ms);
        now_ms.saturating_sub(newest) > max_age_ms
    }
}

/// `[home id length][home id][storage key]`: every hint for one home in
/// one contiguous range ([`target_prefix`]).
pub fn hint_key(target: &NodeId, storage_key: &[u8]) -> Vec<u8> {
    let mut out = target_prefix(target);
    out.extend_from_slice(storage_key);
    out
}

/// The prefix of every hint key for `target`.
pub fn target_prefix(target: &NodeId) -> Vec<u8> {
    let id = target.as_str().as_bytes();
    let mut out = Vec::with_capacity(1 + id.len() + 32);
    // Fits: node ids are at most `MAX_NODE_ID_BYTES` (< 256) bytes.
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out
}

/// Splits a hint key into its home and storage key; `None` if it is not one.
pub fn parse_hint_key(raw: &[u8]) -> Option<(NodeId, &[u8])> {
    let (&len, rest) = raw.split_first()?;
    let len = usize::from(len);
    if rest.len() < len {
        return None;
    }
    let (id, storage_key) = rest.split_at(len);
    let id = NodeId::new(std::str::from_utf8(id).ok()?).ok()?;
    Some((id, storage_key))
}

/// Why a hint was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HintSkip {
    #[error("the stand-in already holds {limit} hints for this node")]
    Count { limit: u64 },
    #[error("the stand-in already holds {limit} bytes of hints for this node")]
    Bytes { limit: u64 },
}

/// How many hints, and how many bytes of them, are held for one home.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Held {
    pub hints: u64,
    pub bytes: u64,
}

/// The hints held per home, as counts and bytes, kept in step with the
/// `hints` keyspace by the node (rebuilt by a scan on start).
#[derive(Debug, Clone, Default)]
pub struct HintBook {
    held: BTreeMap<NodeId, Held>,
}

impl HintBook {
    /// Whether replacing a record of `old_bytes` (None: no record yet) by
    /// one of `new_bytes` for `target` stays within `limits`. A merge into
    /// an existing record never grows the count, and a record that shrinks
    /// always fits.
    pub fn admit(
        &self,
        target: &NodeId,
        old_bytes: Option<u64>,
        new_bytes: u64,
        limits: &HintLimits,
    ) -> Result<(), HintSkip> {
        let held = self.held(target);
        if old_bytes.is_none() && held.hints >= limits.max_hints_per_target {
            return Err(HintSkip::Count {
                limit: limits.max_hints_per_target,
            });
        }
        let old = old_bytes.unwrap_or(0);
        let after = held.bytes.saturating_sub(old).saturating_add(new_bytes);
        if new_bytes > old && after > limits.max_bytes_per_target {
            return Err(HintSkip::Bytes {
                limit: limits.max_bytes_per_target,
            });
        }
        Ok(())
    }

    /// A record for `target` went from `old_bytes` (None: absent) to
    /// `new_bytes` (None: deleted).
    pub fn replaced(&mut self, target: &NodeId, old_bytes: Option<u64>, new_bytes: Option<u64>) {
        let held = self.held.entry(target.clone()).or_default();
        match (old_bytes, new_bytes) {
            (None, Some(_)) => held.hints += 1,
            (Some(_), None) => held.hints = held.hints.saturating_sub(1),
            _ => {}
        }
        held.bytes = held
            .bytes
            .saturating_sub(old_bytes.unwrap_or(0))
            .saturating_add(new_bytes.unwrap_or(0));
        if held.hints == 0 {
            self.held.remove(target);
        }
    }

    /// What is held for `target`.
    pub fn held(&self, target: &NodeId) -> Held {
        self.held.get(target).copied().unwrap_or_default()
    }

    /// Every home with hints held, and what is held for it.
    pub fn targets(&self) -> impl Iterator<Item = (&NodeId, &Held)> {
        self.held.iter()
    }
}

/// A token bucket in bytes: `rate` per second, holding at most one
/// second's worth (so a pause does not buy a burst larger than that).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_sec: u64,
    tokens: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn new(rate_per_sec: u64, now_ms: u64) -> Self {
        TokenBucket {
            rate_per_sec: rate_per_sec.max(1),
            tokens: rate_per_sec.max(1),
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        let earned = elapsed.saturating_mul(self.rate_per_sec) / 1000;
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(self.rate_per_sec);
            self.last_ms = now_ms;
        }
    }

    /// Takes `bytes` if the bucket holds them, or says how many ms to wait
    /// until it will. A request larger than the bucket is allowed once the
    /// bucket is full (it then runs into debt of nothing: the bucket empties).
    pub fn take(&mut self, bytes: u64, now_ms: u64) -> Result<(), u64> {
        self.refill(now_ms);
        let need = bytes.min(self.rate_per_sec);
        if self.tokens >= need {
            self.tokens -= need;
            return Ok(());
        }
        let missing = need - self.tokens;
        Err((missing.saturating_mul(1000))
            .div_ceil(self.rate_per_sec)
            .max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn hint_keys_round_trip_and_group_by_target() {
        let k = hint_key(&n("n2"), b"\x00\x01key");
        assert!(k.starts_with(&target_prefix(&n("n2"))));
        assert_eq!(parse_hint_key(&k), Some((n("n2"), &b"\x00\x01key"[..])));
        assert!(!hint_key(&n("n20"), b"x").starts_with(&target_prefix(&n("n2"))));
        assert_eq!(parse_hint_key(b""), None);
        assert_eq!(parse_hint_key(b"\x09ab"), None, "length past the end");
        assert_eq!(parse_hint_key(b"\x02\xff\xfe"), None, "not utf-8");
    }

    #[test]
    fn records_round_trip_and_expire_by_their_newest_write() {
        let mut object = Siblings::new();
        let ctx = crate::version_vector::VersionVector::new();
        object.update(&ctx, &n("a"), Some(bytes::Bytes::from("old")), 1_000);
        let r = HintRecord {
            stored_at_ms: 9_000,
            object: object.clone(),
        };
        assert_eq!(HintRecord::decode(&r.encode().unwrap()), Ok(r.clone()));
        assert!(HintRecord::decode(b"\x07junk").is_err());
        assert!(!r.is_expired(1_000 + 500, 500));
        assert!(
            r.is_expired(1_000 + 501, 500),
            "stored late, but its only write is old"
        );
        assert!(
            !r.is_expired(0, 500),
            "a clock that went back is not expiry"
        );
        object.update(&ctx, &n("b"), Some(bytes::Bytes::from("new")), 5_000);
        let merged = HintRecord {
            stored_at_ms: 9_000,
            object,
        };
        assert!(!merged.is_expired(5_400, 500), "a newer write keeps it");
    }

    #[test]
    fn the_book_admits_within_count_and_bytes_and_merges_never_add_a_hint() {
        let limits = HintLimits {
            max_hints_per_target: 2,
            max_bytes_per_target: 100,
            ..HintLimits::default()
        };
        let mut book = HintBook::default();
        let t = n("n3");
        assert_eq!(book.admit(&t, None, 40, &limits), Ok(()));
        book.replaced(&t, None, Some(40));
        assert_eq!(book.admit(&t, None, 40, &limits), Ok(()));
        book.replaced(&t, None, Some(40));
        assert_eq!(
            book.admit(&t, None, 1, &limits),
            Err(HintSkip::Count { limit: 2 })
        );
        assert_eq!(
            book.admit(&t, Some(40), 60, &limits),
            Ok(()),
            "a merge into a record may grow to the byte limit"
        );
        assert_eq!(
            book.admit(&t, Some(40), 61, &limits),
            Err(HintSkip::Bytes { limit: 100 })
        );
        assert_eq!(book.admit(&n("other"), None, 100, &limits), Ok(()));
        book.replaced(&t, Some(40), None);
        assert_eq!(
            book.held(&t),
            Held {
                hints: 1,
                bytes: 40
            }
        );
        book.replaced(&t, Some(40), None);
        assert_eq!(book.targets().count(), 0);
    }

    #[test]
    fn the_bucket_paces_bytes_per_second() {
        let mut b = TokenBucket::new(1000, 0);
        assert_eq!(b.take(600, 0), Ok(()));
        assert_eq!(b.take(600, 0), Err(200), "200 bytes short at 1 byte/ms");
        assert_eq!(b.take(600, 200), Ok(()));
        assert_eq!(
            b.take(5000, 200),
            Err(1000),
            "larger than the bucket: wait until full"
        );
        assert_eq!(b.take(5000, 1200), Ok(()));
        assert_eq!(b.take(1, 10_000), Ok(()), "refill is capped at one second");
        assert_eq!(b.take(1000, 10_000), Err(1));
    }
}
