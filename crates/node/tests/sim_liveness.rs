//! Simulation: failure detection (M2). A node that stops answering is judged
//! down by every peer within a bounded time, and up again within a bounded
//! time after it answers again, decided by each node on its own (phi-accrual
//! over gossip heartbeats, plus call outcomes).
//!
//! Bounds, with a 300 ms gossip interval: the detector's Down time for a
//! steady peer (about 4.5 s with the defaults: 3 s acceptable pause plus the
//! heartbeat interval's spread) plus gossip's spread, so at most
//! [`DOWN_WITHIN_S`]; back up after `recover_after_ms` (5 s) of steady
//! heartbeats, so at most [`UP_WITHIN_S`].
//!
//! Replay a seed with `RINGKV_SIM_SEED=<seed> cargo test -p ringkv-node --test sim_liveness <test>`.

#[allow(dead_code)]
mod sim_cluster;
mod sim_net;

use ringkv_core::health::PeerStatus;
use ringkv_node::node::NodeState;
use ringkv_node::NodeConfig;
use ringkv_storage::MemStorage;
use sim_cluster::{cluster_with, id, OnStartOf};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Seconds within which every peer judges a silent node down.
const DOWN_WITHIN_S: u64 = 10;
/// Seconds within which every peer judges it up again once it answers.
const UP_WITHIN_S: u64 = 12;

fn configure(config: &mut NodeConfig) {
    config.partitions = 16;
    config.gossip_interval_ms = 300;
}

type Registry = Arc<Mutex<BTreeMap<&'static str, Arc<NodeState>>>>;

/// Seconds (of simulated time) until every one of `observers` judges `node`
/// as `want` (or as not down, for `Up`: Suspect counts as up).
async fn seconds_until(nodes: &Registry, observers: &[&str], node: &str, want: PeerStatus) -> u64 {
    let started = tokio::time::Instant::now();
    loop {
        let judged = observers.iter().all(|o| {
            let state = nodes.lock().unwrap().get(o).cloned().unwrap();
            let status = state.coordinator.view.load().status(&id(node));
            match want {
                PeerStatus::Down => status == PeerStatus::Down,
                _ => status != PeerStatus::Down,
            }
        });
        if judged {
            return started.elapsed().as_secs();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{node} never judged {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_silent_node_is_judged_down_by_every_peer_and_up_again_after_it_returns() {
    sim_cluster::for_each_seed(
        "sim_liveness",
        "a_silent_node_is_judged_down_by_every_peer_and_up_again_after_it_returns",
        |seed| {
            let nodes: Registry = Arc::default();
            let hook = nodes.clone();
            let on_start: OnStartOf = Arc::new(move |name| {
                let nodes = hook.clone();
                Some(Box::new(move |state: &Arc<NodeState>| {
                    nodes.lock().unwrap().insert(name, state.clone());
                }))
            });
            let names: &'static [&'static str] = &["n1", "n2", "n3", "n4"];
            let disks = (0..4).map(|_| MemStorage::new()).collect();
            let mut sim = cluster_with(seed, names, disks, configure, on_start);
            let n = nodes.clone();
            sim.client("client", async move {
                // Steady gossip first, so the detectors have learned.
                tokio::time::sleep(Duration::from_secs(10)).await;
                let peers = ["n1", "n2", "n3"];
                assert_eq!(seconds_until(&n, &peers, "n4", PeerStatus::Up).await, 0);
                for p in peers {
                    turmoil::partition("n4", p);
                }
                let down = seconds_until(&n, &peers, "n4", PeerStatus::Down).await;
                eprintln!("n4 judged down by every peer after {down} s");
                assert!(down <= DOWN_WITHIN_S, "down after {down} s");
                for p in peers {
                    turmoil::repair("n4", p);
                }
                let up = seconds_until(&n, &peers, "n4", PeerStatus::Up).await;
                eprintln!("n4 judged up again by every peer after {up} s");
                assert!(up <= UP_WITHIN_S, "up after {up} s");
                Ok(())
            });
            sim.run()
        },
    );
}
