//! Benchmark: gossip membership at 1,000 nodes, in the pure simulation of
//! `tests/gossip_sim` (every message encoded with postcard and decoded, as
//! on the wire; sizes include an estimated 9-byte frame overhead).
//!
//! Prints, over a few seeds, the rounds until a joining node is known by
//! all, a record change reaches all and a heartbeat reaches all
//! (min/median/max); then, in steady state (everyone known, nothing
//! changing but heartbeats), the bytes each node sends per round (mean and
//! max, and by message kind) and the time one round of the whole cluster
//! takes in this one thread. Run with
//! `cargo bench -p ringkv-core --bench gossip`. Plain `std::time::Instant`:
//! this file is a bench, not core source. Without `--bench` it does nothing.
//!
//! Measured once (release, 2-core machine shared with other builds): join
//! 6/7/7 rounds, record change 7/7/7, heartbeat 5/6/6; steady state 32.9 KiB
//! sent per node per round on average (SYN 18.0 KB, ACK 11.4 KB, ACK2
//! 4.3 KB), 114.7 KiB at most (a node several initiators picked); 1.0 s per
//! round of all 1,001 nodes, so about 1 ms of CPU per node per round.

#[path = "../tests/gossip_sim/mod.rs"]
mod gossip_sim;

use gossip_sim::{measure, Sent};
use std::time::Instant;

const NODES: usize = 1000;
const SEEDS: u64 = 5;
const STEADY_ROUNDS: usize = 20;

fn spread(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    format!("{}/{}/{}", v[0], v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut rounds: [Vec<u64>; 3] = Default::default();
    let mut last = None;
    for seed in 1..=SEEDS {
        let (cluster, r) = measure(NODES, seed, 200);
        assert_eq!(cluster.invalid, 0);
        for k in 0..3 {
            rounds[k].push(r[k]);
        }
        last = Some(cluster);
    }
    let [join, record, beat] = rounds;
    println!(
        "{NODES} nodes, {SEEDS} seeds, rounds min/median/max: join {}, record change {}, heartbeat {}",
        spread(join),
        spread(record),
        spread(beat)
    );

    let mut cluster = last.unwrap();
    cluster.check_wire = false;
    let n = cluster.nodes.len();
    let (mut totals, mut by_kind) = (Vec::new(), Sent::default());
    let started = Instant::now();
    for _ in 0..STEADY_ROUNDS {
        cluster.round();
        for s in &cluster.sent {
            totals.push(s.total());
            by_kind.syn += s.syn;
            by_kind.ack += s.ack;
            by_kind.ack2 += s.ack2;
        }
    }
    let per_round_ms = started.elapsed().as_secs_f64() * 1e3 / STEADY_ROUNDS as f64;
    assert_eq!(cluster.invalid, 0);
    let samples = totals.len() as f64;
    let mean = totals.iter().sum::<u64>() as f64 / samples;
    let max = totals.iter().max().unwrap();
    println!(
        "steady state, {n} nodes x {STEADY_ROUNDS} rounds: bytes sent per node per round mean {:.0} ({:.1} KiB), max {max} ({:.1} KiB); \
         mean by kind: SYN {:.0}, ACK {:.0}, ACK2 {:.0}",
        mean,
        mean / 1024.0,
        *max as f64 / 1024.0,
        by_kind.syn as f64 / samples,
        by_kind.ack as f64 / samples,
        by_kind.ack2 as f64 / samples,
    );
    println!(
        "time per round (all {n} nodes, one thread, encode + decode + merge): {per_round_ms:.1} ms ({:.1} us per node)",
        per_round_ms * 1e3 / n as f64
    );
}
