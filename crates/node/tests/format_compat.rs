//! Data written by the previous release stays readable (P1–P3 rewrite).
//!
//! The partitioned layout changed how keys are *placed*, not how they are
//! *stored*: a storage key still starts with the key's 64-bit ring position
//! (big-endian), then the bucket length, bucket and key; the stored value is
//! the checksummed record around the format-1 object encoding. The bytes
//! below were produced by the release before the layout (commit `ce76e78`)
//! for one object with a tombstone and a sibling; this test decodes them
//! with today's code. Objects are written in format 2 since TTLs (a version
//! may carry `expires_ms`); the test checks the old bytes still read, and
//! that today's encoding is format 2 and round-trips. It never writes files.

use bytes::Bytes;
use ringkv_core::codec::{
    decode_object, encode_object, is_current_object_format, OBJECT_FORMAT_V2,
};
use ringkv_core::key::ObjectKey;
use ringkv_core::layout::partition_of;
use ringkv_storage::record;

const KEY: &str = "44cdbaef338cb10c056361727473616c696365";
const OBJECT: &str = "0102046e317e3702046e327e330102046e317e37020082d095ffbc31046e327e33010105706561727381d095ffbc31";
const RECORD: &str = "0162047c480102046e317e3702046e327e330102046e317e37020082d095ffbc31046e327e33010105706561727381d095ffbc31";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn the_previous_releases_storage_key_record_and_object_still_decode() {
    let key = ObjectKey::new("carts", Bytes::from("alice"), 1024).unwrap();
    assert_eq!(key.storage_key(), unhex(KEY), "storage key layout");
    assert_eq!(ObjectKey::from_storage_key(&unhex(KEY)).unwrap(), key);

    let payload = record::open(&unhex(KEY), &unhex(RECORD)).unwrap();
    assert_eq!(payload, unhex(OBJECT), "record envelope");
    let object = decode_object(&payload).unwrap();
    let clock: Vec<(String, u64)> = object
        .clock()
        .entries()
        .iter()
        .map(|(n, c)| (n.to_string(), *c))
        .collect();
    assert_eq!(clock, [("n1~7".to_string(), 2), ("n2~3".to_string(), 1)]);
    let versions: Vec<(String, u64, Option<&[u8]>)> = object
        .versions()
        .iter()
        .map(|v| (v.dot.node.to_string(), v.dot.counter, v.value.as_deref()))
        .collect();
    assert_eq!(
        versions,
        [
            ("n1~7".to_string(), 2, None),
            ("n2~3".to_string(), 1, Some(&b"pears"[..])),
        ]
    );
    // This release writes format 2 (versions may carry a TTL); the old
    // bytes are format 1 and read as versions without one.
    assert!(object.versions().iter().all(|v| v.expires_ms.is_none()));
    assert!(!is_current_object_format(&unhex(OBJECT)));
    let current = encode_object(&object).unwrap();
    assert_eq!(current[0], OBJECT_FORMAT_V2);
    assert!(is_current_object_format(&current));
    assert_eq!(
        decode_object(&current).unwrap(),
        object,
        "round-trips in format 2"
    );
    assert_eq!(record::seal(&unhex(KEY), &unhex(OBJECT)), unhex(RECORD));
}

#[test]
fn a_partition_is_a_contiguous_range_of_storage_keys() {
    // The first 8 bytes of a storage key are the position, so sorting storage
    // keys sorts by position and partition `p` is one contiguous scan.
    let key = ObjectKey::new("carts", Bytes::from("alice"), 1024).unwrap();
    let raw = key.storage_key();
    let position = u64::from_be_bytes(raw[..8].try_into().unwrap());
    assert_eq!(position, key.position());
    assert_eq!(partition_of(position, 256), (position >> 56) as u32);
}
