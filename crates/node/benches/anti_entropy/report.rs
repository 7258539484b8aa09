//! The benchmark's output: a header line with the settings, then one
//! Markdown table of what was measured (pasteable into the README).

use crate::cluster::AeCounters;
use crate::data::Loaded;
use crate::Args;
use std::time::Duration;

/// Everything the table shows.
pub struct Measured {
    pub loaded: Loaded,
    pub load: Duration,
    pub tree_keys: u64,
    pub rebuild: Duration,
    pub start: Duration,
    pub partitions: u32,
    /// Partitions whose roots differed when the nodes were ready.
    pub differing: usize,
    pub converged: Duration,
    pub at_convergence: Vec<AeCounters>,
    pub settle: Duration,
    pub settled: Vec<AeCounters>,
    pub checked: u64,
}

pub fn header(args: &Args) {
    let limits = &args.ae.limits;
    println!(
        "anti-entropy bench: {} keys x 3 nodes, N = 3, Q = {}, {}-byte values, \
         interval {} ms, re-check {} ms, max_keys {}, max_segments {}",
        args.keys,
        args.ae.partitions,
        args.value_bytes,
        args.ae.interval_ms,
        limits.recheck_after_ms,
        limits.max_keys,
        limits.max_segments,
    );
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn table(m: &Measured) {
    let loaded = &m.loaded;
    let share = |bytes: u64| 100.0 * bytes as f64 / loaded.full_copy_bytes as f64;
    let sum = |c: &[AeCounters]| -> u64 { c.iter().map(AeCounters::bytes).sum() };
    let (at_convergence, settled) = (sum(&m.at_convergence), sum(&m.settled));
    let rows = [
        (
            "keys on n3 missing / stale".to_string(),
            format!(
                "{} / {} ({:.2}% of {})",
                loaded.missing,
                loaded.stale,
                100.0 * loaded.damaged() as f64 / loaded.keys as f64,
                loaded.keys
            ),
        ),
        ("load, 3 fjall databases".into(), seconds(m.load)),
        (
            format!("tree rebuild, one node ({} keys, warm cache)", m.tree_keys),
            ms(m.rebuild),
        ),
        (
            "start to ready, 3 nodes at once (each rebuilds)".into(),
            ms(m.start),
        ),
        (
            "partitions differing at ready".into(),
            format!("{} of {}", m.differing, m.partitions),
        ),
        (
            "ready to converged (all roots equal)".into(),
            seconds(m.converged),
        ),
        (
            "full copy (storage keys + encoded objects, one replica)".into(),
            mib(loaded.full_copy_bytes),
        ),
        (
            "mean encoded object".into(),
            format!(
                "{:.1} bytes",
                loaded.object_bytes as f64 / loaded.keys as f64
            ),
        ),
        (
            "minimum repair (newest objects of the damaged keys)".into(),
            format!(
                "{} ({:.2}%)",
                mib(loaded.minimum_repair_bytes),
                share(loaded.minimum_repair_bytes)
            ),
        ),
        (
            "anti-entropy bytes at convergence, all nodes".into(),
            format!(
                "{} ({:.2}% of a full copy)",
                mib(at_convergence),
                share(at_convergence)
            ),
        ),
        (
            format!("... {} later (exchanges in flight done)", seconds(m.settle)),
            format!("{} ({:.2}%)", mib(settled), share(settled)),
        ),
    ];
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    for (what, value) in rows {
        println!("| {what} | {value} |");
    }
    for (i, node) in m.settled.iter().enumerate() {
        println!(
            "| n{}: sent / received / keys repaired / exchanges | {} / {} / {} / {:?} |",
            i + 1,
            mib(node.bytes_sent),
            mib(node.bytes_received),
            node.keys_repaired,
            node.exchanges
        );
    }
    println!(
        "| damaged keys found newest on n3 | {} of {} |",
        m.checked,
        loaded.damaged()
    );
}
