//! The causal context token: what a client hands back on put and delete (A1–A3).
//!
//! To the client it is opaque text (base64url, no padding). Inside it is a
//! format byte, the postcard encoding of a 32-bit fingerprint of the key it
//! was issued for and a [`VersionVector`], and a MAC of all that under the
//! context key derived from the cluster secret ([`ClusterKey::context_mac`]).
//! The MAC makes a token the cluster did not issue (forged, edited, or from
//! another cluster) a [`ContextError::Forged`]: a client cannot hand in a
//! made-up clock that would supersede writes it never saw. The fingerprint
//! catches a genuine context handed to the wrong key (a client bug that would
//! otherwise let one key's clock supersede another key's writes). In open
//! mode (no secret) the MAC key is public, so it only catches damage.
//!
//! The format byte lets a release change the encoding: format 1 (unsigned,
//! before N4) is refused as [`ContextError::Unsigned`] so the client reads
//! again; no node issues it any more. Decoding never panics and never turns
//! a bad token into an empty (blind-write) context: garbage, truncated,
//! oversized, forged or unknown-format tokens are a [`ContextError`], which
//! the HTTP layer answers with 400.

use crate::auth::{ClusterKey, CONTEXT_MAC_BYTES};
use crate::codec::{decode, encode, CodecError};
use crate::version_vector::VersionVector;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The format byte of unsigned tokens of earlier releases (refused).
pub const CONTEXT_FORMAT_V1: u8 = 1;
/// The format byte of tokens this release writes: signed with a MAC.
pub const CONTEXT_FORMAT_V2: u8 = 2;

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
    #[error("context token is an unsigned context of an earlier ringkv release, which this cluster no longer accepts; {}", READ_AGAIN)]
    Unsigned,
    #[error("context token was not issued by this cluster (its signature does not match: it was made up, edited, damaged or comes from another cluster); {}", READ_AGAIN)]
    Forged,
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
/// ([`crate::key::ObjectKey::position`]), signed with `key`.
pub fn encode_context(clock: &VersionVector, key_position: u64, key: &ClusterKey) -> String {
    // Encoding an integer and a vector of (string, u64) into a Vec cannot fail.
    let mut body =
        encode(CONTEXT_FORMAT_V2, &(fingerprint(key_position), clock)).unwrap_or_default();
    let tag = key.context_mac(&body);
    body.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(body)
}

/// Decodes a context token for the key at `key_position`, refusing anything
/// longer than `max_len` bytes, tokens not signed with `key` and tokens
/// issued for another key.
pub fn decode_context(
    token: &str,
    max_len: usize,
    key_position: u64,
    key: &ClusterKey,
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
    match bytes.first() {
        None => return Err(ContextError::Empty),
        Some(&CONTEXT_FORMAT_V1) => return Err(ContextError::Unsigned),
        Some(&CONTEXT_FORMAT_V2) => {}
        Some(&other) => return Err(ContextError::UnknownFormat(other)),
    }
    let Some(split) = bytes
        .len()
        .checked_sub(CONTEXT_MAC_BYTES)
        .filter(|&s| s > 1)
    else {
        return Err(ContextError::Forged);
    };
    let (body, tag) = bytes.split_at(split);
    key.verify_context_mac(body, tag)
        .map_err(|_| ContextError::Forged)?;
    let (issued_for, clock): (u32, VersionVector) =
        decode(CONTEXT_FORMAT_V2, body).map_err(|e| match e {
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

    fn cluster(secret: &str) -> ClusterKey {
        ClusterKey::from_secret(&crate::auth::ClusterSecret::new(secret.as_bytes()).unwrap())
    }

    fn ours() -> ClusterKey {
        cluster("this cluster's secret")
    }

    fn encode_context(clock: &VersionVector, position: u64) -> String {
        super::encode_context(clock, position, &ours())
    }

    fn decode_context(
        token: &str,
        max: usize,
        position: u64,
    ) -> Result<VersionVector, ContextError> {
        super::decode_context(token, max, position, &ours())
    }

    /// Signs a hand-made body as this cluster would.
    fn signed(mut body: Vec<u8>) -> String {
        let tag = ours().context_mac(&body);
        body.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(body)
    }

    #[test]
    fn a_token_not_signed_by_this_cluster_is_forged() {
        let token = encode_context(&clock(), KEY);
        let other = super::encode_context(&clock(), KEY, &cluster("another cluster secret"));
        assert_eq!(decode_context(&other, 8192, KEY), Err(ContextError::Forged));
        let open = super::encode_context(&clock(), KEY, &ClusterKey::open());
        assert_eq!(decode_context(&open, 8192, KEY), Err(ContextError::Forged));
        // A client raising a counter in a genuine token: the MAC no longer fits.
        let mut edited = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let at = edited.len() - CONTEXT_MAC_BYTES - 1;
        edited[at] ^= 1;
        let edited = URL_SAFE_NO_PAD.encode(edited);
        assert_eq!(
            decode_context(&edited, 8192, KEY),
            Err(ContextError::Forged)
        );
        let text = ContextError::Forged.to_string();
        assert!(text.contains("not issued by this cluster"), "{text}");
    }

    #[test]
    fn an_unsigned_token_of_the_old_format_is_refused() {
        let mut old = vec![CONTEXT_FORMAT_V1];
        old.extend(postcard::to_allocvec(&(fingerprint(KEY), clock())).unwrap());
        let old = URL_SAFE_NO_PAD.encode(old);
        assert_eq!(decode_context(&old, 8192, KEY), Err(ContextError::Unsigned));
        assert!(ContextError::Unsigned
            .to_string()
            .contains("earlier ringkv release"));
    }

    #[test]
    fn round_trips_and_stays_compact() {
        let token = encode_context(&clock(), KEY);
        assert!(token.len() < 72, "{token}");
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
            let mut b = vec![CONTEXT_FORMAT_V2];
            b.extend(postcard::to_allocvec(&(fingerprint(KEY), raw)).unwrap());
            signed(b)
        };
        type Check = fn(&ContextError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            ("!!not base64!!".into(), |e| *e == ContextError::NotBase64),
            ("".into(), |e| *e == ContextError::Empty),
            (truncated.into(), |e| {
                matches!(e, ContextError::Forged | ContextError::NotBase64)
            }),
            (URL_SAFE_NO_PAD.encode([CONTEXT_FORMAT_V2, 1]), |e| {
                *e == ContextError::Forged
            }),
            (URL_SAFE_NO_PAD.encode(&wrong_format), |e| {
                *e == ContextError::UnknownFormat(9)
            }),
            (trailing, |e| *e == ContextError::Forged),
            (signed(vec![CONTEXT_FORMAT_V2, 0xff]), |e| {
                matches!(e, ContextError::Malformed(_))
            }),
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
        let cases = [URL_SAFE_NO_PAD.encode([158u8, 1, 2]), "!!".to_string()];
        for token in cases {
            let text = decode_context(&token, 8192, KEY).unwrap_err().to_string();
            assert!(
                text.contains("not a context ringkv issued for this key"),
                "{token}: {text}"
            );
        }
    }
}
