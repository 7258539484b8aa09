//! What the clients saw, as the oracle keeps it: every operation's outcome,
//! in order. A write that failed or timed out is *unknown*: it may or may
//! not have landed, so the checks never treat it as absent.

use std::collections::{BTreeMap, BTreeSet};

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Acked,
    Unknown,
}

/// One successful read of a set key: when it started and ended (the
/// history's logical clock) and the elements it returned.
#[derive(Debug, Clone)]
pub struct SetRead {
    pub started: u64,
    pub ended: u64,
    pub elements: BTreeSet<String>,
    pub siblings: usize,
}

/// A set key: elements added, by outcome, and the reads.
#[derive(Debug, Clone, Default)]
pub struct SetKey {
    pub acked: BTreeSet<String>,
    pub unknown: BTreeSet<String>,
    pub reads: Vec<SetRead>,
    /// Clients writing this key.
    pub writers: usize,
    /// Reads that missed an element their own client had written and seen
    /// acknowledged (sloppy quorum, or R + W <= N, allows it): the write
    /// that follows such a read may add one sibling.
    pub stale_reads: usize,
}

/// A register: one client's chain of writes, each with the context the
/// previous acknowledged one returned.
#[derive(Debug, Clone, Default)]
pub struct Register {
    pub writes: Vec<RegisterWrite>,
}

/// One register write.
#[derive(Debug, Clone)]
pub struct RegisterWrite {
    pub value: String,
    pub outcome: Outcome,
    /// Whether the context it returned covers it (grew by its dot). The
    /// coordinator leaves it out when writes the client never saw sit
    /// between the client's context and the new dot (a version vector
    /// cannot cover one dot without the ones below it); the write then
    /// stays a sibling of the next one.
    pub covered: bool,
}

/// A key written and then deleted (with the put's context).
#[derive(Debug, Clone)]
pub struct Deleted {
    pub value: String,
    pub put: Outcome,
    pub delete: Option<Outcome>,
}

/// Everything the clients saw.
#[derive(Debug, Default)]
pub struct History {
    /// One line per event, in order: the trace a replay must reproduce.
    pub trace: Vec<String>,
    pub sets: BTreeMap<String, SetKey>,
    pub registers: BTreeMap<String, Register>,
    pub deletes: BTreeMap<String, Deleted>,
    clock: u64,
}

impl History {
    /// The next logical instant.
    pub fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    pub fn log(&mut self, line: String) {
        self.trace.push(line);
    }
}

/// Set elements are stored as one value, comma-separated.
pub fn elements(values: &[String]) -> BTreeSet<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}
