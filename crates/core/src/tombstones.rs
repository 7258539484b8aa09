//! Tombstone garbage collection (D4, D5): when a deleted key may be
//! forgotten, and why doing so cannot bring it back.
//!
//! A delete writes a tombstone version with the deleter's causal context, so
//! merging it with any older copy (a stale replica, a late hint, an
//! anti-entropy exchange) keeps the delete. Tombstones would pile up
//! forever, so a key whose every version reads as a delete — tombstones,
//! and values past their TTL — is *reaped* (removed from storage, clock and
//! all) once [`reapable`] says so and [`homes_agree`] holds:
//!
//! 1. **A grace period has passed** since the last version became a
//!    delete, measured on the reaping node's wall clock against the
//!    versions' own times (`grace_ms`, longer than the hint age limit).
//! 2. **Every home of the key holds exactly this object, or nothing**: the
//!    node reads each other home's copy; any that is unreachable, or holds
//!    something else (an older value, a newer write), stops the reap. Then
//!    each home deletes its copy only if it is still that object (a
//!    compare-and-delete on its write lane), and the node deletes its own.
//!
//! Why nothing deleted comes back through any path, even under a partition:
//!
//! - *A replica's copy*: rule 2 saw every home; none held an older value. A
//!   home cut off by a partition cannot answer, so nothing is reaped while
//!   it might hold one. A home that held nothing never saw the old value.
//! - *Anti-entropy and read repair* copy only what homes hold, and after the
//!   reap no home holds a version of the key from before the delete.
//! - *Hints*: a hint is dropped, never delivered, once its newest write is
//!   older than the hint age limit ([`crate::hints::HintRecord::is_expired`]),
//!   and the grace period is longer: by the time a key is reaped, every hint
//!   carrying only writes from before the delete has expired. A hint
//!   carrying the tombstone itself may still arrive: it stores a tombstone,
//!   which is reaped again.
//! - *New writes reusing an old dot* (Riak's "doomstone", riak_kv#679): a
//!   dot's counter is at least its write's wall-clock ms
//!   ([`crate::siblings::Siblings::update`]), so no dot minted after the
//!   grace period can equal one minted before the delete, and a client still
//!   holding a pre-delete context cannot supersede a post-reap write.
//!
//! The guarantees rest on clocks that disagree by less than
//! `grace_ms - hint max age` (both hours by default) and never jump back
//! by more than that.
//!
//! Pure: time is an argument; nothing here does IO.

use crate::siblings::Siblings;

/// How long a delete is kept before it may be reaped: twice the default
/// hint age limit, leaving three hours for clock disagreement.
pub const DEFAULT_TOMBSTONE_GRACE_MS: u64 = 2 * crate::hints::DEFAULT_MAX_HINT_AGE_MS;

/// Whether `object` reads as deleted at wall-clock `now_ms` and has for at
/// least `grace_ms` (rule 1).
pub fn reapable(object: &Siblings, now_ms: u64, grace_ms: u64) -> bool {
    object
        .gone_since(now_ms)
        .is_some_and(|since| now_ms.saturating_sub(since) >= grace_ms)
}

/// Whether every other home's copy allows the reap (rule 2): each holds
/// exactly `ours`, or nothing. `theirs` must hold one answer per other home.
pub fn homes_agree(ours: &Siblings, theirs: &[Option<Siblings>]) -> bool {
    theirs
        .iter()
        .all(|copy| copy.as_ref().is_none_or(|c| c == ours))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version_vector::VersionVector;
    use crate::NodeId;
    use bytes::Bytes;

    fn deleted_at(ms: u64) -> Siblings {
        let a = NodeId::new("a").unwrap();
        let mut obj = Siblings::new();
        obj.update(&VersionVector::new(), &a, Some(Bytes::from("v")), ms - 10);
        let seen = obj.clock().clone();
        obj.update(&seen, &a, None, ms);
        obj
    }

    #[test]
    fn a_delete_is_reapable_only_after_the_grace_period() {
        let obj = deleted_at(1_000);
        assert!(!reapable(&obj, 1_999, 1_000));
        assert!(reapable(&obj, 2_000, 1_000));
        assert!(!reapable(&obj, 500, 1_000), "a clock behind the delete");
        let mut live = obj.clone();
        live.update(
            &VersionVector::new(),
            &NodeId::new("b").unwrap(),
            Some(Bytes::from("w")),
            1_500,
        );
        assert!(
            !reapable(&live, 1_000_000, 1_000),
            "a live sibling keeps the key"
        );
    }

    #[test]
    fn an_expired_value_is_reapable_a_grace_period_after_its_expiry() {
        let mut obj = Siblings::new();
        let a = NodeId::new("a").unwrap();
        obj.update_expiring(
            &VersionVector::new(),
            &a,
            Some(Bytes::from("s")),
            0,
            Some(5_000),
        );
        assert!(!reapable(&obj, 5_999, 1_000));
        assert!(reapable(&obj, 6_000, 1_000));
    }

    #[test]
    fn homes_agree_when_each_holds_the_same_object_or_nothing() {
        let obj = deleted_at(1_000);
        assert!(homes_agree(&obj, &[]));
        assert!(homes_agree(&obj, &[Some(obj.clone()), None]));
        let older = {
            let mut o = Siblings::new();
            o.update(
                &VersionVector::new(),
                &NodeId::new("a").unwrap(),
                Some(Bytes::from("v")),
                990,
            );
            o
        };
        assert!(
            !homes_agree(&obj, &[Some(obj.clone()), Some(older)]),
            "a stale value"
        );
        assert!(
            !homes_agree(&obj, &[Some(deleted_at(2_000))]),
            "a different delete"
        );
    }
}
