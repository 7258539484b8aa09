//! Single-threaded conformance cases: the semantics of `Storage` one call at a time.

use crate::common::{delete, get, put, scan_all, Engine};
use ringkv_storage::{
    Keyspace, Storage, StorageError, WriteBatch, MAX_STORAGE_KEY_BYTES, MAX_STORAGE_VALUE_BYTES,
};

const D: Keyspace = Keyspace::Data;
const H: Keyspace = Keyspace::Hints;

pub fn put_get_delete<E: Engine>() {
    let e = E::fresh();
    let s = e.storage();
    assert_eq!(get(s, D, b"k"), None);
    put(s, D, b"k", b"v1");
    assert_eq!(get(s, D, b"k").as_deref(), Some(&b"v1"[..]));
    delete(s, D, b"k");
    assert_eq!(get(s, D, b"k"), None);
    delete(s, D, b"never-written"); // deleting an absent key is a no-op
    assert_eq!(get(s, D, b"never-written"), None);
}

pub fn overwrite_keeps_last_value<E: Engine>() {
    let e = E::fresh();
    let s = e.storage();
    for v in [&b"one"[..], b"two", b"", b"three"] {
        put(s, D, b"k", v);
        assert_eq!(get(s, D, b"k").as_deref(), Some(v));
    }
    assert_eq!(scan_all(s, D).len(), 1);
}

pub fn batch_applies_all_ops_last_write_wins<E: Engine>() {
    let e = E::fresh();
    let s = e.storage();
    put(s, D, b"gone", b"x");
    let mut b = WriteBatch::new();
    b.put(D, "a", "1");
    b.put(H, "a", "hint");
    b.delete(D, "gone");
    b.put(D, "twice", "first");
    b.put(D, "twice", "second");
    b.put(D, "put-then-delete", "x");
    b.delete(D, "put-then-delete");
    b.delete(D, "delete-then-put");
    b.put(D, "delete-then-put", "back");
    assert_eq!(b.len(), 9);
    assert_eq!(get(s, D, b"a"), None, "nothing is visible before write");
    s.write(b).expect("write");

    type Want<'a> = (Keyspace, &'a [u8], Option<&'a [u8]>);
    let want: [Want; 6] = [
        (D, b"a", Some(b"1")),
        (H, b"a", Some(b"hint")),
        (D, b"gone", None),
        (D, b"twice", Some(b"second")),
        (D, b"put-then-delete", None),
        (D, b"delete-then-put", Some(b"back")),
    ];
    for (ks, key, value) in want {
        assert_eq!(get(s, ks, key).as_deref(), value, "{ks:?} {key:?}");
    }
    s.write(WriteBatch::new()).expect("empty batch is fine");
}

pub fn rejected_batch_applies_nothing<E: Engine>() {
    let e = E::fresh();
    let s = e.storage();
    let mut b = WriteBatch::new();
    b.put(D, "ok", "v");
    b.delete(H, "also-ok");
    b.put(D, vec![b'k'; MAX_STORAGE_KEY_BYTES + 1], "v");
    assert!(matches!(s.write(b), Err(StorageError::KeyTooLarge { .. })));
    assert_eq!(get(s, D, b"ok"), None, "a rejected batch applies nothing");
}

pub fn keyspaces_are_separate<E: Engine>() {
    let e = E::fresh();
    let s = e.storage();
    put(s, H, b"k", b"hint");
    for ks in [Keyspace::Data, Keyspace::Meta] {
        assert_eq!(get(s, ks, b"k"), None, "{ks:?}");
        assert!(scan_all(s, ks).is_empty(), "{ks:?}");
    }
    put(s, D, b"k", b"data");
    delete(s, Keyspace::Meta, b"k");
    assert_eq!(get(s, H, b"k").as_deref(), Some(&b"hint"[..]));
    assert_eq!(get(s, D, b"k").as_deref(), Some(&b"data"[..]));
}

pub fn scan_respects_order_and_bounds<E: Engine>() {
    let e = E::fresh();
    let s = e.storage();
    let keys: [&[u8]; 9] = [
        b"",
        &[0],
        &[0, 0],
        b"a",
        b"b",
        b"ba",
        b"c",
        &[0xff],
        &[0xff, 0xff],
    ];
    // Written out of order, and with a decoy in another keyspace.
    for key in keys.iter().rev() {
        put(s, D, key, &[b"v:", *key].concat());
    }
    put(s, H, b"b0", b"decoy");

    // (start, end, limit, expected keys)
    type Case<'a> = (&'a [u8], Option<&'a [u8]>, usize, &'a [&'a [u8]]);
    let cases: [Case; 11] = [
        (b"", None, usize::MAX, &keys),
        (b"", None, 0, &[]),
        (b"", None, 3, &keys[..3]),
        (b"a", Some(b"c"), 100, &[b"a", b"b", b"ba"]),
        (b"b", Some(b"ba"), 100, &[b"b"]),
        (b"a", Some(b"b\0"), 100, &[b"a", b"b"]),
        (b"b", Some(b"b"), 100, &[]),
        (b"c", Some(b"a"), 100, &[]),
        (b"bb", None, 100, &[b"c", &[0xff], &[0xff, 0xff]]),
        (&[0xff], None, 1, &[&[0xff]]),
        (b"zz", Some(&[0xff]), 10, &[]),
    ];
    for (start, end, limit, want) in cases {
        let got = s.scan(D, start, end, limit).expect("scan");
        let got_keys: Vec<&[u8]> = got.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(got_keys, want, "scan({start:?}, {end:?}, {limit})");
        for (k, v) in &got {
            assert_eq!(*v, [&b"v:"[..], k].concat(), "value of {k:?}");
        }
    }
}

pub fn empty_values_and_binary_keys<E: Engine>() {
    let e = E::fresh();
    let s = e.storage();
    let cases: [(&[u8], &[u8]); 6] = [
        (b"empty-value", b""),
        (b"", b"empty key"),
        (&[0x00], &[0x00]),
        (&[0xff], &[0xff, 0xff]),
        (&[0x00, 0xff, 0x00], b"mixed"),
        (b"big", &[0x5a; 1 << 20]),
    ];
    for (key, value) in cases {
        put(s, D, key, value);
    }
    for (key, value) in cases {
        assert_eq!(get(s, D, key).as_deref(), Some(value), "key {key:?}");
    }
    assert_eq!(scan_all(s, D).len(), cases.len());
}

pub fn size_limits_are_typed_errors<E: Engine>() {
    let e = E::fresh();
    let s = e.storage();
    let at_limit = vec![0xab; MAX_STORAGE_KEY_BYTES];
    put(s, D, &at_limit, b"v");
    assert_eq!(get(s, D, &at_limit).as_deref(), Some(&b"v"[..]));

    let too_long = vec![0xab; MAX_STORAGE_KEY_BYTES + 1];
    let key_err = |r: Result<(), StorageError>| match r {
        Err(StorageError::KeyTooLarge { len, limit }) => {
            assert_eq!(
                (len, limit),
                (MAX_STORAGE_KEY_BYTES + 1, MAX_STORAGE_KEY_BYTES)
            );
        }
        other => panic!("want KeyTooLarge, got {other:?}"),
    };
    let mut b = WriteBatch::new();
    b.put(D, too_long.clone(), "v");
    key_err(s.write(b));
    let mut b = WriteBatch::new();
    b.delete(D, too_long.clone());
    key_err(s.write(b));
    key_err(s.get(D, &too_long).map(|_| ()));

    let mut b = WriteBatch::new();
    b.put(D, "k", vec![0u8; MAX_STORAGE_VALUE_BYTES + 1]);
    match s.write(b) {
        Err(StorageError::ValueTooLarge { len, limit }) => {
            assert_eq!(
                (len, limit),
                (MAX_STORAGE_VALUE_BYTES + 1, MAX_STORAGE_VALUE_BYTES)
            );
        }
        other => panic!("want ValueTooLarge, got {other:?}"),
    }
    assert_eq!(get(s, D, b"k"), None);
}

pub fn corrupt_records_are_errors_never_values<E: Engine>() {
    let e = E::fresh();
    let s = e.storage();
    for key in [&b"k1"[..], b"k2", b"k3"] {
        put(s, D, key, b"value");
    }
    put(s, H, b"k2", b"hint");
    e.corrupt(D, b"k2");

    match s.get(D, b"k2") {
        Err(StorageError::Corrupt {
            keyspace, key_hex, ..
        }) => {
            assert_eq!((keyspace, key_hex.as_str()), ("data", "6b32"));
        }
        other => panic!("want Corrupt, got {other:?}"),
    }
    assert!(matches!(
        s.scan(D, b"", None, 10),
        Err(StorageError::Corrupt { .. })
    ));
    // Records around it, and the same key elsewhere, are unaffected.
    assert_eq!(get(s, D, b"k1").as_deref(), Some(&b"value"[..]));
    assert_eq!(get(s, H, b"k2").as_deref(), Some(&b"hint"[..]));
    assert_eq!(s.scan(D, b"k1", Some(b"k2"), 10).expect("scan").len(), 1);
    assert_eq!(s.scan(D, b"k3", None, 10).expect("scan").len(), 1);
    // A fresh write replaces the damaged record.
    put(s, D, b"k2", b"healed");
    assert_eq!(get(s, D, b"k2").as_deref(), Some(&b"healed"[..]));
}

pub fn approximate_len_counts_inserted_keys<E: Engine>() {
    let e = E::fresh();
    let s = e.storage();
    for i in 0u32..25 {
        put(s, D, &i.to_be_bytes(), b"v");
    }
    put(s, H, b"h", b"v");
    let cases = [
        (Keyspace::Data, 25),
        (Keyspace::Hints, 1),
        (Keyspace::Meta, 0),
    ];
    for (ks, want) in cases {
        assert_eq!(s.approximate_len(ks).expect("len"), want, "{ks:?}");
    }
}

pub fn sync_succeeds_and_reports_blocking<E: Engine>() {
    let e = E::fresh();
    let s = e.storage();
    s.sync().expect("sync with nothing written");
    put(s, D, b"k", b"v");
    s.sync().expect("sync");
    assert_eq!(s.sync_blocks(), E::SYNC_BLOCKS);
    assert_eq!(get(s, D, b"k").as_deref(), Some(&b"v"[..]));
}

pub fn synced_writes_survive_restart<E: Engine>() {
    let mut e = E::fresh();
    put(e.storage(), D, b"kept", b"1");
    put(e.storage(), H, b"hint", b"2");
    put(e.storage(), D, b"deleted", b"3");
    delete(e.storage(), D, b"deleted");
    e.storage().sync().expect("sync");
    e.restart();
    let s = e.storage();
    assert_eq!(get(s, D, b"kept").as_deref(), Some(&b"1"[..]));
    assert_eq!(get(s, H, b"hint").as_deref(), Some(&b"2"[..]));
    assert_eq!(get(s, D, b"deleted"), None);
    assert_eq!(get(s, D, b"hint"), None);
}
