//! Crash semantics of the in-memory engine, checked against a two-view model.
//!
//! The model keeps `current` and `durable` maps: writes change `current`,
//! `sync` copies `current` to `durable`, and `crash` copies `durable` back.
//! After every step the engine's full contents must equal `current`.

mod common;

use common::scan_all;
use proptest::collection::vec;
use proptest::prelude::*;
use ringkv_storage::{Keyspace, MemStorage, Storage, WriteBatch};
use std::collections::BTreeMap;

type Model = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

#[derive(Debug, Clone)]
enum Step {
    Put(usize, u8, u8),
    Delete(usize, u8),
    Sync,
    Crash,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..3, 0u8..6, any::<u8>()).prop_map(|(ks, k, v)| Step::Put(ks, k, v)),
        2 => (0usize..3, 0u8..6).prop_map(|(ks, k)| Step::Delete(ks, k)),
        1 => Just(Step::Sync),
        1 => Just(Step::Crash),
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
    fn crash_forgets_exactly_the_unsynced_writes(steps in vec(step(), 1..60)) {
        let s = MemStorage::new();
        let mut current = Model::new();
        let mut durable = Model::new();
        for step in steps {
            match step {
                Step::Put(ks, k, v) => {
                    let mut b = WriteBatch::new();
                    b.put(Keyspace::ALL[ks], [k], [v]);
                    s.write(b).expect("write");
                    current.insert((ks, vec![k]), vec![v]);
                }
                Step::Delete(ks, k) => {
                    let mut b = WriteBatch::new();
                    b.delete(Keyspace::ALL[ks], [k]);
                    s.write(b).expect("write");
                    current.remove(&(ks, vec![k]));
                }
                Step::Sync => {
                    s.sync().expect("sync");
                    durable = current.clone();
                }
                Step::Crash => {
                    s.crash();
                    current = durable.clone();
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
