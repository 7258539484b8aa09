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

/// What every refusal of a damaged or foreign token tells the client to do.
const READ_AGAIN: &str = "read the key again and send the context that read returns";

/// Why a context token was refused.
///
/// Each message says what the client should do (read the key again), not
/// how the decoder failed: a user cannot act on "end of buffer" or a format
/// byte. The decoder's detail stays in the variant, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error(
        "context token is {len} bytes, more than the limit of {limit}; {}",
        READ_AGAIN
    )]
    TooLong { len: usize, limit: usize },
    #[error(
        "context token is not base64url text, so not a context ringkv issued for this key; {}",
        READ_AGAIN
    )]
    NotBase64,
    #[error(
        "context token is empty; {}, or send no context header for a blind write",
        READ_AGAIN
    )]
    Empty,
    #[error("context token is not a context ringkv issued for this key (it is from another system or a newer release); {}", READ_AGAIN)]
    UnknownFormat(u8),
    #[error("context token is not a context ringkv issued for this key (it is damaged or truncated); {}", READ_AGAIN)]
    Malformed(CodecError),
    #[error("context token was issued for another key; {}", READ_AGAIN)]
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
            other => ContextError::Malformed(other),
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

    #[test]
    fn every_refusal_says_to_read_the_key_again_and_hides_decoder_detail() {
        let malformed = ContextError::Malformed(CodecError::Malformed(
            "Hit the end of buffer, expected more data".into(),
        ));
        let cases = [
            (malformed, "damaged"),
            (
                ContextError::UnknownFormat(158),
                "not a context ringkv issued",
            ),
            (ContextError::NotBase64, "not a context ringkv issued"),
            (ContextError::Empty, "empty"),
            (ContextError::WrongKey, "another key"),
            (
                ContextError::TooLong {
                    len: 9000,
                    limit: 8192,
                },
                "limit of 8192",
            ),
        ];
        for (error, says) in cases {
            let text = error.to_string();
            assert!(text.contains(says), "{text}");
            assert!(text.contains("read the key again"), "{text}");
            for detail in ["end of buffer", "158", "format byte", "malformed"] {
                assert!(!text.contains(detail), "{text} shows {detail:?}");
            }
        }
    }

    #[test]
    fn decoded_garbage_reads_as_not_ours() {
        let good = encode_context(&clock(), KEY);
        let cases = [
            good[..good.len() - 3].to_string(),
            URL_SAFE_NO_PAD.encode([158u8, 1, 2]),
            "!!".to_string(),
        ];
        for token in cases {
            let text = decode_context(&token, 8192, KEY).unwrap_err().to_string();
            assert!(
                text.contains("not a context ringkv issued for this key"),
                "{token}: {text}"
            );
        }
    }
}
