//! Anti-entropy (F5): this node compares its partitions with their other
//! replicas, a few at a time, and repairs what differs.
//!
//! A background task wakes every `interval` and runs exchanges for the next
//! [`EXCHANGES_PER_ROUND`] (partition, peer) pairs, round robin over every
//! partition this node is a home of and every other home of it. Each
//! exchange is the core's [`ExchangeMachine`]: roots first (one small call
//! when the replicas agree, which is almost always), then only where they
//! differ, a re-check after a pause so writes in flight are not "repaired",
//! then key summaries. This module carries its commands out:
//!
//! - tree questions are answered from the
//!   [`crate::partition_trees::PartitionTrees`], key summaries by a
//!   range scan of the asked segments (each segment is one contiguous range
//!   of storage keys), on the storage read lane; the peer answers the same
//!   questions the same way ([`answer`], behind `Request::AntiEntropy`);
//! - a key missing or different here is fetched from the peer and merged;
//!   one missing there, or whose merge here shows the peer lacks something,
//!   is sent to it as a replica write (so a key stale on one side moves one
//!   way only); both are causal merges ([`ringkv_core::siblings::Siblings::merge`]), so a
//!   repair can never lose a version and running it twice changes nothing.
//!
//! Trees live in memory, moved by each write; a record damaged on disk
//! after it was written would go unnoticed, so each round also rebuilds one
//! partition's tree from storage, checksums verified (Riak's AAE rebuilds
//! its trees periodically for the same reason). A damaged record drops out
//! of the tree, the next exchange finds it missing, and the peer's copy
//! replaces it. A whole sweep takes Q rounds.
//!
//! Bounded (O2): at most [`CONCURRENT_EXCHANGES`] exchanges at a time; each bounded by the machine's
//! [`ExchangeLimits`]; and after each, the task waits until a token bucket
//! of `bytes_per_sec` covers the bytes it moved, so repair never starves
//! client traffic. A truncated exchange resumes where it stopped the next
//! time its pair comes round.

use crate::metrics::Metrics;
use crate::replica::LocalReplica;
use crate::view::{Peer, ViewCell};
use futures_util::StreamExt;
use ringkv_core::anti_entropy::{
    segment_range, Difference, ExchangeCommand, ExchangeLimits, ExchangeMachine, ExchangePlan,
    ExchangeReply, ExchangeReport, ExchangeRequest, KeyDiff, Side, MAX_SUMMARY_ENTRIES,
};
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::hints::TokenBucket;
use ringkv_core::key::ObjectKey;
use ringkv_core::protocol::{ReplicaError, Request, Response};
use ringkv_core::siblings::Siblings;
use ringkv_core::NodeId;
use ringkv_storage::Keyspace;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Default pause between rounds of exchanges.
pub const ANTI_ENTROPY_INTERVAL_MS: u64 = 1000;
/// Exchanges per round.
pub const EXCHANGES_PER_ROUND: usize = 16;
/// Exchanges of one round that run at once (each mostly waits: on the
/// peer, and on its re-check pause).
pub const CONCURRENT_EXCHANGES: usize = 4;
/// Default repair and exchange bandwidth of one node, bytes per second.
pub const ANTI_ENTROPY_BYTES_PER_SEC: u64 = 4 * 1024 * 1024;
/// How long one call to a peer may take.
const CALL_TIMEOUT_MS: u64 = 10_000;

/// Answers an anti-entropy question from this node's trees and storage
/// (for a peer's exchange, or this node's own).
pub async fn answer(
    replica: &LocalReplica,
    request: ExchangeRequest,
) -> Result<ExchangeReply, ReplicaError> {
    let trees = replica.trees().clone();
    match request {
        ExchangeRequest::Tree(query) => trees.answer(&query).map_err(|_| ReplicaError::BadExchange),
        ExchangeRequest::Keys(query) => {
            trees
                .check_partition(query.partition)
                .map_err(|_| ReplicaError::BadExchange)?;
            let storage = replica.storage().clone();
            let job = move || {
                // The peer's bound, capped by ours: a scan reads at most this.
                let max_entries = query.max_entries.clamp(1, MAX_SUMMARY_ENTRIES);
                let limit = max_entries as usize + 1;
                let mut entries = Vec::new();
                for &segment in &query.segments {
                    let Some(range) = segment_key_range(&query, segment, trees.partitions()) else {
                        return Err(ReplicaError::BadExchange);
                    };
                    let (start, end) = range;
                    // A corrupt record is left out: missing here, so the
                    // exchange fetches the peer's copy to replace it.
                    let page = storage
                        .scan_skipping_corrupt(Keyspace::Data, &start, end.as_deref(), limit)
                        .map_err(|_| ReplicaError::StorageFailed)?;
                    let records = page.records.into_iter();
                    entries.extend(records.filter_map(|(k, raw)| trees.summary(k, &raw)));
                }
                query
                    .answer(trees.partitions(), entries)
                    .map_err(|_| ReplicaError::BadExchange)
            };
            match replica.lanes().read(job).await {
                Ok(answer) => answer.map(ExchangeReply::KeySummaries),
                Err(_) => Err(ReplicaError::Overloaded),
            }
        }
    }
}

/// The storage keys of one segment: `[start, end)`, `end` None at the top
/// of the ring. None if the segment is out of range.
fn segment_key_range(
    query: &ringkv_core::anti_entropy::SummaryQuery,
    segment: u16,
    partitions: u32,
) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if usize::from(segment) >= ringkv_core::anti_entropy::SEGMENTS {
        return None;
    }
    let (first, last) = segment_range(query.partition, segment, partitions);
    Some(ObjectKey::storage_range(first, last))
}

/// What the anti-entropy task needs.
pub struct AntiEntropy {
    pub id: NodeId,
    pub replica: Arc<LocalReplica>,
    pub view: Arc<ViewCell>,
    pub metrics: Arc<Metrics>,
    pub limits: ExchangeLimits,
    pub interval: Duration,
    pub bytes_per_sec: u64,
    pub max_siblings: usize,
    /// The origin of the milliseconds the machines see.
    pub origin: Instant,
}

impl AntiEntropy {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Runs rounds of exchanges until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut bucket = TokenBucket::new(self.bytes_per_sec, self.now_ms());
        // Each node starts its rotation at its own offset: two nodes that
        // both compare a partition with a stale third then rarely walk it at
        // the same time, so the second finds it repaired (equal roots).
        let mut next = rotation_offset(&self.id);
        let mut verify = 0usize;
        let mut resume: HashMap<(u32, NodeId), u16> = HashMap::new(); // order-free: looked up by pair
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            let view = self.view.load();
            // One held partition's tree is rebuilt from storage per round,
            // so a record damaged after it was written is found within Q
            // rounds.
            let held = self.held(&view);
            if let Some(&partition) = held.get(verify % held.len().max(1)) {
                verify = verify.wrapping_add(1);
                if let Err(e) = self.replica.rebuild_tree(partition).await {
                    tracing::warn!(partition, error = %e, "cannot rebuild an anti-entropy tree");
                }
            }
            let pairs = self.pairs(&view);
            if pairs.is_empty() {
                continue;
            }
            let mut round = Vec::with_capacity(EXCHANGES_PER_ROUND);
            for _ in 0..EXCHANGES_PER_ROUND.min(pairs.len()) {
                let (partition, peer_id) = pairs[next % pairs.len()].clone();
                next = next.wrapping_add(1);
                let Some(peer) = view.peer(&peer_id) else {
                    continue;
                };
                if peer.status() == ringkv_core::health::PeerStatus::Down {
                    continue;
                }
                let start = resume.get(&(partition, peer_id.clone())).copied();
                round.push((partition, peer.clone(), start.unwrap_or(0)));
            }
            let this = &self;
            let exchanges = futures_util::stream::iter(round)
                .map(|(partition, peer, start)| async move {
                    let report = this.exchange(&peer, partition, start).await;
                    (partition, peer.id.clone(), report)
                })
                .buffer_unordered(CONCURRENT_EXCHANGES);
            tokio::pin!(exchanges);
            loop {
                let done = tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    done = exchanges.next() => done,
                };
                let Some((partition, peer_id, report)) = done else {
                    break;
                };
                match report.resume_segment {
                    Some(at) => resume.insert((partition, peer_id), at),
                    None => resume.remove(&(partition, peer_id)),
                };
                let moved = report.bytes_sent + report.bytes_received;
                while let Err(wait_ms) = bucket.take(moved, self.now_ms()) {
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
                    }
                }
            }
        }
    }

    /// The partitions this node is a home of.
    fn held(&self, view: &crate::view::ClusterView) -> Vec<u32> {
        let n = view.settings.replication.n;
        (0..view.layout.partitions())
            .filter(|&p| {
                view.layout
                    .preference_list(p)
                    .take(n)
                    .any(|h| *h == self.id)
            })
            .collect()
    }

    /// Every (partition, other home) pair this node starts the exchanges of:
    /// of two homes, the one with the lower id does, so each pair is
    /// compared once, not twice (both sides repair in one exchange).
    fn pairs(&self, view: &crate::view::ClusterView) -> Vec<(u32, NodeId)> {
        let layout = &view.layout;
        let n = view.settings.replication.n;
        let mut out = Vec::new();
        for partition in 0..layout.partitions() {
            let homes: Vec<&NodeId> = layout.preference_list(partition).take(n).collect();
            if homes.contains(&&self.id) {
                out.extend(
                    homes
                        .into_iter()
                        .filter(|h| **h > self.id)
                        .map(|h| (partition, h.clone())),
                );
            }
        }
        out
    }

    /// Runs one exchange of `partition` with `peer`; returns its report.
    pub async fn exchange(&self, peer: &Arc<Peer>, partition: u32, start: u16) -> ExchangeReport {
        let plan = ExchangePlan {
            partition,
            partitions: self.replica.trees().partitions(),
            start_segment: start,
            limits: self.limits,
        };
        let mut machine = ExchangeMachine::new(plan, self.now_ms());
        let mut repaired = Moved::default();
        loop {
            while let Some(command) = machine.poll_command() {
                match command {
                    ExchangeCommand::ReadLocal(request) => {
                        let reply = answer(&self.replica, request).await;
                        let reply = reply.map_err(ReplicaFailure::Replica);
                        machine.on_reply(Side::Local, reply, self.now_ms());
                    }
                    ExchangeCommand::SendToPeer(request) => {
                        let reply = self.ask(peer, Request::AntiEntropy(request)).await;
                        let reply = reply.and_then(|r| match r {
                            Response::AntiEntropy(answer) => {
                                answer.map_err(ReplicaFailure::Replica)
                            }
                            _ => Err(ReplicaFailure::UnexpectedAnswer),
                        });
                        machine.on_reply(Side::Peer, reply, self.now_ms());
                    }
                    ExchangeCommand::Repair { keys } => {
                        let moved = self.repair(peer, partition, &keys).await;
                        repaired.sent += moved.sent;
                        repaired.received += moved.received;
                    }
                    ExchangeCommand::Finish { mut report, result } => {
                        report.bytes_sent += repaired.sent;
                        report.bytes_received += repaired.received;
                        self.metrics
                            .exchange_finished(partition, &report, result.is_ok());
                        if let Err(e) = result {
                            tracing::debug!(partition, peer = %peer.id, error = %e, "anti-entropy exchange failed");
                        }
                        return report;
                    }
                }
            }
            let Some(at) = machine.poll_timeout() else {
                return machine.report().clone();
            };
            tokio::time::sleep_until(self.origin + Duration::from_millis(at)).await;
            machine.on_timeout(self.now_ms());
        }
    }

    /// One call to `peer`, recorded in its health.
    async fn ask(&self, peer: &Arc<Peer>, request: Request) -> Result<Response, ReplicaFailure> {
        let timeout = Duration::from_millis(CALL_TIMEOUT_MS);
        peer.call(request, timeout, self.origin).await
    }

    /// Repairs `keys` both ways by causal merge; returns the object bytes
    /// moved each way (encoded object sizes).
    async fn repair(&self, peer: &Arc<Peer>, partition: u32, keys: &[KeyDiff]) -> Moved {
        let mut moved = Moved::default();
        let mut repaired = 0u64;
        for diff in keys {
            let Ok(key) = ObjectKey::from_storage_key(&diff.storage_key) else {
                continue;
            };
            let theirs = match diff.difference {
                Difference::MissingOnPeer => None,
                Difference::MissingLocally | Difference::Differs => {
                    match self.fetch(peer, &key).await {
                        Ok(found) => found,
                        Err(_) => continue,
                    }
                }
            };
            if let Some(theirs) = &theirs {
                moved.received += encoded_len(theirs);
                let merged = self.replica.merge(&key, theirs.clone(), self.max_siblings);
                if merged.await.is_err() {
                    continue;
                }
            }
            if diff.difference != Difference::MissingLocally {
                let Ok(Some(ours)) = self.replica.read(&key).await else {
                    continue;
                };
                // Ours now holds theirs merged in: send it only if they
                // lack something of it.
                if theirs.as_ref() == Some(&ours) {
                    repaired += 1;
                    continue;
                }
                moved.sent += encoded_len(&ours);
                let write = Request::ReplicaWrite {
                    key,
                    object: ours,
                    hint_for: None,
                };
                if !matches!(
                    self.ask(peer, write).await,
                    Ok(Response::ReplicaWrite(Ok(())))
                ) {
                    continue;
                }
            }
            repaired += 1;
        }
        self.metrics.keys_repaired(partition, repaired);
        moved
    }

    async fn fetch(&self, peer: &Arc<Peer>, key: &ObjectKey) -> Result<Option<Siblings>, ()> {
        let read = Request::ReplicaRead {
            key: key.clone(),
            hint_for: None,
        };
        match self.ask(peer, read).await {
            Ok(Response::ReplicaRead(Ok(found))) => Ok(found),
            _ => Err(()),
        }
    }
}

/// Where a node starts its round robin: a hash of its id.
fn rotation_offset(id: &NodeId) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.as_str().hash(&mut hasher);
    hasher.finish() as usize
}

/// Object bytes a repair moved, each way.
#[derive(Debug, Default, Clone, Copy)]
struct Moved {
    sent: u64,
    received: u64,
}

fn encoded_len(object: &Siblings) -> u64 {
    ringkv_core::codec::encode_object(object).map_or(0, |e| e.len() as u64)
}
