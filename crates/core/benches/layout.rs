//! Benchmark: computing a large layout, from scratch and after one join.
//!
//! 1,000 nodes in 10 zones, Q = 65,536, N = 3 (the scale Riak's claim v4
//! takes over a minute for). Prints the times, the slots the join moved
//! against the ideal `Q * N / 1001`, the balance (max and mean slots), and
//! the encoded size that gossip carries. Run with
//! `cargo bench -p ringkv-core --bench layout`. Plain `std::time::Instant`:
//! this file is a bench, not core source, and never ships in the library.
//! Without `--bench` (test runs, nextest's listing) it does nothing.

use ringkv_core::layout::{compute_layout, Layout, LayoutParams, Member};
use ringkv_core::NodeId;
use std::time::Instant;

fn members(count: usize) -> Vec<Member> {
    (0..count)
        .map(|i| Member {
            id: NodeId::new(&format!("node-{i:04}")).unwrap(),
            capacity: 1,
            zone: Some(format!("zone-{}", i % 10)),
        })
        .collect()
}

fn report(name: &str, layout: &Layout, seconds: f64) {
    let slots = layout.slot_counts();
    let max = *slots.iter().max().unwrap();
    let min = *slots.iter().min().unwrap();
    let mean = slots.iter().map(|&s| f64::from(s)).sum::<f64>() / slots.len() as f64;
    let started = Instant::now();
    let bytes = layout.encode();
    let encode_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let back = Layout::decode(&bytes).unwrap();
    let decode_ms = started.elapsed().as_secs_f64() * 1e3;
    assert!(back == *layout);
    println!(
        "{name}: {:.1} ms; slots min/mean/max = {min}/{mean:.2}/{max} (max/mean {:.4}); \
         on target: {}; encoded {} bytes ({:.1} KiB), encode {encode_ms:.1} ms, decode {decode_ms:.1} ms",
        seconds * 1e3,
        f64::from(max) / mean,
        layout.balance().on_target(),
        bytes.len(),
        bytes.len() as f64 / 1024.0,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` and
    // nextest's listing run this binary without it (nextest with `--list`),
    // and a debug-build layout of this size is not a test: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let params = LayoutParams {
        partitions: 65_536,
        replication: 3,
    };
    let thousand = members(1000);
    let started = Instant::now();
    let first = compute_layout(&thousand, params, None).unwrap();
    report(
        "1000 nodes, from scratch",
        &first,
        started.elapsed().as_secs_f64(),
    );

    let mut joined = thousand.clone();
    joined.push(Member {
        id: NodeId::new("node-new").unwrap(),
        capacity: 1,
        zone: Some("zone-3".into()),
    });
    let started = Instant::now();
    let second = compute_layout(&joined, params, Some(&first)).unwrap();
    report(
        "1001 nodes, one join",
        &second,
        started.elapsed().as_secs_f64(),
    );
    let moved = second.moved_slots(&first);
    let ideal = f64::from(params.partitions) * params.replication as f64 / 1001.0;
    let newcomer = second.slot_counts()[second
        .members()
        .iter()
        .position(|m| m.id.as_str() == "node-new")
        .unwrap()];
    println!(
        "join moved {moved} slots = {:.3}x the ideal {ideal:.1}; the newcomer holds {newcomer}",
        moved as f64 / ideal
    );

    let started = Instant::now();
    let third = compute_layout(&thousand[1..], params, Some(&first)).unwrap();
    report(
        "999 nodes, one leave",
        &third,
        started.elapsed().as_secs_f64(),
    );
    println!(
        "leave moved {} slots; the leaver held {}",
        third.moved_slots(&first),
        first.slot_counts()[0]
    );

    let started = Instant::now();
    let mut fallbacks = 0usize;
    for p in 0..params.partitions {
        fallbacks += first.replicas(p, 6).count();
    }
    println!(
        "first 6 of every preference list ({fallbacks} entries): {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
}
