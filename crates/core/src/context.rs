//! The causal context token: what a client hands back on put and delete (A1–A3).
//!
//! To the client it is opaque text (base64url, no padding). Inside it is a
//! format byte followed by the postcard encoding of a [`VersionVector`]. The
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
}

/// Encodes a clock as a context token.
pub fn encode_context(clock: &VersionVector) -> String {
    // Encoding a vector of (string, u64) into a Vec cannot fail.
    URL_SAFE_NO_PAD.encode(encode(CONTEXT_FORMAT_V1, clock).unwrap_or_default())
}

/// Decodes a context token, refusing anything longer than `max_len` bytes.
pub fn decode_context(token: &str, max_len: usize) -> Result<VersionVector, ContextError> {
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
    decode(CONTEXT_FORMAT_V1, &bytes).map_err(|e| match e {
        CodecError::Empty => ContextError::Empty,
        CodecError::UnknownFormat(f) => ContextError::UnknownFormat(f),
        other => ContextError::Malformed(other.to_string()),
    })
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

    #[test]
    fn round_trips_and_stays_compact() {
        let token = encode_context(&clock());
        assert!(token.len() < 40, "{token}");
        assert_eq!(decode_context(&token, 8192), Ok(clock()));
        assert_eq!(
            decode_context(&encode_context(&VersionVector::new()), 8192),
            Ok(VersionVector::new())
        );
    }

    #[test]
    fn bad_tokens_are_typed_errors() {
        let good = encode_context(&clock());
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
            b.extend(postcard::to_allocvec(&raw).unwrap());
            URL_SAFE_NO_PAD.encode(b)
        };
        let cases: Vec<(String, fn(&ContextError) -> bool)> = vec![
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
            let err = decode_context(&token, 8192).expect_err(&token);
            assert!(check(&err), "{token:?} gave {err:?}");
        }
    }
}
