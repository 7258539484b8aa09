//! The message-level fault explorer (issue 9): the core's coordination
//! machines, driven as the node drives them, with every request and answer
//! a message through a network that loses, delays (so reorders) and
//! duplicates messages and cuts partitions. Each seed picks 3–6 nodes,
//! N/R/W, clients and faults (`message_explorer/scenario.rs`); the checks
//! are in `message_explorer/checks.rs`. No sockets, no clock, no threads:
//! thousands of seeds run in seconds, and a seed replays exactly. The
//! whole-node explorer (`crates/node/tests/explore.rs`, turmoil) covers
//! what this one cannot: crashes, layout changes, gossip, anti-entropy.
//!
//! - CI runs seeds 0..CI_SEEDS.
//! - More: `RINGKV_MESSAGE_SEEDS=FROM..TO cargo test --release -p ringkv-core --test message_explorer -- --nocapture`.
//! - One: `RINGKV_MESSAGE_SEED=N cargo test -p ringkv-core --test message_explorer -- --nocapture`.

mod message_explorer {
    pub mod checks;
    pub mod draw;
    pub mod run;
    pub mod scenario;
    pub mod world;
}

use message_explorer::{checks, run, scenario::Scenario};

/// Seeds `.ci/run` explores.
const CI_SEEDS: u64 = 500;

fn seeds() -> Vec<u64> {
    if let Ok(one) = std::env::var("RINGKV_MESSAGE_SEED") {
        return vec![one.parse().expect("RINGKV_MESSAGE_SEED must be a number")];
    }
    match std::env::var("RINGKV_MESSAGE_SEEDS") {
        Ok(range) => {
            let (from, to) = range
                .split_once("..")
                .expect("RINGKV_MESSAGE_SEEDS=FROM..TO");
            (from.parse().expect("a number")..to.parse().expect("a number")).collect()
        }
        Err(_) => (0..CI_SEEDS).collect(),
    }
}

#[test]
fn explore_message_seeds() {
    let started = std::time::Instant::now();
    let seeds = seeds();
    let mut failed = Vec::new();
    let (mut messages, mut dropped, mut duplicated, mut acked) = (0, 0, 0, 0);
    for &seed in &seeds {
        let scenario = Scenario::of(seed);
        let history = run::run(&scenario);
        messages += history.sent;
        dropped += history.dropped;
        duplicated += history.duplicated;
        acked += history.acked.len();
        if let Err(why) = checks::check(&scenario, &history) {
            eprintln!("FAILED {scenario}\n  {why}\n  replay: RINGKV_MESSAGE_SEED={seed} cargo test -p ringkv-core --test message_explorer -- --nocapture");
            failed.push(seed);
        }
    }
    eprintln!(
        "explored {} seeds in {:.1} s: {messages} messages ({dropped} lost, {duplicated} duplicated), {acked} acknowledged writes; failed: {failed:?}",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "seeds {failed:?} failed");
}

#[test]
fn the_same_seed_gives_the_same_history() {
    let s = Scenario::of(17);
    let (a, b) = (run::run(&s), run::run(&s));
    assert!(a.reads.len() > 5 && a.sent > 50, "the run did something");
    assert_eq!(format!("{:?}", a.reads), format!("{:?}", b.reads));
    assert_eq!((a.acked, a.unknown, a.sent), (b.acked, b.unknown, b.sent));
}
