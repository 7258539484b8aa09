//! The seeded fault explorer (issue 9): each seed is one scenario (see
//! `explorer/`), checked for lost acknowledged writes, resurrected deletes,
//! stale registers, unbounded siblings, non-monotonic quorum reads and
//! replicas that do not converge.
//!
//! - CI runs a fixed set of seeds ([`CI_SEEDS`]).
//! - More: `RINGKV_EXPLORE_SEEDS=FROM..TO cargo test --release -p ringkv-node --test explore -- --nocapture`.
//! - One seed, exactly as it ran: `RINGKV_EXPLORE_SEED=N cargo test -p ringkv-node --test explore explore_seeds -- --nocapture`.

mod explorer;
#[allow(dead_code)]
mod sim_cluster;
mod sim_net;

/// The seeds `.ci/run` explores: 0..13 without seed 4, which breaks the
/// sibling bound under sloppy quorum, one of the open bugs listed in
/// docs/testing.md (`RINGKV_EXPLORE_SEED=4` replays it). Every seed here
/// passes, so a failure in CI is a new bug.
const CI_SEEDS: [u64; 12] = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12];

fn seeds() -> Vec<u64> {
    if let Ok(one) = std::env::var("RINGKV_EXPLORE_SEED") {
        return vec![one.parse().expect("RINGKV_EXPLORE_SEED must be a number")];
    }
    match std::env::var("RINGKV_EXPLORE_SEEDS") {
        Ok(range) => {
            let (from, to) = range
                .split_once("..")
                .expect("RINGKV_EXPLORE_SEEDS=FROM..TO");
            (from.parse().expect("a number")..to.parse().expect("a number")).collect()
        }
        Err(_) => CI_SEEDS.to_vec(),
    }
}

#[test]
fn explore_seeds() {
    let mut failed = Vec::new();
    let started = std::time::Instant::now();
    let seeds = seeds();
    for seed in &seeds {
        let scenario = explorer::scenario::Scenario::of(*seed);
        let run = explorer::run(*seed);
        if let Some(why) = run.failure {
            eprintln!("FAILED {scenario}\n  {why}\n  replay: RINGKV_EXPLORE_SEED={seed} cargo test -p ringkv-node --test explore explore_seeds -- --nocapture");
            failed.push(*seed);
        }
    }
    eprintln!(
        "explored {} seeds in {:.1} s; failed: {failed:?}",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "seeds {failed:?} failed");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let a = explorer::run(3);
    let b = explorer::run(3);
    assert!(a.trace.len() > 20, "the trace records the run");
    assert_eq!(a.trace, b.trace, "a replay follows the same path");
}

#[test]
#[ignore = "prints one seed's trace: RINGKV_EXPLORE_SEED=N ... -- --ignored --nocapture"]
fn print_trace() {
    let seed = seeds()[0];
    eprintln!("{}", explorer::scenario::Scenario::of(seed));
    let run = explorer::run(seed);
    for line in &run.trace {
        eprintln!("{line}");
    }
    eprintln!("failure: {:?}", run.failure);
}
