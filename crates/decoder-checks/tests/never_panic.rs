//! Every decoder of outside bytes, fed arbitrary and damaged bytes in CI:
//! an error or a value, never a panic, and decoded values round-trip
//! (the checks live in `src/`, shared with the fuzz targets in `fuzz/`).
//!
//! Three kinds of input per target: arbitrary bytes; valid encodings with
//! a few random mutations (flipped, inserted, removed bytes, truncation,
//! extension); and, exhaustively, every truncation and every single-byte
//! flip of every valid encoding. Case counts are bounded so the whole file
//! runs in seconds.

use proptest::collection::vec;
use proptest::prelude::*;
use ringkv_decoder_checks::seeds::{seeds, TARGETS};
use ringkv_decoder_checks::{anti_entropy, client, gossip, layouts, rpc, stored, stream};

/// Each fuzz target's check, in [`TARGETS`] order.
const CHECKS: [fn(&[u8]) -> bool; 10] = [
    rpc::rpc_frame,
    rpc::handshake,
    gossip::gossip,
    layouts::layout_history,
    client::context_token,
    client::http_path,
    client::http_headers,
    stored::storage_record,
    stream::stream,
    anti_entropy::anti_entropy,
];

/// One damage done to a valid encoding; positions wrap around its length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Truncate { at: usize },
    Extend(Vec<u8>),
}

impl Mutation {
    fn apply(&self, bytes: &mut Vec<u8>) {
        let wrap = |at: usize, len: usize| at % len.max(1);
        match self {
            Mutation::Flip { at, xor } if !bytes.is_empty() => {
                let at = wrap(*at, bytes.len());
                bytes[at] ^= xor;
            }
            Mutation::Insert { at, byte } => bytes.insert(wrap(*at, bytes.len() + 1), *byte),
            Mutation::Remove { at } if !bytes.is_empty() => {
                bytes.remove(wrap(*at, bytes.len()));
            }
            Mutation::Truncate { at } => bytes.truncate(wrap(*at, bytes.len() + 1)),
            Mutation::Extend(more) => bytes.extend_from_slice(more),
            _ => {}
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        1 => any::<usize>().prop_map(|at| Mutation::Remove { at }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
    ]
}

#[test]
fn every_target_has_valid_seeds_that_pass_its_check() {
    for (target, check) in TARGETS.iter().zip(CHECKS) {
        let seeds = seeds(target);
        assert!(!seeds.is_empty(), "{target} has no seeds");
        for (i, seed) in seeds.iter().enumerate() {
            assert!(check(seed), "{target}: seed {i} does not decode");
        }
    }
    // The persisted-state seed is found under the node's key and loads.
    assert!(stored::persisted_state(&stored::persisted_state_seed()[..]));
}

#[test]
fn every_truncation_and_byte_flip_of_a_valid_encoding_is_survived() {
    for (target, check) in TARGETS.iter().zip(CHECKS) {
        for seed in seeds(target) {
            for cut in 0..seed.len() {
                let _ = check(&seed[..cut]);
            }
            for at in 0..seed.len() {
                for xor in [0x01, 0x80, 0xff] {
                    let mut flipped = seed.clone();
                    flipped[at] ^= xor;
                    let _ = check(&flipped);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn arbitrary_bytes_are_an_error_or_a_value(
        data in vec(any::<u8>(), 0..512),
        selector in any::<u8>(),
    ) {
        let mut selected = vec![selector];
        selected.extend_from_slice(&data);
        for check in CHECKS {
            let _ = (check(&data), check(&selected));
        }
    }

    #[test]
    fn mutated_valid_encodings_are_an_error_or_a_value(
        target in 0..TARGETS.len(),
        which in any::<usize>(),
        mutations in vec(mutation(), 1..6),
    ) {
        let seeds = seeds(TARGETS[target]);
        let mut bytes = seeds[which % seeds.len()].clone();
        for m in &mutations {
            m.apply(&mut bytes);
        }
        let _ = CHECKS[target](&bytes);
    }
}
