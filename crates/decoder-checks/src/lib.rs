//! What every decoder of outside bytes must do, written once and run twice:
//! by the cargo-fuzz targets in `fuzz/` (libFuzzer, for hours) and by the
//! property tests in `tests/` (proptest, a few seconds in CI).
//!
//! Each public `check` function takes arbitrary bytes, hands them to one
//! family of decoders the way the node does (frames, handshakes, gossip,
//! layout histories, context tokens, HTTP paths, stored records, streaming,
//! anti-entropy), and asserts the contract of issue 9 ("Bad input"):
//!
//! - decoding returns a value or a typed error, never panics, and never
//!   allocates on a peer's word (a fuzzer run with `-rss_limit_mb` catches
//!   that);
//! - where there is an encoder, a decoded value round-trips:
//!   `decode(encode(x)) == x`;
//! - what a decoded value is fed to next (validation, merging into a
//!   membership table or a layout history, answering a query, a
//!   coordination machine) also returns rather than panics.
//!
//! A panic inside a check is the failure being looked for: either a decoder
//! panicked, or a round trip broke. [`seeds`] holds one valid encoding per
//! family, so both fuzzing and the mutation property tests start from bytes
//! that get past the format byte.
//!
//! Boundary: this crate is test tooling. Nothing in the node depends on it,
//! and it must never relax a check to make an input pass.

pub mod anti_entropy;
pub mod client;
pub mod gossip;
pub mod layouts;
pub mod rpc;
pub mod seeds;
pub mod stored;
pub mod stream;

/// Splits fuzz input into a selector byte (which decoder or variant to
/// try) and the rest; empty input selects 0.
pub fn select(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&first, rest)) => (first, rest),
        None => (0, data),
    }
}

/// Asserts that `value` survives `encode` then `decode` unchanged.
#[track_caller]
pub fn assert_round_trip<T, E, D>(value: &T, encode: impl FnOnce(&T) -> Vec<u8>, decode: D)
where
    T: PartialEq + std::fmt::Debug,
    E: std::fmt::Debug,
    D: FnOnce(&[u8]) -> Result<T, E>,
{
    let bytes = encode(value);
    match decode(&bytes) {
        Ok(back) => assert_eq!(&back, value, "decode(encode(x)) != x"),
        Err(e) => panic!("decode(encode(x)) failed: {e:?} for {value:?}"),
    }
}

/// Decodes `bytes` as bare postcard (the encoding of every payload inside
/// a message), refusing trailing bytes like the codec does.
pub fn postcard_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

/// Encodes `value` as bare postcard (for round trips of payloads).
pub fn postcard_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("a decoded value encodes")
}
