//! Partition streaming (P4): a node that gains partitions in a new layout
//! version pulls their data from the nodes that hold them, resumably and
//! at a bounded rate.
//!
//! The decisions (which pulls run, what to ask next, retries, pacing, when
//! it is finished) are the core's [`StreamMachine`]; [`Streamer::run`]
//! carries its commands out: a fetch is one `Request::StreamChunk` call to
//! the source (answered there by [`answer::answer`]), an apply is a causal
//! merge of the chunk into the local replica
//! ([`LocalReplica::merge_batch`]: every key merged with
//! [`ringkv_core::siblings::Siblings::merge`] on the write lane, so a
//! client write to the same key, before, during or after, is never lost,
//! and each merge moves the key's anti-entropy tree). Which partitions
//! come from which sources, and what to do once a version is synced, is
//! the caller's business (the layout history); `run` returns when every
//! transfer is done or given up, or when stopped.
//!
//! **Why a stored cursor is never ahead of its data, after any crash.**
//! A chunk is applied in stages of at most [`APPLY_STAGE_KEYS`] keys
//! ([`stage_apply`]); each stage is *one* storage batch holding the
//! stage's merged records (`data`) and the pull's cursor record (`meta`,
//! key `stream/<version>/<partition>/<source>`) naming the stage's last
//! key. The stages of one pull are written strictly in order: the machine
//! applies one chunk of a pull at a time, and a chunk's stages are written
//! one after another, each a job on the single write lane. Then:
//!
//! - `Storage::write` applies a batch atomically, across keyspaces. fjall
//!   commits it as one journal batch (one sequence number, start and end
//!   markers, a checksum); recovery replays the journal in order and
//!   stops at the first incomplete or damaged batch (fjall 3.1.13
//!   `journal/batch_reader.rs`), so what survives a power loss is a
//!   prefix of the batches, each whole. `MemStorage` applies a batch under
//!   one lock, and `crash` returns every key to its state at the last
//!   `sync`: all batches written before it, none after.
//! - So a cursor that survives came with its own stage's data, and every
//!   earlier stage (an earlier batch) survived too: everything at or
//!   before the cursor is merged. A crash can only lose a suffix of
//!   stages, and the stream resumes from the last cursor that survived,
//!   re-merging at most what was lost (merges are idempotent).
//! - Under `fsync = always` a chunk counts as applied only after a sync
//!   covering its last stage ([`LocalReplica::durable`]), so `run`
//!   reports completion only when every chunk is durable.
//!
//! **Bounded.** Chunks ask at most `chunk_keys` / `chunk_bytes`; at most
//! `concurrent_pulls` pulls run, each with one chunk applying and one
//! fetched ahead; fetched bytes are paid for from a token bucket of
//! `bytes_per_sec` (default [`ringkv_core::streaming::DEFAULT_STREAM_BYTES_PER_SEC`]);
//! a failing pull is retried with a capped backoff and given up after
//! `max_failures` in a row; one call waits at most [`STREAM_CALL_TIMEOUT_MS`].
//! Cancelling the stop token ends `run` at once: an apply already on the
//! write lane finishes whole, and its cursor is where the next run starts.
//!
//! **Observable.** A [`StreamProgress`] handle (cheap to clone and read)
//! shows partitions and pulls done, keys and bytes, and where each pull
//! started this run; `ringkv_stream_*` metrics count chunks, keys and
//! bytes received and sent, skipped records and failures.

pub mod answer;
pub mod cursors;

use crate::metrics::Metrics;
use crate::replica::LocalReplica;
use crate::view::ViewCell;
use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::protocol::{ReplicaError, Request, Response};
use ringkv_core::streaming::{
    cursor_key, stage_apply, Chunk, ChunkRequest, CursorRecord, Entries, PlanError, PullId,
    StreamCommand, StreamLimits, StreamMachine, StreamOutcome, StreamPlan, TransferProgress,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long one chunk request may take.
pub const STREAM_CALL_TIMEOUT_MS: u64 = 30_000;
/// Keys merged per storage batch (one write-lane job) while applying a chunk.
pub const APPLY_STAGE_KEYS: usize = 256;

/// Why a stream ended without an outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("the plan cannot be streamed: {0}")]
    Plan(PlanError),
    #[error("the stored stream cursors cannot be read: {0}")]
    Cursors(ReplicaError),
    #[error("the stream was stopped")]
    Stopped,
    /// A bug: the machine neither finished nor waits on anything.
    #[error("the stream machine waits on nothing")]
    Stalled,
}

/// What a stream shows while it runs: a cheap, shared handle.
#[derive(Clone, Default)]
pub struct StreamProgress {
    shared: Arc<Mutex<Shown>>,
}

#[derive(Default)]
struct Shown {
    progress: TransferProgress,
    first_requests: Vec<(PullId, Option<Bytes>)>,
    outcome: Option<Result<StreamOutcome, StreamError>>,
}

impl StreamProgress {
    fn lock(&self) -> MutexGuard<'_, Shown> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Partitions and pulls done, keys and bytes, so far.
    pub fn snapshot(&self) -> TransferProgress {
        self.lock().progress
    }

    /// The cursor each pull's first request of this run asked after (None:
    /// from the partition's start), in the order they were asked.
    pub fn first_requests(&self) -> Vec<(PullId, Option<Bytes>)> {
        self.lock().first_requests.clone()
    }

    /// How the run ended; None while it runs.
    pub fn outcome(&self) -> Option<Result<StreamOutcome, StreamError>> {
        self.lock().outcome.clone()
    }
}

/// One finished fetch or apply.
enum Event {
    Fetched(PullId, Result<Chunk, ReplicaFailure>),
    Applied(PullId, Result<(), ReplicaError>),
}

type Pending<'a> = FuturesUnordered<Pin<Box<dyn Future<Output = Event> + Send + 'a>>>;

/// What a stream needs.
pub struct Streamer {
    pub replica: Arc<LocalReplica>,
    pub view: Arc<ViewCell>,
    pub metrics: Arc<Metrics>,
    pub limits: StreamLimits,
    pub max_siblings: usize,
    /// The origin of the milliseconds the machine and health records see.
    pub origin: Instant,
}

impl Streamer {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Streams `plan` until every transfer is done or given up, or `stop`
    /// is cancelled; the result is also left in `progress`.
    pub async fn run(
        &self,
        plan: StreamPlan,
        progress: &StreamProgress,
        stop: &CancellationToken,
    ) -> Result<StreamOutcome, StreamError> {
        let result = tokio::select! {
            biased;
            result = self.stream(plan, progress) => result,
            _ = stop.cancelled() => Err(StreamError::Stopped),
        };
        if let Err(e) = &result {
            tracing::info!(error = %e, "stream ended");
        }
        progress.lock().outcome = Some(result.clone());
        result
    }

    /// Removes the stored cursors of every layout version before
    /// `version` (once `version` is synced, they are never read again).
    pub async fn clear_cursors_before(&self, version: u64) -> Result<u64, ReplicaError> {
        cursors::clear_before(&self.replica, version).await
    }

    async fn stream(
        &self,
        plan: StreamPlan,
        progress: &StreamProgress,
    ) -> Result<StreamOutcome, StreamError> {
        let version = plan.version;
        let resumed = cursors::load(&self.replica, version)
            .await
            .map_err(StreamError::Cursors)?;
        let mut machine = StreamMachine::new(plan, self.limits, &resumed, self.now_ms())
            .map_err(StreamError::Plan)?;
        let mut pending: Pending<'_> = FuturesUnordered::new();
        let mut shown = TransferProgress::default();
        loop {
            while let Some(command) = machine.poll_command() {
                match command {
                    StreamCommand::Fetch {
                        pull,
                        request,
                        first,
                    } => {
                        if first {
                            let asked = (pull.clone(), request.after.clone());
                            progress.lock().first_requests.push(asked);
                        }
                        pending.push(Box::pin(self.fetch(pull, request)));
                    }
                    StreamCommand::Apply {
                        pull,
                        entries,
                        cursor,
                    } => pending.push(Box::pin(self.apply(version, pull, entries, cursor))),
                    StreamCommand::Finish(outcome) => {
                        self.show(&machine, progress, &mut shown);
                        return Ok(outcome);
                    }
                }
            }
            self.show(&machine, progress, &mut shown);
            let wake = machine.poll_timeout();
            let wake_at = self.origin + Duration::from_millis(wake.unwrap_or(0));
            tokio::select! {
                biased;
                Some(event) = pending.next(), if !pending.is_empty() => match event {
                    Event::Fetched(pull, answer) => machine.on_fetched(&pull, answer, self.now_ms()),
                    Event::Applied(pull, outcome) => machine.on_applied(&pull, outcome, self.now_ms()),
                },
                _ = tokio::time::sleep_until(wake_at), if wake.is_some() => {
                    machine.on_timeout(self.now_ms());
                }
                else => return Err(StreamError::Stalled),
            }
        }
    }

    /// Publishes the machine's progress and counts what moved since the
    /// last time in the metrics.
    fn show(
        &self,
        machine: &StreamMachine,
        progress: &StreamProgress,
        shown: &mut TransferProgress,
    ) {
        let now = machine.progress();
        let chunks = now.chunks - shown.chunks;
        let keys = now.keys_fetched - shown.keys_fetched;
        let bytes = now.bytes_fetched - shown.bytes_fetched;
        if chunks > 0 {
            self.metrics.streamed("received", chunks, keys, bytes);
        }
        if now.failures > shown.failures {
            self.metrics.stream_failed(now.failures - shown.failures);
        }
        *shown = now;
        progress.lock().progress = now;
    }

    /// Asks `pull.source` for the chunk `request` names.
    async fn fetch(&self, pull: PullId, request: ChunkRequest) -> Event {
        let view = self.view.load();
        let answer = match view.peer(&pull.source) {
            None => Err(ReplicaFailure::NoAddress),
            Some(peer) => {
                let timeout = Duration::from_millis(STREAM_CALL_TIMEOUT_MS);
                let ask = Request::StreamChunk(request);
                match peer.call(ask, timeout, self.origin).await {
                    Ok(Response::StreamChunk(Ok(chunk))) => Ok(chunk),
                    Ok(Response::StreamChunk(Err(e))) => Err(ReplicaFailure::Replica(e)),
                    Ok(_) => Err(ReplicaFailure::UnexpectedAnswer),
                    Err(why) => Err(why),
                }
            }
        };
        if let Err(why) = &answer {
            tracing::debug!(partition = pull.partition, source = %pull.source, %why, "a chunk fetch failed; retrying after a backoff");
        }
        Event::Fetched(pull, answer)
    }

    /// Merges `entries` stage by stage, each stage in one batch with the
    /// cursor it makes true (module docs), then waits until the last stage
    /// is durable.
    async fn apply(
        &self,
        version: u64,
        pull: PullId,
        entries: Entries,
        cursor: CursorRecord,
    ) -> Event {
        let key = cursor_key(version, &pull);
        let mut last_ticket = None;
        let mut outcome = Ok(());
        for (stage, staged) in stage_apply(entries, &cursor, APPLY_STAGE_KEYS) {
            let Ok(record) = staged.encode() else {
                outcome = Err(ReplicaError::StorageFailed);
                break;
            };
            let meta = vec![(key.clone(), record)];
            match self
                .replica
                .merge_batch(stage, meta, self.max_siblings)
                .await
            {
                Ok(merged) => last_ticket = Some(merged.ticket),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if let (Ok(()), Some(ticket)) = (&outcome, last_ticket) {
            outcome = self.replica.durable(ticket).await;
        }
        if let Err(e) = &outcome {
            tracing::warn!(partition = pull.partition, source = %pull.source, error = %e, "a chunk could not be stored; asking again after a backoff");
        }
        Event::Applied(pull, outcome)
    }
}
