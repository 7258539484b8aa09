//! Record framing: the checksummed envelope every stored value travels in.
//!
//! Both engines store each value as
//!
//! ```text
//! offset  size  field
//! 0       1     format version, currently 1
//! 1       4     crc32 (IEEE, crc32fast) of key bytes ++ payload, little-endian
//! 5       n     payload (the caller's value, possibly empty)
//! ```
//!
//! The checksum covers the key as well as the payload, so a record that ends
//! up under the wrong key (a misplaced write, a bad compaction) fails the
//! check just like a flipped bit does. [`seal`] is called before every write
//! and [`open`] after every read. This module is pure: it must never do IO
//! and must never return a payload whose check failed.

/// The only framing version this build writes and accepts.
pub const FORMAT_VERSION: u8 = 1;

/// Bytes of framing before the payload: version (1) + crc32 (4).
pub const HEADER_LEN: usize = 5;

/// Frames `payload` for storage under `key`.
pub fn seal(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(HEADER_LEN + payload.len());
    framed.push(FORMAT_VERSION);
    framed.extend_from_slice(&checksum(key, payload).to_le_bytes());
    framed.extend_from_slice(payload);
    framed
}

/// Checks a framed record read back from under `key` and returns its payload.
///
/// The `Err` is a human-readable reason (too short, unknown version,
/// checksum mismatch); engines wrap it in [`crate::StorageError::Corrupt`].
pub fn open(key: &[u8], framed: &[u8]) -> Result<Vec<u8>, String> {
    let Some((header, payload)) = framed.split_at_checked(HEADER_LEN) else {
        return Err(format!(
            "record is {} bytes, shorter than its {HEADER_LEN}-byte header",
            framed.len()
        ));
    };
    let [version, c0, c1, c2, c3] = *header else {
        return Err("record header has the wrong length".to_string());
    };
    if version != FORMAT_VERSION {
        return Err(format!(
            "unknown record format version {version} (expected {FORMAT_VERSION})"
        ));
    }
    let stored = u32::from_le_bytes([c0, c1, c2, c3]);
    let computed = checksum(key, payload);
    if stored != computed {
        return Err(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    Ok(payload.to_vec())
}

fn checksum(key: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_is_version_then_le_crc_then_payload() {
        let framed = seal(b"k", b"value");
        assert_eq!(framed.len(), HEADER_LEN + 5);
        assert_eq!(framed[0], FORMAT_VERSION);
        let crc = crc32fast::hash(b"kvalue");
        assert_eq!(&framed[1..5], &crc.to_le_bytes());
        assert_eq!(&framed[5..], b"value");
    }

    #[test]
    fn roundtrips_edge_payloads() {
        let cases: [(&[u8], &[u8]); 4] = [
            (b"", b""),
            (b"k", b""),
            (&[0x00, 0xff], &[0xff, 0x00, 0x00]),
            (b"key", &[0xab; 4096]),
        ];
        for (key, payload) in cases {
            assert_eq!(open(key, &seal(key, payload)).as_deref(), Ok(payload));
        }
    }

    #[test]
    fn rejects_bad_framing() {
        let good = seal(b"k", b"v");
        let mut bad_version = good.clone();
        bad_version[0] = 2;
        let mut bad_crc = good.clone();
        bad_crc[1] ^= 0x01;
        let mut bad_payload = good.clone();
        bad_payload[5] ^= 0x80;
        let cases: [(&str, &[u8], &[u8], &str); 6] = [
            ("empty", b"k", &[], "shorter"),
            ("header only, cut", b"k", &good[..4], "shorter"),
            ("unknown version", b"k", &bad_version, "version"),
            ("flipped crc", b"k", &bad_crc, "checksum"),
            ("flipped payload", b"k", &bad_payload, "checksum"),
            ("misplaced under another key", b"j", &good, "checksum"),
        ];
        for (name, key, framed, reason) in cases {
            match open(key, framed) {
                Err(msg) => assert!(msg.contains(reason), "{name}: {msg}"),
                Ok(v) => panic!("{name}: accepted as {v:?}"),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_single_byte_flip_is_detected(
            key in proptest::collection::vec(any::<u8>(), 0..16),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            pos in any::<prop::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let mut framed = seal(&key, &payload);
            let i = pos.index(framed.len());
            framed[i] ^= mask;
            prop_assert!(open(&key, &framed).is_err());
        }
    }
}
