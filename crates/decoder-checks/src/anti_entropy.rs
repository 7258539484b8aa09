//! Anti-entropy: the questions a peer asks about this node's Merkle tree
//! and keys, and the answers a peer gives to this node's exchange.
//!
//! Input: a selector, then
//! - 0: an [`ExchangeRequest`] (postcard), answered as the node answers it
//!   (from a tree and key list of one partition): an answer or a typed
//!   [`ringkv_core::anti_entropy::BadRequest`];
//! - 1: a sequence of [`ExchangeReply`]s (postcard, back to back), fed as
//!   the peer's answers to a whole [`ExchangeMachine`] run, whose own side
//!   is answered from real data. The machine must finish, with a report
//!   or a typed error, within a bounded number of steps.

use crate::seeds::params;
use crate::{assert_round_trip, postcard_bytes, postcard_exact, select};
use ringkv_core::anti_entropy::{
    storage_position, ExchangeCommand, ExchangeLimits, ExchangeMachine, ExchangePlan,
    ExchangeReply, ExchangeRequest, KeySummary, PartitionTree, Side,
};
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::layout::partition_of;

/// The partition the exchanges are about (the seed key's).
fn partition() -> u32 {
    crate::seeds::summary_query().partition
}

/// This node's keys in [`partition`], with made-up hashes.
fn local_keys() -> Vec<KeySummary> {
    let partitions = params().partitions;
    (0..64u64)
        .map(|i| KeySummary {
            storage_key: format!("k{i}").into_bytes(),
            hash: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        })
        .filter(|k| partition_of(storage_position(&k.storage_key), partitions) == partition())
        .collect()
}

fn local_tree(keys: &[KeySummary]) -> PartitionTree {
    let entries = keys.iter().map(|k| (k.storage_key.as_slice(), k.hash));
    PartitionTree::from_entries(partition(), params().partitions, entries)
}

/// Answers `request` from this node's data; `None` for another partition
/// (the node has no tree for it and refuses).
fn answer(request: &ExchangeRequest) -> Option<Result<ExchangeReply, ReplicaFailure>> {
    if request.partition() != partition() {
        return None;
    }
    let keys = local_keys();
    let answered = match request {
        ExchangeRequest::Tree(query) => local_tree(&keys).answer(query),
        ExchangeRequest::Keys(query) => query
            .answer(params().partitions, keys)
            .map(ExchangeReply::KeySummaries),
    };
    Some(answered.map_err(|_| ReplicaFailure::Malformed))
}

/// Returns whether the input decoded (an exchange always runs: a reply
/// that does not decode is a peer's timeout).
pub fn anti_entropy(data: &[u8]) -> bool {
    let (selector, body) = select(data);
    if selector % 2 == 0 {
        let Some(request) = postcard_exact::<ExchangeRequest>(body) else {
            return false;
        };
        assert_round_trip(&request, postcard_bytes, |b| {
            postcard_exact::<ExchangeRequest>(b).ok_or("does not decode")
        });
        let _ = answer(&request);
        true
    } else {
        exchange(u16::from(selector), body)
    }
}

/// Most commands one exchange may take before it must have finished.
const MAX_STEPS: usize = 10_000;

/// Runs one exchange; returns whether every peer reply it asked for decoded.
fn exchange(start_segment: u16, mut replies: &[u8]) -> bool {
    let mut all_decoded = true;
    let plan = ExchangePlan {
        partition: partition(),
        partitions: params().partitions,
        start_segment,
        limits: ExchangeLimits::default(),
    };
    let mut now_ms = 0;
    let mut machine = ExchangeMachine::new(plan, now_ms);
    for _ in 0..MAX_STEPS {
        let Some(command) = machine.poll_command() else {
            // Waiting on a timer (the re-check): let it pass.
            let Some(at) = machine.poll_timeout() else {
                panic!("the machine waits for nothing and is not finished");
            };
            now_ms = now_ms.max(at);
            machine.on_timeout(now_ms);
            continue;
        };
        match command {
            ExchangeCommand::ReadLocal(request) => {
                let local = answer(&request).expect("the machine asks about its partition");
                machine.on_reply(Side::Local, local, now_ms);
            }
            ExchangeCommand::SendToPeer(_) => {
                let reply = match postcard::take_from_bytes::<ExchangeReply>(replies) {
                    Ok((reply, rest)) => {
                        replies = rest;
                        Ok(reply)
                    }
                    Err(_) => {
                        all_decoded = false;
                        Err(ReplicaFailure::Timeout { ms: 1 })
                    }
                };
                machine.on_reply(Side::Peer, reply, now_ms);
            }
            ExchangeCommand::Repair { .. } => {}
            ExchangeCommand::Finish { .. } => {
                assert!(machine.is_finished(), "finished but not done");
                assert_eq!(machine.poll_command(), None, "a command after Finish");
                return all_decoded;
            }
        }
    }
    panic!("the exchange did not finish within {MAX_STEPS} steps");
}
