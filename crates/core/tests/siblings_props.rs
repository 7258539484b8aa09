//! Property tests of sibling reconciliation (V1–V3): merge laws, descendants
//! replace ancestors, no acknowledged concurrent write is ever dropped, and
//! sibling counts are bounded by the number of concurrent writers.
//!
//! The model: a few replicas (each the coordinator named after it) apply a
//! random schedule of client writes (with a context read from some replica, or
//! blind) and anti-entropy merges between replicas.

use bytes::Bytes;
use proptest::prelude::*;
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::{Dot, VersionVector};
use ringkv_core::NodeId;

const REPLICAS: usize = 3;

#[derive(Debug, Clone)]
enum Step {
    /// Replica `at` coordinates a write whose context is what replica
    /// `read_from` held (or blind).
    Write {
        at: usize,
        read_from: Option<usize>,
        delete: bool,
    },
    /// Replica `into` merges replica `from`'s object.
    Merge { into: usize, from: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0..REPLICAS,
            proptest::option::of(0..REPLICAS),
            proptest::bool::weighted(0.1)
        )
            .prop_map(|(at, read_from, delete)| Step::Write {
                at,
                read_from,
                delete
            }),
        (0..REPLICAS, 0..REPLICAS).prop_map(|(into, from)| Step::Merge { into, from }),
    ]
}

fn node(i: usize) -> NodeId {
    NodeId::new(&format!("n{i}")).unwrap()
}

/// Runs a schedule; returns the replicas and every write made (dot + the
/// context it was written with).
fn run(steps: &[Step]) -> (Vec<Siblings>, Vec<(Dot, VersionVector)>) {
    let mut replicas = vec![Siblings::new(); REPLICAS];
    let mut writes = Vec::new();
    for (t, s) in steps.iter().enumerate() {
        match *s {
            Step::Write {
                at,
                read_from,
                delete,
            } => {
                let ctx = read_from
                    .map(|r| replicas[r].clock().clone())
                    .unwrap_or_default();
                let value = (!delete).then(|| Bytes::from(format!("w{t}")));
                let dot = replicas[at].update(&ctx, &node(at), value, t as u64);
                writes.push((dot, ctx));
            }
            Step::Merge { into, from } => {
                let other = replicas[from].clone();
                replicas[into].merge(&other);
            }
        }
    }
    (replicas, writes)
}

fn full_merge(replicas: &[Siblings]) -> Siblings {
    replicas
        .iter()
        .fold(Siblings::new(), |acc, r| acc.merged(r))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn merge_is_commutative_associative_and_idempotent(steps in proptest::collection::vec(step(), 0..40)) {
        let (r, _) = run(&steps);
        let (a, b, c) = (&r[0], &r[1], &r[2]);
        prop_assert_eq!(a.merged(b), b.merged(a));
        prop_assert_eq!(a.merged(b).merged(c), a.merged(&b.merged(c)));
        prop_assert_eq!(a.merged(a), a.clone());
        prop_assert_eq!(a.merged(b).merged(b), a.merged(b));
    }

    #[test]
    fn no_concurrent_write_is_dropped_and_superseded_ones_are(steps in proptest::collection::vec(step(), 0..40)) {
        let (replicas, writes) = run(&steps);
        let all = full_merge(&replicas);
        let dots: Vec<&Dot> = all.versions().iter().map(|v| &v.dot).collect();
        for (dot, _) in &writes {
            // A write survives exactly when no later write's context saw it.
            let superseded = writes.iter().any(|(_, ctx)| ctx.covers(dot));
            prop_assert_eq!(dots.contains(&dot), !superseded, "dot {:?}", dot);
        }
    }

    #[test]
    fn a_descendant_always_replaces_its_ancestor(steps in proptest::collection::vec(step(), 1..40), at in 0..REPLICAS) {
        let (replicas, _) = run(&steps);
        let ancestor = full_merge(&replicas);
        let mut descendant = replicas[at].clone();
        descendant.update(ancestor.clock(), &node(at), Some(Bytes::from("final")), 1_000);
        for r in &replicas {
            let merged = r.merged(&descendant);
            prop_assert_eq!(merged.len(), 1);
            prop_assert_eq!(merged.values().next().unwrap().as_ref(), b"final");
            prop_assert_eq!(descendant.merged(r), merged);
        }
    }

    #[test]
    fn siblings_never_exceed_concurrent_writers(steps in proptest::collection::vec(step(), 0..40)) {
        let (replicas, writes) = run(&steps);
        let all = full_merge(&replicas);
        // Writers whose write nobody superseded are pairwise concurrent; the
        // sibling count is exactly that many and never more.
        let concurrent = writes.iter().filter(|(d, _)| !writes.iter().any(|(_, c)| c.covers(d))).count();
        prop_assert_eq!(all.len(), concurrent);
        for r in &replicas {
            prop_assert!(r.len() <= writes.len());
            for v in r.versions() {
                prop_assert!(r.clock().covers(&v.dot));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A writer that writes back the context its put returned supersedes only
    /// what that context's read saw plus its own write — never a concurrent
    /// write it did not see.
    #[test]
    fn writing_back_a_put_context_never_supersedes_unseen_writes(steps in proptest::collection::vec(step(), 0..40), at in 0..REPLICAS) {
        let (replicas, _) = run(&steps);
        let mut obj = replicas[at].clone();
        let seen = obj.clock().clone();
        let before: Vec<Dot> = obj.versions().iter().map(|v| v.dot.clone()).collect();
        let actor_before = obj.clock().get(&node(at));
        let dot = obj.update(&VersionVector::new(), &node(at), Some(Bytes::from("mine")), 1_000);
        let returned = Siblings::writer_context(&VersionVector::new(), &dot, actor_before);
        obj.update(&returned, &node(at), Some(Bytes::from("mine-again")), 1_001);
        for d in &before {
            // Blind writer: it saw nothing, so every earlier version survives.
            prop_assert!(obj.versions().iter().any(|v| &v.dot == d), "{:?} was dropped (seen {:?})", d, seen);
        }
    }
}
