//! Crash semantics of the in-memory engine, checked against a two-view model.
//!
//! The model keeps `current` and `durable` maps and the unsynced writes in
//! order: writes change `current`, `sync` copies `current` to `durable`,
//! `crash` copies `durable` back, and `crash_keeping` applies the unsynced
//! writes its report says it kept, in order, to `durable` and then copies it
//! back. After every step the engine's full contents must equal `current`.

mod common;

use common::scan_all;
use proptest::collection::vec;
use proptest::prelude::*;
use ringkv_storage::{Keyspace, MemStorage, Storage, WriteBatch};
use std::collections::BTreeMap;

type Model = BTreeMap<(usize, Vec<u8>), Vec<u8>>;
/// One unsynced write: its key and new value (None = deleted).
type Unsynced = ((usize, Vec<u8>), Option<Vec<u8>>);

#[derive(Debug, Clone)]
enum Step {
    Put(usize, u8, u8),
    Delete(usize, u8),
    Sync,
    Crash,
    CrashKeeping(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..3, 0u8..6, any::<u8>()).prop_map(|(ks, k, v)| Step::Put(ks, k, v)),
        2 => (0usize..3, 0u8..6).prop_map(|(ks, k)| Step::Delete(ks, k)),
        1 => Just(Step::Sync),
        1 => Just(Step::Crash),
        1 => any::<u64>().prop_map(Step::CrashKeeping),
    ]
}

fn contents(s: &MemStorage) -> Model {
    let mut out = Model::new();
    for (i, ks) in Keyspace::ALL.iter().enumerate() {
        for (k, v) in scan_all(s, *ks) {
            out.insert((i, k), v);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn power_loss_keeps_exactly_the_synced_and_the_kept_writes(steps in vec(step(), 1..60)) {
        let s = MemStorage::new();
        let mut current = Model::new();
        let mut durable = Model::new();
        let mut unsynced: Vec<Unsynced> = Vec::new(); // oldest first
        for step in steps {
            match step {
                Step::Put(ks, k, v) => {
                    let mut b = WriteBatch::new();
                    b.put(Keyspace::ALL[ks], [k], [v]);
                    s.write(b).expect("write");
                    current.insert((ks, vec![k]), vec![v]);
                    unsynced.push(((ks, vec![k]), Some(vec![v])));
                }
                Step::Delete(ks, k) => {
                    let mut b = WriteBatch::new();
                    b.delete(Keyspace::ALL[ks], [k]);
                    s.write(b).expect("write");
                    current.remove(&(ks, vec![k]));
                    unsynced.push(((ks, vec![k]), None));
                }
                Step::Sync => {
                    s.sync().expect("sync");
                    durable = current.clone();
                    unsynced.clear();
                }
                Step::Crash => {
                    s.crash();
                    current = durable.clone();
                    unsynced.clear();
                }
                Step::CrashKeeping(seed) => {
                    let report = s.crash_keeping(seed);
                    prop_assert_eq!(report.unsynced, unsynced.len());
                    for position in report.kept {
                        let (key, value) = unsynced[position].clone();
                        match value {
                            Some(v) => durable.insert(key, v),
                            None => durable.remove(&key),
                        };
                    }
                    current = durable.clone();
                    unsynced.clear();
                }
            }
            prop_assert_eq!(contents(&s), current.clone(), "after {:?}", step);
        }
    }
}

#[test]
fn table_of_crash_outcomes() {
    // (writes before sync, writes after sync, expected value of "k" after crash)
    let cases: [(&[&str], &[&str], Option<&str>); 5] = [
        (&[], &[], None),
        (&["a"], &[], Some("a")),
        (&[], &["a"], None),
        (&["a"], &["b"], Some("a")),
        (&["a", "b"], &["c", "d"], Some("b")),
    ];
    for (synced, unsynced, want) in cases {
        let s = MemStorage::new();
        let write = |v: &str| {
            let mut b = WriteBatch::new();
            b.put(Keyspace::Data, "k", v);
            s.write(b).expect("write");
        };
        synced.iter().for_each(|v| write(v));
        s.sync().expect("sync");
        unsynced.iter().for_each(|v| write(v));
        // A clone shares state, so crashing through it affects `s`.
        s.clone().crash();
        let got = s.get(Keyspace::Data, b"k").expect("get");
        assert_eq!(
            got.as_deref(),
            want.map(str::as_bytes),
            "{synced:?} then {unsynced:?}"
        );
    }
}
