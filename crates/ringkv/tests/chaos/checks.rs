//! The checks after healing: every acknowledged element is in a read with
//! R = N through every node, and nothing that was never written is.
//!
//! - A *lost* element was acknowledged (the put answered 204) and is missing
//!   from a `?r=3` read. Right after healing this can be a replica that has
//!   not caught up yet (a read during faults may miss writes; see
//!   docs/consistency.md), so the check polls, for at most
//!   [`CONVERGE_WITHIN`], while hinted handoff, read repair and
//!   anti-entropy run. Still missing then: a lost write.
//! - A *phantom* element was never written by any client. That can never
//!   be right, so it fails at once.
//! - An element whose put had an unknown outcome may or may not be there.
//!
//! - Before any quorum read (whose blocking repair would fix replicas
//!   itself), [`replicas_converge`] waits until each key's copies on the
//!   nodes (`?local=true`) agree, number at least N, and hold every
//!   acknowledged element: hinted handoff and anti-entropy alone must get
//!   there.
//!
//! *Boundary:* reads only, through the nodes' HTTP API, after every client
//! stopped (so the history is complete).

use super::workload::{read_set, History, KeyHistory};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long replicas may take to agree after every fault healed.
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(120);

/// What a final read through one node got wrong for one key.
#[derive(Debug, Default)]
struct Wrong {
    lost: Vec<String>,
    phantom: Vec<String>,
    failed_reads: Vec<String>,
}

/// Polls (local reads only, so no read repair helps) until every key has
/// at least `n` copies on the nodes, all equal and holding every
/// acknowledged element; `Ok(time it took)`, or `Err(what differs)`.
pub fn replicas_converge(
    nodes: &[SocketAddr],
    history: &History,
    keys: usize,
    n: usize,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let mut differ = Vec::new();
        for k in 0..keys {
            let key = format!("set{k}");
            let acked = history
                .keys
                .get(&key)
                .map(|h| h.acked.clone())
                .unwrap_or_default();
            let copies: Vec<(usize, BTreeSet<String>)> = nodes
                .iter()
                .enumerate()
                .filter_map(|(i, &node)| {
                    read_set(node, &key, "?local=true").map(|r| (i, r.elements))
                })
                .filter(|(_, elements)| !elements.is_empty())
                .collect();
            let agree = copies.windows(2).all(|w| w[0].1 == w[1].1);
            let complete = copies.iter().all(|(_, e)| acked.is_subset(e));
            if copies.len() < n.min(nodes.len()) || !agree || !complete {
                let sizes: Vec<String> = copies
                    .iter()
                    .map(|(i, e)| {
                        format!(
                            "n{}: {} (lacks {})",
                            i + 1,
                            e.len(),
                            acked.difference(e).count()
                        )
                    })
                    .collect();
                differ.push(format!("{key}: {sizes:?}"));
            }
        }
        if differ.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > CONVERGE_WITHIN {
            return Err(format!(
                "replicas did not converge through hinted handoff and anti-entropy within {CONVERGE_WITHIN:?}: {differ:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Polls until every key reads right through every node; `Ok(time it
/// took)`, or `Err(a precise report)`.
pub fn settle(nodes: &[SocketAddr], history: &History, keys: usize) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let wrong = check_once(nodes, history, keys);
        let done = wrong.lost.is_empty() && wrong.failed_reads.is_empty();
        if !wrong.phantom.is_empty() {
            return Err(format!(
                "elements that no client ever wrote: {:?}",
                wrong.phantom
            ));
        }
        if done {
            return Ok(started.elapsed());
        }
        if started.elapsed() > CONVERGE_WITHIN {
            return Err(report(nodes, history, &wrong));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn check_once(nodes: &[SocketAddr], history: &History, keys: usize) -> Wrong {
    let mut wrong = Wrong::default();
    for k in 0..keys {
        let key = format!("set{k}");
        let written = history.keys.get(&key).cloned().unwrap_or_default();
        for (i, &node) in nodes.iter().enumerate() {
            let Some(read) = read_set(node, &key, "?r=3") else {
                wrong.failed_reads.push(format!("{key} through n{}", i + 1));
                continue;
            };
            let (before, after) = (format!("{key}: "), format!(" through n{}", i + 1));
            judge(&before, &after, &written, &read.elements, &mut wrong);
        }
    }
    wrong
}

/// Compares one read's elements with what was written: acknowledged ones
/// missing are lost, ones never written are phantoms, unknown ones may be
/// either way. `before` and `after` frame each complaint.
fn judge(
    before: &str,
    after: &str,
    written: &KeyHistory,
    read: &BTreeSet<String>,
    wrong: &mut Wrong,
) {
    for element in written.acked.difference(read) {
        wrong.lost.push(format!("{before}{element}{after}"));
    }
    for element in read {
        if !written.acked.contains(element) && !written.unknown.contains(element) {
            wrong.phantom.push(format!("{before}{element}{after}"));
        }
    }
}

/// The failure: what is still missing, and each node's own copy of the
/// first few keys concerned (`?local=true`), to tell a replica that never
/// got the write from a coordinator that returned a wrong merge.
fn report(nodes: &[SocketAddr], history: &History, wrong: &Wrong) -> String {
    let mut out = format!(
        "not converged after {CONVERGE_WITHIN:?}: {} acknowledged elements missing from R=N reads, {} reads failed\n  missing (first 20): {:?}\n  failed reads: {:?}\n",
        wrong.lost.len(),
        wrong.failed_reads.len(),
        &wrong.lost[..wrong.lost.len().min(20)],
        wrong.failed_reads
    );
    let keys: BTreeSet<&str> = wrong
        .lost
        .iter()
        .filter_map(|l| l.split(':').next())
        .take(3)
        .collect();
    for key in keys {
        let written = history.keys.get(key).cloned().unwrap_or_default();
        out.push_str(&format!(
            "  {key}: {} acked, {} unknown\n",
            written.acked.len(),
            written.unknown.len()
        ));
        for (i, &node) in nodes.iter().enumerate() {
            out.push_str(&format!(
                "    n{} local: {}\n",
                i + 1,
                local_copy(node, key, &written.acked)
            ));
        }
    }
    out
}

/// A node's own copy of a key: how many elements, and which acknowledged
/// ones it lacks.
fn local_copy(node: SocketAddr, key: &str, acked: &BTreeSet<String>) -> String {
    match read_set(node, key, "?local=true") {
        Some(read) => format!(
            "{} elements, lacks {:?}",
            read.elements.len(),
            acked.difference(&read.elements).collect::<Vec<_>>()
        ),
        None => "read failed".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(elements: &[&str]) -> BTreeSet<String> {
        elements.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_missing_ack_is_lost_an_unwritten_element_is_a_phantom_and_unknowns_are_free() {
        let written = KeyHistory {
            acked: set(&["c0-1", "c1-1"]),
            unknown: set(&["c0-2", "c1-2"]),
        };
        let mut wrong = Wrong::default();
        judge(
            "k: ",
            "",
            &written,
            &set(&["c0-1", "c1-1", "c0-2"]),
            &mut wrong,
        );
        assert!(
            wrong.lost.is_empty() && wrong.phantom.is_empty(),
            "{wrong:?}"
        );
        judge("k: ", "", &written, &set(&["c0-1", "c9-9"]), &mut wrong);
        assert_eq!(wrong.lost, vec!["k: c1-1"]);
        assert_eq!(wrong.phantom, vec!["k: c9-9"]);
    }
}
