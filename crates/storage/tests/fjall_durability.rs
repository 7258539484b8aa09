//! fjall-only checks: data survives close and reopen, records stay checked
//! across reopen, and a second open of a live directory is a typed error.

mod common;

use common::{get, put, scan_all};
use ringkv_storage::{
    record, FjallStorage, Keyspace, Storage, StorageError, WriteBatch, MAX_STORAGE_KEY_BYTES,
};
use std::path::Path;

fn open(dir: &Path) -> FjallStorage {
    FjallStorage::open(dir).expect("open fjall")
}

#[test]
fn synced_writes_survive_drop_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long_key = vec![0x42; MAX_STORAGE_KEY_BYTES];
    {
        let s = open(dir.path());
        let mut b = WriteBatch::new();
        for i in 0u32..2_000 {
            b.put(Keyspace::Data, i.to_be_bytes(), vec![(i % 251) as u8; 512]);
        }
        b.put(Keyspace::Hints, "hint", "h");
        b.put(Keyspace::Meta, "node-id", "n1");
        b.put(Keyspace::Data, long_key.clone(), "long");
        s.write(b).expect("write");
        let mut b = WriteBatch::new();
        b.delete(Keyspace::Data, 7u32.to_be_bytes());
        s.write(b).expect("write");
        s.sync().expect("sync");
    }
    let s = open(dir.path());
    let data = scan_all(&s, Keyspace::Data);
    assert_eq!(data.len(), 2_000, "1999 numbered keys + the long key");
    for (k, v) in &data[..1_999] {
        let i = u32::from_be_bytes(k.as_slice().try_into().expect("4-byte key"));
        assert_ne!(i, 7, "deleted key came back");
        assert_eq!(*v, vec![(i % 251) as u8; 512], "value of {i}");
    }
    assert_eq!(
        get(&s, Keyspace::Data, &long_key).as_deref(),
        Some(&b"long"[..])
    );
    assert_eq!(
        get(&s, Keyspace::Hints, b"hint").as_deref(),
        Some(&b"h"[..])
    );
    assert_eq!(
        get(&s, Keyspace::Meta, b"node-id").as_deref(),
        Some(&b"n1"[..])
    );
    assert_eq!(get(&s, Keyspace::Data, b"hint"), None);
}

#[test]
fn reopen_twice_keeps_later_writes_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0u8..3 {
        let s = open(dir.path());
        for earlier in 0..round {
            assert_eq!(
                get(&s, Keyspace::Data, &[earlier]).as_deref(),
                Some(&[earlier][..])
            );
        }
        put(&s, Keyspace::Data, &[round], &[round]);
        s.sync().expect("sync");
    }
}

#[test]
fn second_open_of_a_live_directory_is_an_engine_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = open(dir.path());
    match FjallStorage::open(dir.path()) {
        Err(StorageError::Engine(msg)) => assert!(msg.contains("open"), "{msg}"),
        Err(other) => panic!("want Engine error, got {other:?}"),
        Ok(_) => panic!("second open of a locked directory succeeded"),
    }
    put(&first, Keyspace::Data, b"k", b"still usable");
    assert!(get(&first, Keyspace::Data, b"k").is_some());
}

#[test]
fn damaged_records_stay_errors_across_reopen() {
    let good = record::seal(b"k", b"payload");
    let mut bad_version = good.clone();
    bad_version[0] = 9;
    let mut bad_crc = good.clone();
    bad_crc[2] ^= 0x10;
    let cases: [(&str, Vec<u8>); 5] = [
        ("empty", Vec::new()),
        ("truncated header", good[..3].to_vec()),
        ("unknown version", bad_version),
        ("flipped checksum", bad_crc),
        ("sealed for another key", record::seal(b"other", b"payload")),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = open(dir.path());
        for (name, raw) in &cases {
            s.raw_put_for_tests(Keyspace::Data, name.as_bytes(), raw)
                .expect("raw put");
        }
        s.raw_put_for_tests(Keyspace::Data, b"good", &record::seal(b"good", b"ok"))
            .expect("raw put");
        s.sync().expect("sync");
    }
    let s = open(dir.path());
    for (name, _) in &cases {
        match s.get(Keyspace::Data, name.as_bytes()) {
            Err(StorageError::Corrupt {
                keyspace: "data", ..
            }) => {}
            other => panic!("{name}: want Corrupt, got {other:?}"),
        }
        let scan = s.scan(Keyspace::Data, name.as_bytes(), None, 1);
        assert!(
            matches!(scan, Err(StorageError::Corrupt { .. })),
            "{name}: scan {scan:?}"
        );
    }
    assert_eq!(
        get(&s, Keyspace::Data, b"good").as_deref(),
        Some(&b"ok"[..])
    );
}
