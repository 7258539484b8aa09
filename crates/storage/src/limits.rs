//! Storage-level size limits and the checks that enforce them.
//!
//! These are sanity bounds for the storage layer itself; the HTTP layer
//! enforces smaller, user-facing limits before anything reaches storage.
//! Every engine calls these checks before touching its state, so an
//! oversized key or value is a typed error and never a partial write. This
//! module must never depend on an engine.

use crate::error::StorageError;

/// Largest key, in bytes, that any engine accepts.
///
/// This is `64 * 1024 - 2`, not `64 * 1024`: fjall writes key lengths into
/// its journal as a `u16` (a 65 536-byte key would be silently truncated to
/// length 0 and corrupt recovery), and the fjall engine spends one byte on a
/// tag in front of every key (see `fjall_engine`). Both engines share this
/// limit so they stay interchangeable.
pub const MAX_STORAGE_KEY_BYTES: usize = 64 * 1024 - 2;

/// Largest value (payload, before framing), in bytes, that any engine accepts.
pub const MAX_STORAGE_VALUE_BYTES: usize = 256 * 1024 * 1024;

/// `Err(KeyTooLarge)` when `key` exceeds [`MAX_STORAGE_KEY_BYTES`].
pub(crate) fn check_key(key: &[u8]) -> Result<(), StorageError> {
    if key.len() > MAX_STORAGE_KEY_BYTES {
        return Err(StorageError::KeyTooLarge {
            len: key.len(),
            limit: MAX_STORAGE_KEY_BYTES,
        });
    }
    Ok(())
}

/// `Err(ValueTooLarge)` when `value` exceeds [`MAX_STORAGE_VALUE_BYTES`].
pub(crate) fn check_value(value: &[u8]) -> Result<(), StorageError> {
    if value.len() > MAX_STORAGE_VALUE_BYTES {
        return Err(StorageError::ValueTooLarge {
            len: value.len(),
            limit: MAX_STORAGE_VALUE_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_limit_is_inclusive() {
        let cases = [
            (0, true),
            (MAX_STORAGE_KEY_BYTES - 1, true),
            (MAX_STORAGE_KEY_BYTES, true),
            (MAX_STORAGE_KEY_BYTES + 1, false),
        ];
        for (len, ok) in cases {
            let res = check_key(&vec![7u8; len]);
            match (ok, res) {
                (true, Ok(())) => {}
                (false, Err(StorageError::KeyTooLarge { len: l, limit })) => {
                    assert_eq!((l, limit), (len, MAX_STORAGE_KEY_BYTES));
                }
                (_, other) => panic!("len {len}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn key_limit_plus_fjall_tag_fits_u16_length() {
        assert!(u16::try_from(MAX_STORAGE_KEY_BYTES + 1).is_ok());
    }

    #[test]
    fn value_limit_is_inclusive() {
        assert!(check_value(&[]).is_ok());
        let at_limit = vec![0u8; MAX_STORAGE_VALUE_BYTES];
        assert!(check_value(&at_limit).is_ok());
        drop(at_limit);
        let over = vec![0u8; MAX_STORAGE_VALUE_BYTES + 1];
        match check_value(&over) {
            Err(StorageError::ValueTooLarge { len, limit }) => {
                assert_eq!(
                    (len, limit),
                    (MAX_STORAGE_VALUE_BYTES + 1, MAX_STORAGE_VALUE_BYTES)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
