//! Anti-entropy: how two replicas of a partition find the keys they hold
//! differently, cheaply, without trusting anything but hashes (F5).
//!
//! Dynamo's answer to permanent failures (lost hints, a replica that was
//! gone too long, a record destroyed by corruption and treated as missing)
//! is a Merkle tree per key range, compared between replicas so that only
//! the differing parts are walked. The pieces:
//!
//! - [`tree`]: [`PartitionTree`], the fixed-shape tictac tree of one
//!   partition (root → 64 branches → 4096 segments), updated in O(1) per
//!   write by XOR-folding per-key hashes ([`key_hash`]) into the key's
//!   segment ([`segment_of`]).
//! - [`messages`]: the questions one side asks the other and their answers
//!   ([`ExchangeRequest`], [`ExchangeReply`]), as plain serde types, and the
//!   functions that answer them from a tree or from storage entries.
//! - [`compare`]: checks that an answer fits its question and finds
//!   differing hashes and keys ([`KeyDiff`]).
//! - [`exchange`]: [`ExchangeMachine`], one exchange with one peer: roots,
//!   then branches, then segments, a re-check after a pause, then key
//!   summaries, and a [`ExchangeCommand::Repair`] for the keys that differ.
//!
//! The node owns the rest: one tree per partition it holds, updated on every
//! write, hint delivery and repair; rebuilding trees on start; scheduling
//! exchanges (interval, concurrency, bandwidth); carrying the requests over
//! its protocol; and performing repairs by causal merge.
//!
//! Never: read a clock, storage or a socket, or draw randomness. Everything
//! here is pure and tested without a runtime (`tests/anti_entropy_props.rs`).

pub mod compare;
pub mod exchange;
pub mod messages;
pub mod tree;

pub use compare::{Difference, KeyDiff, ReplyProblem};
pub use exchange::{
    ExchangeCommand, ExchangeError, ExchangeLimits, ExchangeMachine, ExchangePlan, ExchangeReport,
    Side,
};
pub use messages::{
    BadRequest, ExchangeReply, ExchangeRequest, KeySummaries, KeySummary, SegmentHashes,
    SummaryQuery, TreeLevel, TreeQuery, MAX_SUMMARY_BYTES, MAX_SUMMARY_ENTRIES,
};
pub use tree::{
    branch_of, key_hash, segment_of, segment_range, storage_position, PartitionTree, BRANCHES,
    SEGMENTS, SEGMENTS_PER_BRANCH,
};
