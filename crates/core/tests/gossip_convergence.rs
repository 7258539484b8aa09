//! Gossip convergence at 100 nodes: news reaches every node in O(log n)
//! rounds, and no message a node sends ever fails validation.
//!
//! The model is `tests/gossip_sim` (one exchange per node per round with a
//! random live peer, nodes in random order, every message through postcard
//! and `validate()`). Measured over seeds 1..=12 (`cargo test -p ringkv-core
//! --test gossip_convergence -- --nocapture` prints them), the worst case:
//! a node that knows only a seed is known by all in 6 rounds (4 to 6), a
//! record change reaches all in 6 (4 to 6), a heartbeat in 4 (3 to 4).
//! `log2 100` is 6.6, so the bound asserted is `ceil(log2 n) + 1` = 8
//! rounds: tighter than the `2 ceil(log2 n) + 4` = 18 first proposed, and
//! still two rounds of slack. Push-only or pull-only gossip would need
//! about `log2 n + ln n` = 11.

mod gossip_sim;

use gossip_sim::measure;

const NODES: usize = 100;
const SEEDS: u64 = 12;

#[test]
fn news_reaches_all_100_nodes_in_logarithmic_rounds() {
    let log2 = (NODES as f64).log2().ceil() as u64;
    let bound = log2 + 1;
    let mut worst = [0u64; 3];
    for seed in 1..=SEEDS {
        let (cluster, rounds) = measure(NODES, seed, 100);
        println!(
            "seed {seed}: join {} record {} heartbeat {}",
            rounds[0], rounds[1], rounds[2]
        );
        assert_eq!(
            cluster.invalid, 0,
            "seed {seed}: a message failed validation"
        );
        for k in 0..3 {
            worst[k] = worst[k].max(rounds[k]);
        }
    }
    println!(
        "worst: join {} record {} heartbeat {} (bound {bound})",
        worst[0], worst[1], worst[2]
    );
    assert!(worst.iter().all(|&w| w <= bound), "{worst:?} > {bound}");
}
