//! `StreamMachine`: every decision of one node pulling partitions from
//! their sources, as a sans-IO state machine.
//!
//! A [`StreamPlan`] says, for one layout version, which partitions this
//! node must come to hold and from which sources: for each [`Transfer`],
//! the union of what every listed source holds. Each (partition, source)
//! is one *pull* ([`PullId`]), a walk of the source's copy of the partition
//! in storage key order, one [`ChunkRequest`] at a time. The machine starts
//! at most `concurrent_pulls` pulls at once and, for each, alternates:
//!
//! 1. [`StreamCommand::Fetch`]: ask the source for the chunk after the
//!    pull's cursor. The answer comes back through
//!    [`StreamMachine::on_fetched`] and is checked ([`check_chunk`]).
//! 2. [`StreamCommand::Apply`]: merge the chunk's entries into the local
//!    replica and store the pull's [`CursorRecord`] *in the same atomic
//!    batch* (the driver's contract; see the node's `streaming` module).
//!    The outcome comes back through [`StreamMachine::on_applied`].
//!
//! One chunk per pull is fetched ahead while the previous one is applied,
//! so the source scans while this node writes; chunks of one pull are
//! applied strictly in order, so a stored cursor always has everything
//! before it merged.
//!
//! **Resumable.** The machine starts from the cursors the driver loaded
//! ([`StreamMachine::new`]'s `resumed`): a pull whose record says `done` is
//! done; any other pull's first request asks after its stored cursor. A
//! failed apply may have stored part of its chunk; the machine then asks
//! again from the last cursor it knows was stored, which re-merges a few
//! keys (merges are idempotent) and never skips one.
//!
//! **Paced.** Fetched wire bytes are paid for from a [`TokenBucket`] of
//! `bytes_per_sec`: no fetch is issued while a debt is outstanding, and
//! [`StreamMachine::poll_timeout`] says when it will be paid.
//!
//! **Retried, boundedly.** A failed fetch (the source failed, or sent a
//! chunk that does not fit its request) or apply is retried after a
//! backoff doubling from `retry_initial_ms` up to `retry_cap_ms`. After
//! `max_failures` failures in a row the pull is given up, the others carry
//! on, and [`StreamOutcome::Incomplete`] names it with its last error.
//!
//! **Finishes once.** When every pull is done or given up, the machine
//! emits one [`StreamCommand::Finish`] and nothing after it. It never
//! stalls: an active pull always has a fetch or apply out, a retry or a
//! payment pending ([`StreamMachine::poll_timeout`]), or is finished.
//!
//! Never: read a clock, do IO, apply a pull's chunks out of order, or
//! emit a command after `Finish`.

use super::chunk::{check_chunk, Chunk, ChunkRequest};
use super::cursor::{CursorRecord, PullId};
use super::plan::{
    clamped, PlanError, StreamLimits, StreamOutcome, StreamPlan, TransferProgress, MAX_PULLS,
};
use super::{Entries, PullError};
use crate::failure::ReplicaFailure;
use crate::hints::TokenBucket;
use crate::protocol::ReplicaError;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamCommand {
    /// Send `request` to `pull.source`; `first`: the pull's first request
    /// of this run (where it resumed).
    Fetch {
        pull: PullId,
        request: ChunkRequest,
        first: bool,
    },
    /// Merge `entries` and store `cursor` under the pull's cursor key, in
    /// one atomic batch (or in order-preserving stages, each atomic with a
    /// cursor covering only what it merged: [`super::stage_apply`]).
    Apply {
        pull: PullId,
        entries: Entries,
        cursor: CursorRecord,
    },
    /// Every pull is done or given up.
    Finish(StreamOutcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PullState {
    Pending,
    Active,
    Done,
    Failed,
}

/// One pull's state.
#[derive(Debug)]
struct Pull {
    id: PullId,
    state: PullState,
    /// The last cursor known to be stored.
    applied: CursorRecord,
    /// The cursor of the next fetch.
    fetch_after: Option<Bytes>,
    /// The last fetched chunk was the partition's last.
    source_done: bool,
    fetching: bool,
    /// The fetch out was asked from a cursor since abandoned: drop it.
    stale_fetch: bool,
    /// The cursor the apply out will store.
    applying: Option<CursorRecord>,
    /// A chunk fetched ahead, waiting for the apply before it.
    ready: Option<(Entries, CursorRecord)>,
    failures: u32,
    retry_at_ms: Option<u64>,
    last_error: Option<PullError>,
    asked: bool,
}

/// The streaming state machine (module docs).
#[derive(Debug)]
pub struct StreamMachine {
    partitions: u32,
    limits: StreamLimits,
    pulls: Vec<Pull>,
    index: BTreeMap<PullId, usize>,
    /// Pulls of each partition not done yet.
    remaining: BTreeMap<u32, u32>,
    /// `pulls[..started]` have been started (or were done at the outset).
    started: usize,
    /// Indices of the active pulls.
    active: Vec<usize>,
    bucket: TokenBucket,
    /// Fetched bytes not yet paid for.
    owed: u64,
    pay_at_ms: Option<u64>,
    now_ms: u64,
    commands: VecDeque<StreamCommand>,
    progress: TransferProgress,
    finished: bool,
}

impl StreamMachine {
    /// A machine for `plan`, resuming each pull from its stored cursor in
    /// `resumed` (absent: from the partition's start).
    pub fn new(
        plan: StreamPlan,
        limits: StreamLimits,
        resumed: &BTreeMap<PullId, CursorRecord>,
        now_ms: u64,
    ) -> Result<StreamMachine, PlanError> {
        let mut ids = BTreeSet::new();
        let mut remaining = BTreeMap::new();
        for transfer in &plan.transfers {
            if transfer.partition >= plan.partitions {
                return Err(PlanError::NoSuchPartition {
                    partition: transfer.partition,
                    partitions: plan.partitions,
                });
            }
            remaining.entry(transfer.partition).or_insert(0);
            for source in transfer.sources.iter().filter(|s| **s != plan.local) {
                ids.insert(PullId {
                    partition: transfer.partition,
                    source: source.clone(),
                });
            }
            if ids.len() > MAX_PULLS {
                return Err(PlanError::TooManyPulls {
                    count: ids.len(),
                    limit: MAX_PULLS,
                });
            }
        }
        let limits = clamped(limits);
        let mut machine = StreamMachine {
            partitions: plan.partitions,
            limits,
            pulls: Vec::with_capacity(ids.len()),
            index: BTreeMap::new(),
            remaining,
            started: 0,
            active: Vec::new(),
            bucket: TokenBucket::new(limits.bytes_per_sec, now_ms),
            owed: 0,
            pay_at_ms: None,
            now_ms,
            commands: VecDeque::new(),
            progress: TransferProgress::default(),
            finished: false,
        };
        for id in ids {
            machine.add_pull(id, resumed);
        }
        let p = &mut machine.progress;
        p.partitions_total = machine.remaining.len() as u32;
        p.partitions_done = machine.remaining.values().filter(|r| **r == 0).count() as u32;
        p.pulls_total = machine.pulls.len() as u32;
        Ok(machine)
    }

    fn add_pull(&mut self, id: PullId, resumed: &BTreeMap<PullId, CursorRecord>) {
        let applied = resumed.get(&id).cloned().unwrap_or_default();
        self.progress.keys += applied.keys;
        self.progress.bytes += applied.bytes;
        let state = if applied.done {
            self.progress.pulls_done += 1;
            PullState::Done
        } else {
            *self.remaining.entry(id.partition).or_insert(0) += 1;
            PullState::Pending
        };
        self.index.insert(id.clone(), self.pulls.len());
        self.pulls.push(Pull {
            id,
            state,
            fetch_after: applied.after.clone(),
            applied,
            source_done: false,
            fetching: false,
            stale_fetch: false,
            applying: None,
            ready: None,
            failures: 0,
            retry_at_ms: None,
            last_error: None,
            asked: false,
        });
    }

    /// The next command, if any. Call until `None` after every event.
    pub fn poll_command(&mut self) -> Option<StreamCommand> {
        if self.commands.is_empty() {
            self.schedule();
        }
        self.commands.pop_front()
    }

    /// When to call [`StreamMachine::on_timeout`]: the earliest retry or
    /// payment a pull waits for. None while nothing waits on time.
    pub fn poll_timeout(&self) -> Option<u64> {
        let retries = self.active.iter().filter_map(|&i| {
            let p = &self.pulls[i];
            let waits = !p.fetching && p.failures < self.limits.max_failures;
            p.retry_at_ms.filter(|at| waits && *at > self.now_ms)
        });
        retries.chain(self.pay_at_ms).min()
    }

    /// Time has passed.
    pub fn on_timeout(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// The answer to a [`StreamCommand::Fetch`] of `pull`.
    pub fn on_fetched(
        &mut self,
        pull: &PullId,
        answer: Result<Chunk, ReplicaFailure>,
        now_ms: u64,
    ) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(&i) = self.index.get(pull) else {
            return;
        };
        let p = &mut self.pulls[i];
        if !p.fetching || p.state != PullState::Active {
            return;
        }
        p.fetching = false;
        if std::mem::take(&mut p.stale_fetch) {
            return self.settle(i);
        }
        let request = self.request(i);
        let checked = answer.map_err(PullError::Source).and_then(|chunk| {
            check_chunk(&request, &chunk, self.partitions)
                .map(|()| chunk)
                .map_err(PullError::BadChunk)
        });
        match checked {
            Ok(chunk) => self.accept(i, chunk),
            Err(e) => self.fail(i, e),
        }
        self.settle(i);
    }

    /// The outcome of a [`StreamCommand::Apply`] of `pull`.
    pub fn on_applied(&mut self, pull: &PullId, outcome: Result<(), ReplicaError>, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(&i) = self.index.get(pull) else {
            return;
        };
        let p = &mut self.pulls[i];
        let Some(cursor) = p.applying.take() else {
            return;
        };
        match outcome {
            Ok(()) => {
                self.progress.keys += cursor.keys.saturating_sub(p.applied.keys);
                self.progress.bytes += cursor.bytes.saturating_sub(p.applied.bytes);
                p.applied = cursor;
                if let Some((entries, cursor)) = p.ready.take() {
                    self.apply(i, entries, cursor);
                }
            }
            Err(e) => {
                // Ask again from the last cursor known stored.
                p.ready = None;
                p.source_done = false;
                p.fetch_after = p.applied.after.clone();
                p.stale_fetch = p.fetching;
                self.fail(i, PullError::Local(e));
            }
        }
        self.settle(i);
    }

    /// How far the plan got.
    pub fn progress(&self) -> TransferProgress {
        self.progress
    }

    /// Whether [`StreamCommand::Finish`] was emitted.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The request a fetch of pull `i` asks (the same until it is answered).
    fn request(&self, i: usize) -> ChunkRequest {
        let p = &self.pulls[i];
        ChunkRequest {
            partition: p.id.partition,
            after: p.fetch_after.clone(),
            max_keys: self.limits.chunk_keys,
            max_bytes: self.limits.chunk_bytes,
        }
    }

    fn accept(&mut self, i: usize, chunk: Chunk) {
        let bytes = postcard::experimental::serialized_size(&chunk.entries).unwrap_or(0) as u64;
        let keys = chunk.entries.len() as u64;
        self.owed = self.owed.saturating_add(bytes);
        let progress = &mut self.progress;
        progress.chunks += 1;
        progress.keys_fetched += keys;
        progress.bytes_fetched += bytes;
        let p = &mut self.pulls[i];
        p.failures = 0;
        p.retry_at_ms = None;
        let base = p.applying.as_ref().unwrap_or(&p.applied);
        let last_entry = chunk
            .entries
            .last()
            .map(|(k, _)| Bytes::from(k.storage_key()));
        let cursor = CursorRecord {
            after: chunk.next.clone().or(last_entry).or(base.after.clone()),
            done: chunk.done,
            keys: base.keys + keys,
            bytes: base.bytes + bytes,
        };
        if chunk.done {
            p.source_done = true;
        } else {
            p.fetch_after = chunk.next;
        }
        if p.applying.is_some() {
            p.ready = Some((chunk.entries, cursor));
        } else {
            self.apply(i, chunk.entries, cursor);
        }
    }

    fn apply(&mut self, i: usize, entries: Entries, cursor: CursorRecord) {
        let p = &mut self.pulls[i];
        p.applying = Some(cursor.clone());
        self.commands.push_back(StreamCommand::Apply {
            pull: p.id.clone(),
            entries,
            cursor,
        });
    }

    fn fail(&mut self, i: usize, error: PullError) {
        self.progress.failures += 1;
        let limits = &self.limits;
        let p = &mut self.pulls[i];
        p.failures = p.failures.saturating_add(1);
        let doublings = (p.failures - 1).min(32);
        let backoff = limits
            .retry_initial_ms
            .saturating_mul(1u64 << doublings)
            .min(limits.retry_cap_ms);
        p.retry_at_ms = Some(self.now_ms.saturating_add(backoff));
        p.last_error = Some(error);
    }

    /// Marks pull `i` done or given up once nothing of it is in flight.
    fn settle(&mut self, i: usize) {
        let p = &mut self.pulls[i];
        if p.state != PullState::Active || p.fetching || p.applying.is_some() {
            return;
        }
        if p.applied.done {
            p.state = PullState::Done;
            self.progress.pulls_done += 1;
            if let Some(left) = self.remaining.get_mut(&p.id.partition) {
                *left -= 1;
                if *left == 0 {
                    self.progress.partitions_done += 1;
                }
            }
        } else if p.failures >= self.limits.max_failures {
            p.state = PullState::Failed;
            self.progress.pulls_failed += 1;
        } else {
            return;
        }
        self.active.retain(|&a| a != i);
    }

    /// Starts pulls up to the limit, issues the fetches that may go, and
    /// finishes when nothing is left.
    fn schedule(&mut self) {
        if self.finished {
            return;
        }
        while self.active.len() < self.limits.concurrent_pulls && self.started < self.pulls.len() {
            let i = self.started;
            self.started += 1;
            let p = &mut self.pulls[i];
            if p.state == PullState::Pending {
                p.state = PullState::Active;
                self.progress.pulls_resumed += u32::from(p.applied.after.is_some());
                self.active.push(i);
            }
        }
        self.pay_at_ms = None;
        for k in 0..self.active.len() {
            let i = self.active[k];
            if !self.may_fetch(i) {
                continue;
            }
            if !self.pay() {
                break;
            }
            let request = self.request(i);
            let p = &mut self.pulls[i];
            p.fetching = true;
            let first = !std::mem::replace(&mut p.asked, true);
            self.commands.push_back(StreamCommand::Fetch {
                pull: p.id.clone(),
                request,
                first,
            });
        }
        if self.active.is_empty() && self.started == self.pulls.len() {
            self.finished = true;
            self.commands
                .push_back(StreamCommand::Finish(self.outcome()));
        }
    }

    fn may_fetch(&self, i: usize) -> bool {
        let p = &self.pulls[i];
        !p.fetching
            && p.ready.is_none()
            && !p.source_done
            && p.failures < self.limits.max_failures
            && p.retry_at_ms.is_none_or(|at| at <= self.now_ms)
    }

    /// Pays what fetched bytes are owed; false (and `pay_at_ms` set) if the
    /// bucket cannot cover them yet.
    fn pay(&mut self) -> bool {
        while self.owed > 0 {
            let part = self.owed.min(self.limits.bytes_per_sec);
            match self.bucket.take(part, self.now_ms) {
                Ok(()) => self.owed -= part,
                Err(wait_ms) => {
                    self.pay_at_ms = Some(self.now_ms.saturating_add(wait_ms));
                    return false;
                }
            }
        }
        true
    }

    fn outcome(&self) -> StreamOutcome {
        let failed: Vec<(PullId, PullError)> = self
            .pulls
            .iter()
            .filter(|p| p.state == PullState::Failed)
            .map(|p| {
                let error = p.last_error.clone();
                let error = error.unwrap_or(PullError::Source(ReplicaFailure::NotAsked));
                (p.id.clone(), error)
            })
            .collect();
        if failed.is_empty() {
            StreamOutcome::Complete
        } else {
            StreamOutcome::Incomplete { failed }
        }
    }
}

#[cfg(test)]
mod tests;
