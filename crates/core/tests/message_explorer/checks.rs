//! What a run recorded, and the invariants checked over it:
//!
//! - **acknowledged means held**: when a write is acknowledged, at least W
//!   nodes hold its dot (as data or as a hint) at that moment;
//! - **set**: after healing, the merge of every key's copies holds every
//!   acknowledged element, and nothing that was never written;
//! - **monotonic reads** (R + W > N and R + R > N): an element a read
//!   returned is in every read of the key that started after it ended;
//! - **siblings**: a read never returns more siblings than the clients,
//!   plus the writes whose outcome is unknown, plus the writes made from a
//!   read that missed the client's own acknowledged element.

use super::scenario::Scenario;
use std::collections::{BTreeMap, BTreeSet};

/// One successful read of a set key.
#[derive(Debug, Clone)]
pub struct SetRead {
    pub key: String,
    pub started_ms: u64,
    pub ended_ms: u64,
    pub elements: BTreeSet<String>,
    pub siblings: usize,
    /// It missed an element its own client had acknowledged.
    pub stale: bool,
}

#[derive(Debug, Default)]
pub struct History {
    /// `(key, element)` pairs.
    pub written: BTreeSet<(String, String)>,
    pub acked: BTreeSet<(String, String)>,
    pub unknown: BTreeSet<(String, String)>,
    pub reads: Vec<SetRead>,
    pub failed_reads: usize,
    pub final_elements: BTreeMap<String, BTreeSet<String>>,
    /// Invariants broken while running (acknowledged but not held).
    pub violations: Vec<String>,
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub healed_at_ms: u64,
    pub ended_ms: u64,
}

/// The first broken invariant, if any.
pub fn check(s: &Scenario, h: &History) -> Result<(), String> {
    if let Some(v) = h.violations.first() {
        return Err(v.clone());
    }
    for (key, found) in &h.final_elements {
        let of_key = |set: &BTreeSet<(String, String)>| -> BTreeSet<String> {
            set.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, e)| e.clone())
                .collect()
        };
        let lost: Vec<_> = of_key(&h.acked).difference(found).cloned().collect();
        if !lost.is_empty() {
            return Err(format!("{key}: acknowledged elements lost: {lost:?}"));
        }
        let invented: Vec<_> = found.difference(&of_key(&h.written)).cloned().collect();
        if !invented.is_empty() {
            return Err(format!("{key}: elements never written: {invented:?}"));
        }
        let reads: Vec<&SetRead> = h.reads.iter().filter(|r| r.key == *key).collect();
        let bound = s.clients + of_key(&h.unknown).len() + reads.iter().filter(|r| r.stale).count();
        if let Some(r) = reads.iter().find(|r| r.siblings > bound) {
            return Err(format!(
                "{key}: a read returned {} siblings; at most {bound} could be made",
                r.siblings
            ));
        }
        if s.monotonic() {
            for a in &reads {
                for b in reads.iter().filter(|b| b.started_ms > a.ended_ms) {
                    if let Some(e) = a.elements.difference(&b.elements).next() {
                        return Err(format!(
                            "{key}: {e} was read (ended at {} ms) and hidden from a read that started at {} ms",
                            a.ended_ms, b.started_ms
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
