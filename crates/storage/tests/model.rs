//! Model-based property test: both engines behave like a `BTreeMap` per
//! keyspace under random puts, deletes, batches, reads, scans and
//! sync-then-restart cycles.
//!
//! Keys come from a three-letter binary alphabet (0x00, 'a', 0xff) and are at
//! most three bytes long, so sequences collide, overwrite and hit the empty
//! key often.

mod common;

use common::{scan_all, Engine, Fjall, Mem};
use proptest::collection::vec;
use proptest::prelude::*;
use ringkv_storage::{Keyspace, Storage, WriteBatch};
use std::collections::BTreeMap;

type Model = [BTreeMap<Vec<u8>, Vec<u8>>; 3];

#[derive(Debug, Clone)]
enum BatchOp {
    Put(Keyspace, Vec<u8>, Vec<u8>),
    Delete(Keyspace, Vec<u8>),
}

#[derive(Debug, Clone)]
enum Cmd {
    Batch(Vec<BatchOp>),
    Get(Keyspace, Vec<u8>),
    Scan(Keyspace, Vec<u8>, Option<Vec<u8>>, usize),
    SyncAndRestart,
}

fn idx(ks: Keyspace) -> usize {
    Keyspace::ALL
        .iter()
        .position(|k| *k == ks)
        .expect("listed in ALL")
}

fn keyspace() -> impl Strategy<Value = Keyspace> {
    prop::sample::select(Keyspace::ALL.to_vec())
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    vec(prop::sample::select(vec![0x00u8, b'a', 0xff]), 0..=3)
}

fn batch_op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        3 => (keyspace(), key(), vec(any::<u8>(), 0..8)).prop_map(|(ks, k, v)| BatchOp::Put(ks, k, v)),
        1 => (keyspace(), key()).prop_map(|(ks, k)| BatchOp::Delete(ks, k)),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        // Single-op batches are the plain put/delete case.
        4 => batch_op().prop_map(|op| Cmd::Batch(vec![op])),
        2 => vec(batch_op(), 0..6).prop_map(Cmd::Batch),
        3 => (keyspace(), key()).prop_map(|(ks, k)| Cmd::Get(ks, k)),
        2 => (keyspace(), key(), prop::option::of(key()), 0usize..6)
            .prop_map(|(ks, s, e, l)| Cmd::Scan(ks, s, e, l)),
        1 => Just(Cmd::SyncAndRestart),
    ]
}

fn model_scan(
    m: &BTreeMap<Vec<u8>, Vec<u8>>,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.iter()
        .filter(|(k, _)| k.as_slice() >= start && end.is_none_or(|e| k.as_slice() < e))
        .take(limit)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn run<E: Engine>(cmds: Vec<Cmd>) -> Result<(), TestCaseError> {
    let mut engine = E::fresh();
    let mut model: Model = Default::default();
    for cmd in cmds {
        match cmd {
            Cmd::Batch(ops) => {
                let mut batch = WriteBatch::new();
                for op in ops {
                    match op {
                        BatchOp::Put(ks, k, v) => {
                            model[idx(ks)].insert(k.clone(), v.clone());
                            batch.put(ks, k, v);
                        }
                        BatchOp::Delete(ks, k) => {
                            model[idx(ks)].remove(&k);
                            batch.delete(ks, k);
                        }
                    }
                }
                engine.storage().write(batch).expect("write");
            }
            Cmd::Get(ks, k) => {
                let got = engine.storage().get(ks, &k).expect("get");
                prop_assert_eq!(got.as_ref(), model[idx(ks)].get(&k), "get {:?} {:?}", ks, k);
            }
            Cmd::Scan(ks, start, end, limit) => {
                let got = engine
                    .storage()
                    .scan(ks, &start, end.as_deref(), limit)
                    .expect("scan");
                let want = model_scan(&model[idx(ks)], &start, end.as_deref(), limit);
                prop_assert_eq!(
                    got,
                    want,
                    "scan {:?} {:?}..{:?} limit {}",
                    ks,
                    start,
                    end,
                    limit
                );
            }
            Cmd::SyncAndRestart => {
                engine.storage().sync().expect("sync");
                engine.restart();
            }
        }
    }
    for ks in Keyspace::ALL {
        let want: Vec<_> = model[idx(ks)].clone().into_iter().collect();
        prop_assert_eq!(
            scan_all(engine.storage(), ks),
            want,
            "final contents of {:?}",
            ks
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mem_behaves_like_btreemap(cmds in vec(cmd(), 1..40)) {
        run::<Mem>(cmds)?;
    }

    #[test]
    fn fjall_behaves_like_btreemap(cmds in vec(cmd(), 1..40)) {
        run::<Fjall>(cmds)?;
    }
}
