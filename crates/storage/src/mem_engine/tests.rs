//! Unit tests of the in-memory engine: crash, power loss, lying sync, corruption.

use super::*;
use std::collections::BTreeSet;

fn put(s: &MemStorage, key: &str, value: &str) {
    let mut b = WriteBatch::new();
    b.put(Keyspace::Data, key, value);
    s.write(b).expect("write");
}

fn del(s: &MemStorage, key: &str) {
    let mut b = WriteBatch::new();
    b.delete(Keyspace::Data, key);
    s.write(b).expect("write");
}

fn get(s: &MemStorage, key: &str) -> Option<String> {
    let v = s.get(Keyspace::Data, key.as_bytes()).expect("get");
    v.map(|v| String::from_utf8(v).expect("utf8"))
}

#[test]
fn crash_keeps_synced_and_forgets_unsynced() {
    let s = MemStorage::new();
    put(&s, "kept", "1");
    put(&s, "overwritten", "old");
    put(&s, "deleted", "x");
    s.sync().expect("sync");
    put(&s, "overwritten", "new");
    del(&s, "deleted");
    put(&s, "lost", "2");
    assert_eq!(get(&s, "lost").as_deref(), Some("2"));

    assert_eq!(s.crashes(), 0);
    s.clone().crash();
    assert_eq!(s.crashes(), 1, "clones share the engine and its count");

    let table = [
        ("kept", Some("1")),
        ("overwritten", Some("old")),
        ("deleted", Some("x")),
        ("lost", None),
    ];
    for (key, want) in table {
        assert_eq!(get(&s, key).as_deref(), want, "{key}");
    }
}

#[test]
fn a_scan_skipping_corrupt_records_names_them_and_returns_the_rest() {
    let s = MemStorage::new();
    for k in ["a", "b", "c"] {
        put(&s, k, "v");
    }
    assert!(s.corrupt(Keyspace::Data, b"b"));
    assert!(matches!(
        s.scan(Keyspace::Data, b"", None, 10),
        Err(StorageError::Corrupt { .. })
    ));
    let scanned = s
        .scan_skipping_corrupt(Keyspace::Data, b"", None, 10)
        .unwrap();
    let keys: Vec<&[u8]> = scanned.records.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [b"a".as_slice(), b"c".as_slice()]);
    assert_eq!(scanned.corrupt.len(), 1);
    assert_eq!(scanned.corrupt[0].key, b"b");
    let two = s
        .scan_skipping_corrupt(Keyspace::Data, b"", None, 2)
        .unwrap();
    assert_eq!(
        (two.records.len(), two.corrupt.len()),
        (1, 1),
        "the limit counts both"
    );
}

#[test]
fn corruption_of_a_durable_record_survives_crash() {
    let s = MemStorage::new();
    put(&s, "k", "v");
    s.sync().expect("sync");
    assert!(s.corrupt(Keyspace::Data, b"k"));
    s.crash();
    assert!(matches!(
        s.get(Keyspace::Data, b"k"),
        Err(StorageError::Corrupt { .. })
    ));
    assert!(!s.corrupt(Keyspace::Data, b"absent"));
    assert!(!s.corrupt(Keyspace::Hints, b"k"));
}

#[test]
fn corruption_of_an_unsynced_record_is_forgotten_by_crash() {
    let s = MemStorage::new();
    put(&s, "k", "old");
    s.sync().expect("sync");
    put(&s, "k", "new");
    assert!(s.corrupt(Keyspace::Data, b"k"));
    s.crash();
    assert_eq!(get(&s, "k").as_deref(), Some("old"));
}

/// A batch that puts `value` under every key in `keys`, across keyspaces.
fn put_batch(s: &MemStorage, keys: &[&str], value: &str) {
    let mut b = WriteBatch::new();
    for (i, key) in keys.iter().enumerate() {
        b.put(Keyspace::ALL[i % Keyspace::ALL.len()], *key, value);
    }
    s.write(b).expect("write");
}

fn get_in(s: &MemStorage, ks: Keyspace, key: &str) -> Option<String> {
    let v = s.get(ks, key.as_bytes()).expect("get");
    v.map(|v| String::from_utf8(v).expect("utf8"))
}

/// Four unsynced batches of three keys each over one synced one; after
/// `crash_keeping(seed)`, which batches are fully there (panics if one is
/// there only in part, or the synced batch is not).
fn surviving_batches(seed: u64) -> (PowerLoss, Vec<usize>) {
    let s = MemStorage::new();
    put_batch(&s, &["s0", "s1", "s2"], "synced");
    s.sync().expect("sync");
    let batches: Vec<[String; 3]> = (0..4)
        .map(|b| [0, 1, 2].map(|k| format!("b{b}k{k}")))
        .collect();
    for batch in &batches {
        let keys: Vec<&str> = batch.iter().map(String::as_str).collect();
        put_batch(&s, &keys, "unsynced");
    }
    let report = s.crash_keeping(seed);
    for (i, key) in ["s0", "s1", "s2"].iter().enumerate() {
        let ks = Keyspace::ALL[i % Keyspace::ALL.len()];
        assert_eq!(
            get_in(&s, ks, key).as_deref(),
            Some("synced"),
            "seed {seed}"
        );
    }
    let mut present = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let found: Vec<bool> = batch
            .iter()
            .enumerate()
            .map(|(i, key)| get_in(&s, Keyspace::ALL[i % Keyspace::ALL.len()], key).is_some())
            .collect();
        assert!(
            found.iter().all(|f| *f) || found.iter().all(|f| !*f),
            "seed {seed}: batch {b} survived in part: {found:?}"
        );
        if found[0] {
            present.push(b);
        }
    }
    (report, present)
}

#[test]
fn crash_keeping_keeps_whole_batches_and_reports_which() {
    for seed in 0..64 {
        let (report, present) = surviving_batches(seed);
        assert_eq!(report.unsynced, 4, "seed {seed}");
        assert_eq!(
            report.kept, present,
            "seed {seed}: the report names the survivors"
        );
    }
}

#[test]
fn crash_keeping_explores_every_subset_not_only_prefixes() {
    let mut seen = BTreeSet::new();
    for seed in 0..256 {
        seen.insert(surviving_batches(seed).1);
    }
    assert_eq!(seen.len(), 16, "all 2^4 subsets of four batches: {seen:?}");
    assert!(
        seen.contains(&vec![3]),
        "the newest kept, the older ones lost"
    );
}

#[test]
fn crash_keeping_is_a_function_of_the_seed_and_the_history() {
    for seed in [0, 1, 7, u64::MAX] {
        assert_eq!(surviving_batches(seed), surviving_batches(seed));
    }
    let differing =
        (0..16).filter(|seed| surviving_batches(*seed).1 != surviving_batches(seed + 1).1);
    assert!(differing.count() > 0, "different seeds choose differently");
}

#[test]
fn kept_batches_apply_in_write_order_over_the_synced_state() {
    // Synced "k" = old, "gone" present; unsynced: batch 0 puts k = first,
    // batch 1 puts k = second and deletes "gone".
    let expected = |kept: &[usize]| match kept {
        [] => (Some("old"), Some("x")),
        [0] => (Some("first"), Some("x")),
        [1] | [0, 1] => (Some("second"), None),
        other => panic!("impossible subset {other:?}"),
    };
    let mut subsets = BTreeSet::new();
    for seed in 0..64 {
        let s = MemStorage::new();
        put(&s, "k", "old");
        put(&s, "gone", "x");
        s.sync().expect("sync");
        put(&s, "k", "first");
        let mut b = WriteBatch::new();
        b.put(Keyspace::Data, "k", "second");
        b.delete(Keyspace::Data, "gone");
        s.write(b).expect("write");
        let report = s.crash_keeping(seed);
        let (k, gone) = expected(&report.kept);
        assert_eq!(
            get(&s, "k").as_deref(),
            k,
            "seed {seed} kept {:?}",
            report.kept
        );
        assert_eq!(get(&s, "gone").as_deref(), gone, "seed {seed}");
        subsets.insert(report.kept);
    }
    assert_eq!(subsets.len(), 4, "every subset came up: {subsets:?}");
}

#[test]
fn a_sync_empties_what_a_power_loss_can_drop_and_both_crashes_count() {
    let s = MemStorage::new();
    put(&s, "a", "1");
    s.sync().expect("sync");
    s.write(WriteBatch::new()).expect("an empty batch");
    let report = s.crash_keeping(3);
    assert_eq!(
        (report.unsynced, report.kept.len()),
        (0, 0),
        "nothing unsynced"
    );
    assert_eq!(get(&s, "a").as_deref(), Some("1"));
    put(&s, "b", "2");
    s.crash();
    assert_eq!(get(&s, "b"), None, "crash keeps no unsynced batch");
    assert_eq!(
        s.crash_keeping(9).unsynced,
        0,
        "crash emptied the candidates"
    );
    assert_eq!(s.crashes(), 3);
}

#[test]
fn a_lying_sync_makes_nothing_durable() {
    let s = MemStorage::with_lying_sync();
    put(&s, "k", "v");
    s.clone().sync().expect("the lie: sync says Ok");
    assert_eq!(get(&s, "k").as_deref(), Some("v"), "reads still see it");
    s.crash();
    assert_eq!(get(&s, "k"), None, "a power loss after the 'sync' loses it");

    put(&s, "k", "v");
    s.sync().expect("sync");
    let report = s.crash_keeping(0);
    assert_eq!(
        report.unsynced, 1,
        "the 'synced' batch is still only written"
    );

    let honest = MemStorage::new();
    put(&honest, "k", "v");
    honest.sync().expect("sync");
    honest.crash();
    assert_eq!(
        get(&honest, "k").as_deref(),
        Some("v"),
        "an honest sync keeps it"
    );
}

#[test]
fn the_simulated_sync_latency_is_zero_unless_set_and_shared_by_clones() {
    assert_eq!(MemStorage::new().simulated_sync_ms(), 0);
    let s = MemStorage::with_lying_sync().with_simulated_sync_ms(7);
    assert_eq!(s.clone().simulated_sync_ms(), 7);
    put(&s, "k", "v");
    s.sync().expect("sync");
    s.crash();
    assert_eq!(get(&s, "k"), None, "setting a latency keeps the lie");
}

#[test]
fn a_failing_sync_errs_makes_nothing_durable_and_then_passes() {
    let s = MemStorage::new();
    put(&s, "k", "v");
    s.fail_next_syncs(1);
    assert!(s.clone().sync().is_err(), "the failed fsync is reported");
    s.crash();
    assert_eq!(get(&s, "k"), None, "nothing became durable");
    put(&s, "k", "v");
    s.sync().expect("only the next sync failed");
    s.crash();
    assert_eq!(get(&s, "k").as_deref(), Some("v"));
    s.fail_next_syncs(1);
    s.crash();
    s.sync()
        .expect("a power loss disarms a sync failure of the old boot");
}
