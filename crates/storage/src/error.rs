//! The typed error every storage operation returns.
//!
//! Errors are data: a corrupt record names its keyspace and key, a size
//! violation names the size and the limit. This module must never panic on
//! its inputs and must never copy an unbounded key into an error message
//! (keys are shown as a bounded hex prefix).

use crate::damage::DamageKind;
use crate::keyspace::Keyspace;

/// How many key bytes a [`StorageError::Corrupt`] shows (as hex) at most.
pub const MAX_ERROR_KEY_BYTES: usize = 32;

/// Everything a [`crate::Storage`] operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A record failed its checksum or framing check: never served as a value.
    #[error("corrupt record in keyspace {keyspace} (key {key_hex}): {reason}")]
    Corrupt {
        /// [`Keyspace::name`] of the keyspace holding the record.
        keyspace: &'static str,
        /// Hex of the key (at most [`MAX_ERROR_KEY_BYTES`] bytes, then `…`).
        key_hex: String,
        /// Which check failed (version, length or checksum).
        reason: String,
    },
    /// Opening the store found its files damaged (see [`crate::damage`]):
    /// the node must not start on them.
    #[error("the data directory {dir} is damaged ({}): {found}", kind.files())]
    Damaged {
        /// The directory opened.
        dir: String,
        /// Which kind of file the failure points at.
        kind: DamageKind,
        /// The engine's own words.
        found: String,
    },
    /// The underlying engine (fjall or the filesystem) failed; the string
    /// says which operation and carries the engine's own message.
    #[error("storage engine error: {0}")]
    Engine(String),
    /// A key longer than [`crate::MAX_STORAGE_KEY_BYTES`].
    #[error("key is {len} bytes; the storage limit is {limit}")]
    KeyTooLarge {
        /// Length of the offending key.
        len: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// A value longer than [`crate::MAX_STORAGE_VALUE_BYTES`].
    #[error("value is {len} bytes; the storage limit is {limit}")]
    ValueTooLarge {
        /// Length of the offending value.
        len: usize,
        /// The limit it exceeded.
        limit: usize,
    },
}

impl StorageError {
    /// A [`StorageError::Corrupt`] for `key` in `ks`.
    pub(crate) fn corrupt(ks: Keyspace, key: &[u8], reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            keyspace: ks.name(),
            key_hex: key_hex(key),
            reason: reason.into(),
        }
    }

    /// A [`StorageError::Engine`] saying what we were doing when `err` happened.
    pub(crate) fn engine(context: &str, err: impl std::fmt::Display) -> Self {
        StorageError::Engine(format!("{context}: {err}"))
    }
}

/// Lower-case hex of the first [`MAX_ERROR_KEY_BYTES`] bytes of `key`,
/// followed by `…` when the key is longer.
fn key_hex(key: &[u8]) -> String {
    let shown = key.get(..MAX_ERROR_KEY_BYTES).unwrap_or(key);
    let mut out: String = shown.iter().map(|b| format!("{b:02x}")).collect();
    if key.len() > shown.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hex_is_bounded() {
        let cases: [(&[u8], &str); 3] = [
            (b"", ""),
            (&[0x00, 0xff, 0x10], "00ff10"),
            (
                &[0xab; MAX_ERROR_KEY_BYTES],
                &"ab".repeat(MAX_ERROR_KEY_BYTES),
            ),
        ];
        for (key, want) in cases {
            assert_eq!(key_hex(key), want);
        }
        let long = vec![0xcd; 10_000];
        let shown = key_hex(&long);
        assert_eq!(shown, format!("{}…", "cd".repeat(MAX_ERROR_KEY_BYTES)));
    }

    #[test]
    fn corrupt_names_keyspace_key_and_reason() {
        let err = StorageError::corrupt(Keyspace::Hints, b"k", "checksum mismatch");
        assert_eq!(
            err.to_string(),
            "corrupt record in keyspace hints (key 6b): checksum mismatch"
        );
    }
}
