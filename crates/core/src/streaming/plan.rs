//! What a node is asked to stream and how: a [`StreamPlan`] (for one
//! layout version, the [`Transfer`]s this node must receive: each
//! partition with the sources whose union it must come to hold), the
//! [`StreamLimits`] it streams within, and what comes out: a
//! [`StreamOutcome`] and a running [`TransferProgress`].
//!
//! Every limit has a named default and a bound, checked by
//! [`StreamLimits::validate`] when the node's configuration is read and
//! clamped again by the machine ([`clamped`]), so no configuration can make
//! it ask for a chunk past the protocol's bounds or stop retrying at once.
//!
//! Plain data; the decisions are [`super::StreamMachine`]'s.

use super::chunk::{DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_KEYS, MAX_CHUNK_BYTES, MAX_CHUNK_KEYS};
use super::cursor::PullId;
use super::PullError;
use crate::layout::{MAX_PARTITIONS, MAX_REPLICATION};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// Wire bytes per second a node streams unless configured otherwise.
pub const DEFAULT_STREAM_BYTES_PER_SEC: u64 = 32 * 1024 * 1024;
/// Pulls running at once unless configured otherwise.
pub const DEFAULT_CONCURRENT_PULLS: usize = 2;
/// Most pulls that may run at once.
pub const MAX_CONCURRENT_PULLS: usize = 64;
/// First wait after a failed fetch or apply.
pub const DEFAULT_RETRY_INITIAL_MS: u64 = 200;
/// Longest wait between two attempts of one pull.
pub const DEFAULT_RETRY_CAP_MS: u64 = 10_000;
/// Failures in a row after which a pull is given up (about five minutes
/// of a source that stays down, with the default backoff).
pub const DEFAULT_MAX_PULL_FAILURES: u32 = 36;
/// Most pulls one plan may hold: every partition from N sources.
pub const MAX_PULLS: usize = MAX_PARTITIONS as usize * MAX_REPLICATION;

/// How a node streams (`[streaming]` in the TOML file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamLimits {
    /// Keys asked per chunk (at most [`MAX_CHUNK_KEYS`]).
    pub chunk_keys: u32,
    /// Bytes asked per chunk (at most [`MAX_CHUNK_BYTES`]).
    pub chunk_bytes: u32,
    /// Wire bytes fetched per second, over every pull.
    pub bytes_per_sec: u64,
    /// Pulls running at once (at most [`MAX_CONCURRENT_PULLS`]).
    pub concurrent_pulls: usize,
    pub retry_initial_ms: u64,
    pub retry_cap_ms: u64,
    /// Failures in a row after which a pull is given up.
    pub max_failures: u32,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            chunk_keys: DEFAULT_CHUNK_KEYS,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            bytes_per_sec: DEFAULT_STREAM_BYTES_PER_SEC,
            concurrent_pulls: DEFAULT_CONCURRENT_PULLS,
            retry_initial_ms: DEFAULT_RETRY_INITIAL_MS,
            retry_cap_ms: DEFAULT_RETRY_CAP_MS,
            max_failures: DEFAULT_MAX_PULL_FAILURES,
        }
    }
}

impl StreamLimits {
    /// Every limit positive and within its bound.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                "chunk_keys",
                u64::from(self.chunk_keys),
                MAX_CHUNK_KEYS.into(),
            ),
            (
                "chunk_bytes",
                self.chunk_bytes.into(),
                MAX_CHUNK_BYTES.into(),
            ),
            ("bytes_per_sec", self.bytes_per_sec, u64::MAX),
            (
                "concurrent_pulls",
                self.concurrent_pulls as u64,
                MAX_CONCURRENT_PULLS as u64,
            ),
            ("retry_initial_ms", self.retry_initial_ms, u64::MAX),
            ("retry_cap_ms", self.retry_cap_ms, u64::MAX),
            ("max_failures", self.max_failures.into(), u64::MAX),
        ];
        for (name, value, max) in checks {
            if value == 0 || value > max {
                return Err(format!("streaming.{name} must be 1 to {max}, not {value}"));
            }
        }
        Ok(())
    }
}

/// One partition this node must come to hold: the union of what every
/// source holds of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub partition: u32,
    pub sources: Vec<NodeId>,
}

/// Everything to stream for one layout version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    pub version: u64,
    /// The cluster's partition count (Q).
    pub partitions: u32,
    /// This node: a source equal to it already holds its data and is skipped.
    pub local: NodeId,
    pub transfers: Vec<Transfer>,
}

/// Why a plan cannot be streamed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("partition {partition} does not exist (the cluster has {partitions})")]
    NoSuchPartition { partition: u32, partitions: u32 },
    #[error("the plan holds {count} pulls, more than {limit}")]
    TooManyPulls { count: usize, limit: usize },
}

/// How a plan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutcome {
    /// Every pull is done: this node holds the union of its sources' data
    /// as they held it when each chunk was read.
    Complete,
    /// These pulls were given up, each with its last error.
    Incomplete { failed: Vec<(PullId, PullError)> },
}

/// How far a plan got; cheap to copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TransferProgress {
    pub partitions_total: u32,
    pub partitions_done: u32,
    pub pulls_total: u32,
    pub pulls_done: u32,
    pub pulls_failed: u32,
    /// Pulls that started this run from a stored cursor.
    pub pulls_resumed: u32,
    /// Keys and wire bytes merged, over every run (from the stored cursors).
    pub keys: u64,
    pub bytes: u64,
    /// Chunks, keys and wire bytes fetched in this run.
    pub chunks: u64,
    pub keys_fetched: u64,
    pub bytes_fetched: u64,
    /// Failed fetches and applies in this run.
    pub failures: u64,
}

/// `limits` within their bounds, whatever was configured.
pub(crate) fn clamped(limits: StreamLimits) -> StreamLimits {
    StreamLimits {
        chunk_keys: limits.chunk_keys.clamp(1, MAX_CHUNK_KEYS),
        chunk_bytes: limits.chunk_bytes.clamp(1, MAX_CHUNK_BYTES),
        bytes_per_sec: limits.bytes_per_sec.max(1),
        concurrent_pulls: limits.concurrent_pulls.clamp(1, MAX_CONCURRENT_PULLS),
        retry_initial_ms: limits.retry_initial_ms.max(1),
        retry_cap_ms: limits.retry_cap_ms.max(limits.retry_initial_ms.max(1)),
        max_failures: limits.max_failures.max(1),
    }
}
