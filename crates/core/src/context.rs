//! The causal context token: what a client hands back on put and delete (A1–A3).
//!
//! To the client it is opaque text (base64url, no padding). Inside it is a
//! format byte followed by the postcard encoding of a 32-bit fingerprint of
//! the key it was issued for and a [`VersionVector`]. The fingerprint catches
//! a context handed to the wrong key (a client bug that would otherwise let
//! one key's clock supersede another key's writes); it is not a signature
//! against forgery, which needs the cluster secret of a later issue. The
//! format byte lets a later release change the encoding while still reading
//! old tokens. Decoding never panics and never turns a bad token into an empty
//! (blind-write) context: garbage, truncated, oversized or unknown-format
//! tokens are a [`ContextError`], which the HTTP layer answers with 400.

use crate::codec::{decode, encode, CodecError};
use crate::version_vector::VersionVector;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The format byte of tokens this release writes.
pub const CONTEXT_FORMAT_V1: u8 = 1;

/// Why a context token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("context token is {len} bytes; the limit is {limit}")]
    TooLong { len: usize, limit: usize },
    #[error("context token is not base64url text")]
    NotBase64,
    #[error("context token is empty")]
    Empty,
    #[error("context token has unknown format {0}")]
    UnknownFormat(u8),
    #[error("context token is damaged: {0}")]
    Malformed(String),
    #[error("context token was issued for another key; read this key to get its context")]
    WrongKey,
}

/// The fingerprint of a key (its ring position) stored in its tokens.
fn fingerprint(key_position: u64) -> u32 {
    (key_position >> 32) as u32 ^ key_position as u32
}

/// Encodes a clock as a context token for the key at `key_position`
/// ([`crate::key::ObjectKey::position`]).
pub fn encode_context(clock: &VersionVector, key_position: u64) -> String {
    // Encoding an integer and a vector of (string, u64) into a Vec cannot fail.
    let body = encode(CONTEXT_FORMAT_V1, &(fingerprint(key_position), clock)).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(body)
}

/// Decodes a context token for the key at `key_position`, refusing anything
/// longer than `max_len` bytes and tokens issued for another key.
pub fn decode_context(
    token: &str,
    max_len: usize,
    key_position: u64,
) -> Result<VersionVector, ContextError> {
    let token = token.trim();
    if token.len() > max_len {
        return Err(ContextError::TooLong {
            len: token.len(),
            limit: max_len,
        });
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ContextError::NotBase64)?;
    let (issued_for, clock): (u32, VersionVector) =
        decode(CONTEXT_FORMAT_V1, &bytes).map_err(|e| match e {
            CodecError::Empty => ContextError::Empty,
            CodecError::UnknownFormat(f) => ContextError::UnknownFormat(f),
            other => ContextError::Malformed(other.to_string()),
        })?;
    if issued_for != fingerprint(key_position) {
        return Err(ContextError::WrongKey);
    }
    Ok(clock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version_vector::Dot;
    use crate::NodeId;

    fn clock() -> VersionVector {
        let mut vv = VersionVector::new();
        for (node, counter) in [("n1", 3), ("n2", 70000), ("n3", 1)] {
            vv.add(&Dot {
                node: NodeId::new(node).unwrap(),
                counter,
            });
        }
        vv
    }

    const KEY: u64 = 0x0123_4567_89ab_cdef;

    #[test]
    fn round_trips_and_stays_compact() {
        let token = encode_context(&clock(), KEY);
        assert!(token.len() < 48, "{token}");
        assert_eq!(decode_context(&token, 8192, KEY), Ok(clock()));
        let empty = encode_context(&VersionVector::new(), KEY);
        assert_eq!(decode_context(&empty, 8192, KEY), Ok(VersionVector::new()));
    }

    #[test]
    fn a_token_for_another_key_is_refused() {
        let token = encode_context(&clock(), KEY);
        assert_eq!(
            decode_context(&token, 8192, KEY + 1),
            Err(ContextError::WrongKey)
        );
    }

    #[test]
    fn bad_tokens_are_typed_errors() {
        let good = encode_context(&clock(), KEY);
        let truncated = &good[..good.len() - 3];
        let mut wrong_format = URL_SAFE_NO_PAD.decode(&good).unwrap();
        wrong_format[0] = 9;
        let trailing = {
            let mut b = URL_SAFE_NO_PAD.decode(&good).unwrap();
            b.push(0);
            URL_SAFE_NO_PAD.encode(b)
        };
        let dup = {
            // n1 twice: a hand-made token that passes base64 but not validation.
            let raw = vec![(String::from("n1"), 1u64), (String::from("n1"), 2u64)];
            let mut b = vec![CONTEXT_FORMAT_V1];
            b.extend(postcard::to_allocvec(&(fingerprint(KEY), raw)).unwrap());
            URL_SAFE_NO_PAD.encode(b)
        };
        type Check = fn(&ContextError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            ("!!not base64!!".into(), |e| *e == ContextError::NotBase64),
            ("".into(), |e| *e == ContextError::Empty),
            (truncated.into(), |e| {
                matches!(e, ContextError::Malformed(_) | ContextError::NotBase64)
            }),
            (URL_SAFE_NO_PAD.encode(&wrong_format), |e| {
                *e == ContextError::UnknownFormat(9)
            }),
            (trailing, |e| matches!(e, ContextError::Malformed(_))),
            (dup, |e| matches!(e, ContextError::Malformed(_))),
            ("A".repeat(9000), |e| {
                matches!(e, ContextError::TooLong { len: 9000, .. })
            }),
        ];
        for (token, check) in cases {
            let err = decode_context(&token, 8192, KEY).expect_err(&token);
            assert!(check(&err), "{token:?} gave {err:?}");
        }
    }
}
