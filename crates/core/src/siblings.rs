//! `Siblings`: every concurrent version of one key, and how they reconcile (V1–V3).
//!
//! An object is a set of versions, each stamped with a unique [`Dot`], plus a
//! [`VersionVector`] (`clock`) covering every dot this replica has seen —
//! including dots of versions it has since discarded as superseded. This is
//! the "dotted version vector set" shape of Riak 2.0:
//!
//! - **update** (on the coordinator, for a client put or delete): the versions
//!   whose dots the client's context covers are superseded and removed; the new
//!   version gets the dot `(coordinator, max(clock[coordinator] + 1, now_ms))`;
//!   versions the client had not seen stay as siblings. A blind write (empty
//!   context) supersedes nothing.
//!
//! Why a dot's counter is at least its write's wall-clock time (as Garage's
//! K2V does): once every replica holds a key's tombstone, the key is reaped
//! and its clock forgotten (D4). A counter that restarted at 1 after that
//! could mint a dot an older, reaped version carried — and a client still
//! holding an old context would then silently supersede the new write
//! (Riak's "doomstone", riak_kv#679). With the floor, a dot minted after
//! the reap is larger than every dot of the key before it, because reaping
//! waits a grace period of hours and a node's counters run ahead of its
//! clock only by its writes per millisecond. A node whose clock jumps back
//! by more than the grace period loses that guarantee (documented in
//! `docs/consistency.md`).
//! - **merge** (wherever two replicas' objects meet: replica writes, read
//!   merges, later repair and anti-entropy): a version survives if the other
//!   side also holds it, or the other side has never seen its dot. A version
//!   the other side has seen but no longer holds was superseded there.
//!   Merge is commutative, associative and idempotent (property-tested in
//!   `tests/siblings_props.rs`), so replicas converge in any delivery order.
//!
//! Why siblings cannot explode: each sibling is a write no other surviving
//! write has seen, so their number is at most the number of concurrent
//! writers; a write-back with the read context collapses them to one.
//! A delete is a version whose value is `None` (a tombstone), so it is ordered
//! and merged like any write and a stale replica cannot resurrect the value.
//!
//! Invariant: every version's dot is covered by `clock`, and versions are
//! sorted by dot, so equal histories have equal representations.

use crate::version_vector::{Dot, VersionVector};
use crate::NodeId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One version of a value: `None` is a tombstone (a delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub dot: Dot,
    pub value: Option<Bytes>,
    /// The coordinator's wall clock when it made this version (ms since the
    /// Unix epoch), passed in by the caller; kept for tombstone GC and TTL.
    pub timestamp_ms: u64,
    /// When the value expires (wall-clock ms since the Unix epoch), for a
    /// put with a TTL (D5); from then on it reads as a tombstone.
    pub expires_ms: Option<u64>,
}

impl Version {
    /// Whether this version reads as a delete at wall-clock `now_ms`: a
    /// tombstone, or a value whose TTL has run out.
    pub fn is_gone_at(&self, now_ms: u64) -> bool {
        self.value.is_none() || self.expires_ms.is_some_and(|at| at <= now_ms)
    }

    /// When this version last changed what a read sees: its write, or its
    /// expiry if it has one.
    pub fn last_change_ms(&self) -> u64 {
        self.expires_ms
            .map_or(self.timestamp_ms, |at| at.max(self.timestamp_ms))
    }
}

/// All concurrent versions of a key plus the clock of everything seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSiblings")]
pub struct Siblings {
    clock: VersionVector,
    versions: Vec<Version>,
}

/// The wire shape of [`Siblings`], validated by `from_parts` on decode.
#[derive(Deserialize)]
struct RawSiblings {
    clock: VersionVector,
    versions: Vec<Version>,
}

impl TryFrom<RawSiblings> for Siblings {
    type Error = String;
    fn try_from(raw: RawSiblings) -> Result<Self, String> {
        Siblings::from_parts(raw.clock, raw.versions)
    }
}

impl Siblings {
    /// An object with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds an object from parts, checking the invariant (for decoders).
    pub fn from_parts(clock: VersionVector, mut versions: Vec<Version>) -> Result<Self, String> {
        versions.sort_by(|a, b| a.dot.cmp(&b.dot));
        if versions.windows(2).any(|w| w[0].dot == w[1].dot) {
            return Err("two versions share a dot".into());
        }
        if let Some(v) = versions.iter().find(|v| !clock.covers(&v.dot)) {
            return Err(format!("version {:?} is not covered by the clock", v.dot));
        }
        Ok(Siblings { clock, versions })
    }

    /// Everything this object has seen: the causal context handed to clients.
    pub fn clock(&self) -> &VersionVector {
        &self.clock
    }

    /// The surviving versions, sorted by dot (tombstones included).
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// The live values (tombstones left out), in dot order.
    pub fn values(&self) -> impl Iterator<Item = &Bytes> {
        self.versions.iter().filter_map(|v| v.value.as_ref())
    }

    /// True when no live value remains (never written, or deleted).
    pub fn is_deleted(&self) -> bool {
        self.values().next().is_none()
    }

    /// This object as a read at wall-clock `now_ms` sees it: values whose
    /// TTL has run out become tombstones (same dots, so the context is
    /// unchanged and a write-back supersedes them).
    pub fn as_seen_at(&self, now_ms: u64) -> Siblings {
        let mut seen = self.clone();
        for version in &mut seen.versions {
            if version.is_gone_at(now_ms) {
                version.value = None;
            }
        }
        seen
    }

    /// Whether every version reads as a delete at `now_ms` (tombstones and
    /// expired values), and when the last of them became one; None if some
    /// value is still live. The tombstone collector uses this (D4, D5).
    pub fn gone_since(&self, now_ms: u64) -> Option<u64> {
        if self.versions.iter().all(|v| v.is_gone_at(now_ms)) {
            Some(
                self.versions
                    .iter()
                    .map(Version::last_change_ms)
                    .max()
                    .unwrap_or(0),
            )
        } else {
            None
        }
    }

    /// Number of surviving versions, tombstones included.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Applies a client write coordinated by `node`: supersedes the versions
    /// `context` covers and adds `value` (None = delete) with a fresh dot,
    /// which it returns. `context` is what the client read; empty = blind.
    pub fn update(
        &mut self,
        context: &VersionVector,
        node: &NodeId,
        value: Option<Bytes>,
        timestamp_ms: u64,
    ) -> Dot {
        self.update_expiring(context, node, value, timestamp_ms, None)
    }

    /// [`Siblings::update`] for a value that expires at `expires_ms`
    /// (wall-clock ms; None: never).
    pub fn update_expiring(
        &mut self,
        context: &VersionVector,
        node: &NodeId,
        value: Option<Bytes>,
        timestamp_ms: u64,
        expires_ms: Option<u64>,
    ) -> Dot {
        // Saturating: a counter near u64::MAX cannot come from real writes;
        // the coordinator refuses such contexts before they get here.
        let counter = self
            .clock
            .get(node)
            .max(context.get(node))
            .saturating_add(1)
            .max(timestamp_ms);
        let dot = Dot {
            node: node.clone(),
            counter,
        };
        let value_is_some = value.is_some();
        self.versions.retain(|v| !context.covers(&v.dot));
        self.clock.join(context);
        self.clock.add(&dot);
        // The new dot is the highest of its node, so it sorts after the others.
        let at = self.versions.partition_point(|v| v.dot < dot);
        self.versions.insert(
            at,
            Version {
                dot: dot.clone(),
                value,
                timestamp_ms,
                expires_ms: expires_ms.filter(|_| value_is_some),
            },
        );
        dot
    }

    /// The context to hand back to the writer of `dot`, who wrote with
    /// `context`, when the coordinator's clock held `before` for `dot`'s
    /// node just before the write: what the writer has seen, and nothing
    /// more. A version vector can only say "every dot up to n", so adding
    /// the new dot also covers every earlier dot of its node. Only that node
    /// mints its dots, one write at a time on its own copy, so `before` is
    /// the highest of them that existed: if the context already covers it,
    /// the counters in between were never minted and covering them is
    /// harmless. Otherwise other clients' writes through the same node sit
    /// in between, and the writer gets its own context back: its next write
    /// leaves this one as a sibling (safe; a read shows both), rather than
    /// silently superseding writes it never saw.
    pub fn writer_context(context: &VersionVector, dot: &Dot, before: u64) -> VersionVector {
        let mut out = context.clone();
        if before <= context.get(&dot.node) {
            out.add(dot);
        }
        out
    }

    /// Reconciles with another replica's object (syntactic reconciliation):
    /// keeps versions neither side has superseded, joins the clocks.
    pub fn merge(&mut self, other: &Siblings) {
        let mut merged = Vec::with_capacity(self.versions.len().max(other.versions.len()));
        let (mut i, mut j) = (0, 0);
        let (ours, theirs) = (&self.versions, &other.versions);
        while i < ours.len() || j < theirs.len() {
            let order = match (ours.get(i), theirs.get(j)) {
                (Some(a), Some(b)) => a.dot.cmp(&b.dot),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Equal => {
                    merged.push(ours[i].clone());
                    i += 1;
                    j += 1;
                }
                std::cmp::Ordering::Less => {
                    if !other.clock.covers(&ours[i].dot) {
                        merged.push(ours[i].clone());
                    }
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    if !self.clock.covers(&theirs[j].dot) {
                        merged.push(theirs[j].clone());
                    }
                    j += 1;
                }
            }
        }
        self.versions = merged;
        self.clock.join(&other.clock);
    }

    /// The merge of two objects, leaving both untouched.
    pub fn merged(&self, other: &Siblings) -> Siblings {
        let mut out = self.clone();
        out.merge(other);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn live(s: &Siblings) -> Vec<&[u8]> {
        s.values().map(|b| b.as_ref()).collect()
    }

    #[test]
    fn put_with_read_context_replaces_and_blind_put_adds_a_sibling() {
        let mut obj = Siblings::new();
        obj.update(&VersionVector::new(), &n("a"), Some(Bytes::from("v1")), 1);
        let ctx = obj.clock().clone();
        obj.update(&ctx, &n("a"), Some(Bytes::from("v2")), 2);
        assert_eq!(live(&obj), vec![b"v2".as_ref()]);
        obj.update(&VersionVector::new(), &n("b"), Some(Bytes::from("v3")), 3);
        assert_eq!(live(&obj), vec![b"v2".as_ref(), b"v3".as_ref()]);
        let ctx = obj.clock().clone();
        obj.update(&ctx, &n("a"), Some(Bytes::from("merged")), 4);
        assert_eq!(live(&obj), vec![b"merged".as_ref()]);
        assert_eq!(obj.len(), 1);
    }

    #[test]
    fn concurrent_writes_on_two_replicas_become_siblings_and_collapse_on_write_back() {
        let mut base = Siblings::new();
        base.update(&VersionVector::new(), &n("a"), Some(Bytes::from("v0")), 1);
        let ctx = base.clock().clone();
        let (mut left, mut right) = (base.clone(), base.clone());
        left.update(&ctx, &n("a"), Some(Bytes::from("left")), 2);
        right.update(&ctx, &n("b"), Some(Bytes::from("right")), 2);
        let merged = left.merged(&right);
        assert_eq!(merged, right.merged(&left));
        assert_eq!(live(&merged), vec![b"left".as_ref(), b"right".as_ref()]);
        let mut resolved = merged.clone();
        resolved.update(merged.clock(), &n("c"), Some(Bytes::from("both")), 3);
        // An older replica merging the resolution loses both siblings.
        assert_eq!(live(&left.merged(&resolved)), vec![b"both".as_ref()]);
    }

    #[test]
    fn the_context_a_writer_gets_back_never_covers_writes_it_did_not_see() {
        let mut obj = Siblings::new();
        let blind = VersionVector::new();
        obj.update(&blind, &n("a"), Some(Bytes::from("x")), 1); // client A: (a,1)
        let before = obj.clock().get(&n("a"));
        let dot = obj.update(&blind, &n("a"), Some(Bytes::from("y")), 2); // client B: (a,2)
        let b_context = Siblings::writer_context(&blind, &dot, before);
        assert!(
            !b_context.covers(&Dot {
                node: n("a"),
                counter: 1
            }),
            "B never saw x"
        );
        obj.update(&b_context, &n("a"), Some(Bytes::from("z")), 3);
        assert!(
            live(&obj).contains(&b"x".as_ref()),
            "x survives B's write-back"
        );

        // A writer whose context is up to date gets its own write covered.
        let mut obj = Siblings::new();
        let dot = obj.update(&blind, &n("a"), Some(Bytes::from("v1")), 1);
        let ctx = Siblings::writer_context(&blind, &dot, 0);
        obj.update(&ctx, &n("a"), Some(Bytes::from("v2")), 2);
        assert_eq!(
            live(&obj),
            vec![b"v2".as_ref()],
            "write-back replaces the writer's own write"
        );
    }

    #[test]
    fn counters_are_at_least_the_write_time_and_never_repeat_after_a_reap() {
        let a = n("a");
        let mut obj = Siblings::new();
        let old = obj.update(&VersionVector::new(), &a, Some(Bytes::from("old")), 1_000);
        assert_eq!(old.counter, 1_000, "floored at the write's time");
        let seen = obj.clock().clone();
        let next = obj.update(&seen, &a, None, 1_000);
        assert_eq!(next.counter, 1_001, "same millisecond: one more");
        let late_context = obj.clock().clone();
        // The key is reaped: its clock is gone. Hours later, a new write.
        let mut fresh = Siblings::new();
        let new = fresh.update(
            &VersionVector::new(),
            &a,
            Some(Bytes::from("new")),
            5_000_000,
        );
        assert!(
            new.counter > next.counter,
            "no dot of the reaped key comes back"
        );
        // A client still holding the pre-reap context writes: the new
        // version is not covered by it, so it survives as a sibling.
        fresh.update(&late_context, &a, Some(Bytes::from("late")), 5_000_001);
        assert_eq!(live(&fresh), vec![b"new".as_ref(), b"late".as_ref()]);
    }

    #[test]
    fn a_writer_whose_context_covers_every_earlier_dot_gets_its_jumped_dot() {
        let a = n("a");
        let mut obj = Siblings::new();
        let first = obj.update(&VersionVector::new(), &a, Some(Bytes::from("1")), 1_000);
        let ctx = Siblings::writer_context(&VersionVector::new(), &first, 0);
        let before = obj.clock().get(&a);
        let second = obj.update(&ctx, &a, Some(Bytes::from("2")), 9_000);
        assert_eq!(second.counter, 9_000, "the counter jumped with the clock");
        let ctx = Siblings::writer_context(&ctx, &second, before);
        assert!(
            ctx.covers(&second),
            "nothing unseen in between: the writer gets it"
        );
        obj.update(&ctx, &a, Some(Bytes::from("3")), 9_001);
        assert_eq!(
            live(&obj),
            vec![b"3".as_ref()],
            "write-backs keep collapsing"
        );
    }

    #[test]
    fn a_tombstone_wins_over_the_stale_value_it_saw() {
        let mut obj = Siblings::new();
        obj.update(&VersionVector::new(), &n("a"), Some(Bytes::from("v")), 1);
        let stale = obj.clone();
        obj.update(&stale.clock().clone(), &n("a"), None, 2);
        assert!(obj.is_deleted());
        assert!(stale.merged(&obj).is_deleted());
        assert!(obj.merged(&stale).is_deleted());
    }

    #[test]
    fn an_expired_value_reads_as_a_tombstone_and_counts_as_gone_from_its_expiry() {
        let a = n("a");
        let mut obj = Siblings::new();
        obj.update_expiring(
            &VersionVector::new(),
            &a,
            Some(Bytes::from("s")),
            1_000,
            Some(5_000),
        );
        assert_eq!(obj.gone_since(4_999), None, "live until its expiry");
        assert!(!obj.as_seen_at(4_999).is_deleted());
        assert!(obj.as_seen_at(5_000).is_deleted());
        assert_eq!(obj.as_seen_at(5_000).clock(), obj.clock(), "same context");
        assert_eq!(obj.gone_since(5_000), Some(5_000));
        // A tombstone never expires; a later live value keeps the key live.
        let mut del = obj.clone();
        let seen = del.clock().clone();
        del.update_expiring(&seen, &a, None, 2_000, Some(3_000));
        assert_eq!(
            del.versions()[0].expires_ms,
            None,
            "tombstones carry no TTL"
        );
        assert_eq!(del.gone_since(2_000), Some(2_000));
        obj.update(&VersionVector::new(), &a, Some(Bytes::from("keep")), 6_000);
        assert_eq!(obj.gone_since(10_000), None);
    }

    #[test]
    fn from_parts_rejects_uncovered_or_duplicate_dots() {
        let dot = Dot {
            node: n("a"),
            counter: 1,
        };
        let v = Version {
            dot: dot.clone(),
            value: None,
            timestamp_ms: 0,
            expires_ms: None,
        };
        assert!(Siblings::from_parts(VersionVector::new(), vec![v.clone()]).is_err());
        let mut clock = VersionVector::new();
        clock.add(&dot);
        assert!(Siblings::from_parts(clock.clone(), vec![v.clone(), v.clone()]).is_err());
        assert!(Siblings::from_parts(clock, vec![v]).is_ok());
    }
}
