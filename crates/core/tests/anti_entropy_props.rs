//! Property tests of anti-entropy (F5): the tictac tree and the exchange.
//!
//! The model: two replicas of one partition, each a `BTreeMap` from storage
//! key to version plus the `PartitionTree` kept incrementally beside it, as
//! the node keeps them. A pure driver runs an `ExchangeMachine` between them,
//! answering `ReadLocal` from one replica and `SendToPeer` from the other
//! with the same answer functions the node uses, and checks from the
//! outside that every exchange ends with exactly one `Finish`, last, and at
//! most one `Repair` before it. The properties:
//!
//! - an incrementally updated tree equals the tree rebuilt from scratch;
//! - Merkle diff equals set difference: under the bounds, an exchange
//!   repairs exactly the keys the replicas hold differently, with the right
//!   side named as lacking;
//! - past the bounds, an exchange still repairs only true differences, and
//!   exchanges that resume where the last stopped converge the replicas;
//! - the re-check drops segments whose difference was a write in flight;
//! - a peer failure, a local failure or the deadline ends the exchange with
//!   that error, and nothing follows.

use proptest::prelude::*;
use ringkv_core::anti_entropy::*;
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::layout::partition_range;
use std::collections::{BTreeMap, BTreeSet};

/// The cluster's partition count and the partition under test.
const Q: u32 = 16;
const PARTITION: u32 = 5;

/// A storage key of `PARTITION` in `segment`, named by one byte.
fn key(segment: u16, name: u8) -> Vec<u8> {
    let (first, _) = partition_range(PARTITION, Q);
    let shift = 64 - Q.trailing_zeros() - 12;
    let position = first | (u64::from(segment) << shift) | u64::from(name);
    let mut key = position.to_be_bytes().to_vec();
    key.extend_from_slice(&[1, b'b', name]);
    key
}

/// Keys spread over the whole partition, or crowded into a few segments.
fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    let segment = prop_oneof![0..SEGMENTS as u16, 0..3u16, 4090..SEGMENTS as u16];
    (segment, 0..6u8).prop_map(|(s, n)| key(s, n))
}

/// Versions from a small range, so that replicas often agree by chance.
fn map_strategy() -> impl Strategy<Value = BTreeMap<Vec<u8>, u64>> {
    prop::collection::btree_map(key_strategy(), 1..4u64, 0..120)
}

/// One replica: its keys (storage key → version) and its tree.
#[derive(Debug, Clone)]
struct Replica {
    versions: BTreeMap<Vec<u8>, u64>,
    tree: PartitionTree,
}

fn hash(key: &[u8], version: u64) -> u64 {
    key_hash(key, &version.to_le_bytes())
}

impl Replica {
    fn new(versions: &BTreeMap<Vec<u8>, u64>) -> Self {
        let mut replica = Replica {
            versions: BTreeMap::new(),
            tree: PartitionTree::new(PARTITION, Q),
        };
        for (k, &v) in versions {
            replica.set(k, Some(v));
        }
        replica
    }

    /// Writes (or with `None` removes) a key, updating the tree in O(1).
    fn set(&mut self, key: &[u8], version: Option<u64>) {
        let old = match version {
            Some(v) => self.versions.insert(key.to_vec(), v),
            None => self.versions.remove(key),
        };
        let old_hash = old.map(|v| hash(key, v));
        self.tree
            .update(key, old_hash, version.map(|v| hash(key, v)));
    }

    fn answer(&self, request: &ExchangeRequest) -> ExchangeReply {
        match request {
            ExchangeRequest::Tree(q) => self
                .tree
                .answer(q)
                .expect("the machine asks valid questions"),
            ExchangeRequest::Keys(q) => {
                let entries = self.versions.iter().map(|(k, &v)| KeySummary {
                    storage_key: k.clone(),
                    hash: hash(k, v),
                });
                ExchangeReply::KeySummaries(q.answer(Q, entries).expect("valid query"))
            }
        }
    }
}

/// The true difference between two replicas, as a repair should name it.
fn set_difference(local: &Replica, peer: &Replica) -> BTreeMap<Vec<u8>, Difference> {
    let keys: BTreeSet<&Vec<u8>> = local.versions.keys().chain(peer.versions.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let d = match (local.versions.get(k), peer.versions.get(k)) {
                (Some(l), Some(p)) if l == p => return None,
                (Some(_), Some(_)) => Difference::Differs,
                (Some(_), None) => Difference::MissingOnPeer,
                (None, _) => Difference::MissingLocally,
            };
            Some((k.clone(), d))
        })
        .collect()
}

/// A failure injected instead of an answer.
#[derive(Debug, Clone)]
enum Fault {
    Peer(ReplicaFailure),
    Local(ReplicaFailure),
    Deadline,
}

/// What a driven exchange produced.
#[derive(Debug)]
struct Run {
    repair: Vec<KeyDiff>,
    report: ExchangeReport,
    result: Result<(), ExchangeError>,
    /// The segments of the keys round, if there was one.
    keys_segments: Option<Vec<u16>>,
}

/// Drives `m` to the end. `between` runs whenever time passes (before each
/// `on_timeout`); `fault` replaces the answers of round `n` (0-based).
fn drive(
    mut m: ExchangeMachine,
    local: &mut Replica,
    peer: &mut Replica,
    mut between: impl FnMut(&mut Replica, &mut Replica),
    fault: Option<(usize, Fault)>,
) -> Run {
    let mut now = 0;
    let mut rounds = 0;
    let mut repair = None;
    let mut keys_segments = None;
    let mut fault = fault;
    loop {
        while let Some(command) = m.poll_command() {
            // Each round is a `ReadLocal` followed by a `SendToPeer`.
            if matches!(command, ExchangeCommand::ReadLocal(_)) {
                rounds += 1;
            }
            let faulty = fault.as_ref().is_some_and(|(n, _)| *n + 1 == rounds);
            match command {
                ExchangeCommand::ReadLocal(request) | ExchangeCommand::SendToPeer(request)
                    if faulty =>
                {
                    let (_, fault) = fault.take().unwrap();
                    match fault {
                        Fault::Peer(f) => m.on_reply(Side::Peer, Err(f), now),
                        Fault::Local(f) => m.on_reply(Side::Local, Err(f), now),
                        Fault::Deadline => {
                            let at = m.poll_timeout().expect("not finished");
                            now = now.max(at);
                            m.on_timeout(now);
                        }
                    }
                    // A late answer to the failed round changes nothing.
                    m.on_reply(Side::Local, Ok(local.answer(&request)), now);
                    m.on_reply(Side::Peer, Ok(peer.answer(&request)), now);
                }
                ExchangeCommand::ReadLocal(request) => {
                    if let ExchangeRequest::Keys(q) = &request {
                        keys_segments = Some(q.segments.clone());
                    }
                    m.on_reply(Side::Local, Ok(local.answer(&request)), now);
                }
                ExchangeCommand::SendToPeer(request) => {
                    m.on_reply(Side::Peer, Ok(peer.answer(&request)), now)
                }
                ExchangeCommand::Repair { keys } => {
                    assert!(repair.is_none(), "a second repair");
                    assert!(!keys.is_empty(), "an empty repair");
                    repair = Some(keys);
                }
                ExchangeCommand::Finish { report, result } => {
                    assert_eq!(m.poll_command(), None, "a command after Finish");
                    assert_eq!(m.poll_timeout(), None);
                    m.on_timeout(u64::MAX);
                    m.on_reply(Side::Peer, Err(ReplicaFailure::ConnectionLost), u64::MAX);
                    assert_eq!(m.poll_command(), None, "a command after Finish");
                    if result.is_err() {
                        assert!(repair.is_none(), "a repair from a failed exchange");
                    }
                    return Run {
                        repair: repair.unwrap_or_default(),
                        report,
                        result,
                        keys_segments,
                    };
                }
            }
        }
        between(local, peer);
        now = m
            .poll_timeout()
            .expect("an unfinished machine waits for something");
        m.on_timeout(now);
    }
}

fn plan(start_segment: u16, limits: ExchangeLimits) -> ExchangePlan {
    ExchangePlan {
        partition: PARTITION,
        partitions: Q,
        start_segment,
        limits,
    }
}

/// Bounds no test replica reaches.
fn unbounded(recheck_after_ms: u64) -> ExchangeLimits {
    ExchangeLimits {
        max_segments: SEGMENTS,
        max_keys: 10_000,
        recheck_after_ms,
        ..ExchangeLimits::default()
    }
}

/// A replica derived from `base` by deleting, changing and adding keys.
fn diverge(
    base: &BTreeMap<Vec<u8>, u64>,
    edits: &[(usize, Option<u64>)],
    added: &BTreeMap<Vec<u8>, u64>,
) -> BTreeMap<Vec<u8>, u64> {
    let mut out = base.clone();
    let keys: Vec<Vec<u8>> = base.keys().cloned().collect();
    for &(i, version) in edits {
        if keys.is_empty() {
            break;
        }
        let k = &keys[i % keys.len()];
        match version {
            Some(v) => out.insert(k.clone(), v),
            None => out.remove(k),
        };
    }
    out.extend(added.iter().map(|(k, v)| (k.clone(), *v)));
    out
}

fn edits() -> impl Strategy<Value = Vec<(usize, Option<u64>)>> {
    prop::collection::vec((any::<usize>(), prop::option::of(1..5u64)), 0..30)
}

/// Which side lacks what, as the repair says it.
fn as_map(repair: &[KeyDiff]) -> BTreeMap<Vec<u8>, Difference> {
    let map: BTreeMap<_, _> = repair
        .iter()
        .map(|d| (d.storage_key.clone(), d.difference))
        .collect();
    assert_eq!(map.len(), repair.len(), "a key repaired twice");
    map
}

/// Repairs as the node would (merging: here the higher version wins on both).
fn apply_repair(local: &mut Replica, peer: &mut Replica, repair: &[KeyDiff]) {
    for d in repair {
        let k = &d.storage_key;
        let merged = local.versions.get(k).max(peer.versions.get(k)).copied();
        local.set(k, merged);
        peer.set(k, merged);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn incremental_tree_equals_the_rebuilt_tree(
        ops in prop::collection::vec((key_strategy(), prop::option::of(1..4u64)), 0..200),
    ) {
        let mut replica = Replica::new(&BTreeMap::new());
        for (k, version) in &ops {
            replica.set(k, *version);
        }
        let hashes: Vec<(Vec<u8>, u64)> = replica.versions.iter().map(|(k, &v)| (k.clone(), hash(k, v))).collect();
        let rebuilt = PartitionTree::from_entries(PARTITION, Q, hashes.iter().map(|(k, h)| (k.as_slice(), *h)));
        prop_assert_eq!(&replica.tree, &rebuilt);
        prop_assert_eq!(replica.tree.is_empty(), replica.versions.is_empty());
        prop_assert_eq!(replica.tree.len(), replica.versions.len() as u64);
        // And both equal the definition: XOR of key hashes per segment, of
        // segments per branch, of branches at the root.
        let mut segments = vec![0u64; SEGMENTS];
        for (k, h) in &hashes {
            segments[usize::from(segment_of(k, Q))] ^= h;
        }
        for b in 0..BRANCHES as u16 {
            let first = usize::from(b) * SEGMENTS_PER_BRANCH;
            let want = &segments[first..first + SEGMENTS_PER_BRANCH];
            prop_assert_eq!(replica.tree.segments_of_branch(b), want);
            prop_assert_eq!(replica.tree.branches()[usize::from(b)], want.iter().fold(0, |a, h| a ^ h));
        }
        prop_assert_eq!(replica.tree.root(), segments.iter().fold(0, |a, h| a ^ h));
    }

    #[test]
    fn merkle_diff_equals_set_difference(
        base in map_strategy(),
        local_edits in edits(),
        peer_edits in edits(),
        added in map_strategy(),
        start in 0..SEGMENTS as u16,
        recheck_after_ms in prop_oneof![Just(0u64), 1..10_000u64],
    ) {
        let mut local = Replica::new(&diverge(&base, &local_edits, &BTreeMap::new()));
        let mut peer = Replica::new(&diverge(&base, &peer_edits, &added));
        let want = set_difference(&local, &peer);
        let m = ExchangeMachine::new(plan(start, unbounded(recheck_after_ms)), 0);
        let run = drive(m, &mut local, &mut peer, |_, _| {}, None);
        prop_assert_eq!(run.result, Ok(()));
        prop_assert_eq!(as_map(&run.repair), want.clone());
        prop_assert!(!run.report.truncated);
        prop_assert_eq!(run.report.roots_equal, want.is_empty());
        prop_assert_eq!(run.report.keys_differing, want.len());
        prop_assert_eq!(run.report.segments_settled, 0);
    }

    #[test]
    fn bounded_exchanges_repair_only_true_differences_and_converge(
        base in map_strategy(),
        local_edits in edits(),
        peer_edits in edits(),
        added in map_strategy(),
        max_segments in 1..5usize,
        max_keys in prop_oneof![1..4usize, Just(200)],
        max_summary_bytes in prop_oneof![Just(1u32), 20..100u32, Just(1 << 20)],
        stuck_name in prop::option::of(0..6u8),
    ) {
        let mut local = Replica::new(&diverge(&base, &local_edits, &BTreeMap::new()));
        let mut peer = Replica::new(&diverge(&base, &peer_edits, &added));
        // Exchanges converge when one answer can carry any segment whole
        // (a longer segment is compared only up to the cut: module docs).
        let mut per_segment = BTreeMap::new();
        for k in local.versions.keys().chain(peer.versions.keys()) {
            *per_segment.entry(segment_of(k, Q)).or_insert(0usize) += 1;
        }
        let crowded = per_segment.values().copied().max().unwrap_or(0);
        let entry_bytes = key(0, 0).len() + 8;
        let fits = crowded <= max_keys && crowded * entry_bytes <= max_summary_bytes as usize;
        // Keys named `stuck_name` never get repaired (say the peer refuses
        // them): resuming where the last exchange stopped must still reach
        // every other difference.
        let stuck = |k: &Vec<u8>| Some(*k.last().unwrap()) == stuck_name;
        let limits = ExchangeLimits { max_segments, max_keys, max_summary_bytes, recheck_after_ms: 0, ..ExchangeLimits::default() };
        let mut start = 0;
        for _ in 0..if fits { 2_000 } else { 50 } {
            let truth = set_difference(&local, &peer);
            if truth.keys().all(stuck) {
                return Ok(());
            }
            let run = drive(ExchangeMachine::new(plan(start, limits), 0), &mut local, &mut peer, |_, _| {}, None);
            prop_assert_eq!(&run.result, &Ok(()));
            prop_assert!(run.repair.len() <= max_keys);
            for (k, d) in as_map(&run.repair) {
                prop_assert_eq!(truth.get(&k), Some(&d), "repaired a key that did not differ so");
            }
            prop_assert!(!run.report.roots_equal);
            let repairable: Vec<KeyDiff> = run.repair.into_iter().filter(|d| !stuck(&d.storage_key)).collect();
            apply_repair(&mut local, &mut peer, &repairable);
            start = run.report.resume_segment.unwrap_or(start);
        }
        prop_assert!(!fits, "2000 exchanges did not converge");
    }

    #[test]
    fn the_recheck_drops_differences_that_were_writes_in_flight(
        base in map_strategy(),
        peer_edits in edits(),
        in_flight in prop::collection::btree_map(key_strategy(), 1..5u64, 1..20),
        recheck_after_ms in 1..10_000u64,
    ) {
        let mut local = Replica::new(&base);
        let mut peer = Replica::new(&diverge(&base, &peer_edits, &BTreeMap::new()));
        // The in-flight writes reached the peer before the exchange and
        // reach this node while the machine waits to re-check.
        for (k, &v) in &in_flight {
            peer.set(k, Some(v));
        }
        let mut landed = local.clone();
        for (k, &v) in &in_flight {
            landed.set(k, Some(v));
        }
        let want = set_difference(&landed, &peer);
        let m = ExchangeMachine::new(plan(0, unbounded(recheck_after_ms)), 0);
        let run = drive(m, &mut local, &mut peer, |local, _| *local = landed.clone(), None);
        prop_assert_eq!(run.result, Ok(()));
        prop_assert_eq!(as_map(&run.repair), want.clone());
        // Only segments that still differ get their keys compared.
        let still: BTreeSet<u16> = want.keys().map(|k| segment_of(k, Q)).collect();
        let asked: BTreeSet<u16> = run.keys_segments.unwrap_or_default().into_iter().collect();
        prop_assert_eq!(asked, still.clone());
        prop_assert_eq!(run.report.segments_differing - run.report.segments_settled, still.len());
    }

    #[test]
    fn failures_end_the_exchange_with_their_error(
        base in map_strategy(),
        peer_edits in edits(),
        round in 0..6usize,
        fault in prop_oneof![
            Just(Fault::Deadline),
            Just(Fault::Peer(ReplicaFailure::ConnectionLost)),
            Just(Fault::Peer(ReplicaFailure::Timeout { ms: 3000 })),
            Just(Fault::Local(ReplicaFailure::Overloaded)),
        ],
    ) {
        let mut local = Replica::new(&base);
        let mut peer = Replica::new(&diverge(&base, &peer_edits, &BTreeMap::new()));
        let limits = ExchangeLimits { recheck_after_ms: 500, timeout_ms: 10_000, ..ExchangeLimits::default() };
        let clean = drive(ExchangeMachine::new(plan(0, limits), 0), &mut local.clone(), &mut peer.clone(), |_, _| {}, None);
        let run = drive(ExchangeMachine::new(plan(0, limits), 0), &mut local, &mut peer, |_, _| {}, Some((round, fault.clone())));
        if clean.report.round_trips as usize <= round {
            // The exchange ended before the fault's round.
            prop_assert_eq!(run.result, Ok(()));
            prop_assert_eq!(run.repair, clean.repair);
        } else {
            let want = match fault {
                Fault::Deadline => ExchangeError::Timeout { ms: 10_000 },
                Fault::Peer(f) => ExchangeError::Peer(f),
                Fault::Local(f) => ExchangeError::Local(f),
            };
            prop_assert_eq!(run.result, Err(want));
            prop_assert!(run.repair.is_empty());
        }
    }
}
