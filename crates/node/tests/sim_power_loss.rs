//! Simulation: a power cut to every node at once loses no acknowledged write.
//!
//! Three real `ringkv_node::run` nodes on turmoil, N = W = 3 and
//! `fsync = always`, so an acknowledged put was fsynced by all three
//! replicas. The client makes [`ACKED_PUTS`] sequential puts, then starts
//! [`IN_FLIGHT_PUTS`] more without waiting (their outcome stays unknown, and
//! they leave unsynced batches on the disks), and the power goes out on
//! every node in the same instant: each disk loses a seeded random subset of
//! its unsynced batches ([`MemStorage::crash_keeping`]), then every node
//! restarts. Afterwards every acknowledged put must be readable (a quorum
//! get with R = 3), and, since W = N, each replica must hold it itself.
//!
//! Two companion tests run the same scenario with one thing broken and
//! require the check to report lost acknowledged writes: the proof that the
//! first test can fail. In one the disks' `sync` lies
//! ([`MemStorage::with_lying_sync`]: `Ok`, nothing made durable); in the
//! other the disks are honest but the nodes acknowledge before syncing
//! (`fsync = periodic`, a sync a minute).
//!
//! Each simulated fsync takes [`SYNC_MS`] of simulated time
//! (`MemStorage::with_simulated_sync_ms`), so the puts in flight leave
//! unsynced batches on the disks at the cut and `crash_keeping`'s random
//! subsets decide which survive (each run prints how many there were).
//!
//! Replay a seed with `RINGKV_SIM_SEED=<seed> cargo test -p ringkv-node --test sim_power_loss`.

#[allow(dead_code)]
mod sim_cluster;
mod sim_net;

use ringkv_core::protocol::{ClientRequest, Request};
use ringkv_core::replication::{Replication, RequestQuorum};
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use ringkv_node::commit::FsyncPolicy;
use ringkv_node::rpc::PeerClient;
use ringkv_node::NodeConfig;
use ringkv_storage::{MemStorage, PowerLoss};
use sim_cluster::{client_of, get_with, key, local_copy, put, values, Steps};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NODES: [&str; 3] = ["n1", "n2", "n3"];
/// Sequential puts the client waits for; each acknowledged one is checked.
const ACKED_PUTS: usize = 30;
/// Puts still in flight when the power goes (outcome unknown, not checked).
const IN_FLIGHT_PUTS: usize = 6;
/// How long each simulated fsync takes, so writes wait unsynced meanwhile.
const SYNC_MS: u64 = 5;

/// What one run saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Keys whose put was acknowledged, with the value.
    acked: Vec<(String, String)>,
    /// Acknowledged keys a quorum get (R = 3) no longer returns.
    unreadable: Vec<String>,
    /// Acknowledged keys missing from one replica's own copy: (key, node).
    missing_on: Vec<(String, &'static str)>,
    /// What each disk's power loss did, in node order.
    power_losses: Vec<PowerLoss>,
}

/// N = R = W = 3; acknowledge after fsync.
fn always(config: &mut NodeConfig) {
    config.replication = Replication { n: 3, r: 3, w: 3 };
    config.fsync = FsyncPolicy::Always;
}

/// N = R = W = 3; acknowledge at once, fsync every minute.
fn periodic(config: &mut NodeConfig) {
    always(config);
    config.fsync = FsyncPolicy::Periodic {
        interval_ms: 60_000,
    };
}

/// The seed of node `i`'s power loss in the run seeded with `seed`.
fn power_loss_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64 + 1)
}

/// Runs the scenario on `disks` with the nodes set up by `configure`
/// ([`always`] or [`periodic`]) and returns what it saw.
fn run(
    seed: u64,
    disks: [MemStorage; 3],
    configure: fn(&mut NodeConfig),
) -> Result<Outcome, String> {
    let mut sim = sim_cluster::cluster_on(seed, &NODES, disks.to_vec(), configure);
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let steps = Steps::default();
    {
        let (outcome, steps) = (outcome.clone(), steps.clone());
        sim.client("client", async move {
            let clients: Vec<PeerClient> = NODES.iter().map(|n| client_of(n)).collect();
            let acked = write_then_cut_power(&clients, &steps).await;
            let clients: Vec<PeerClient> = NODES.iter().map(|n| client_of(n)).collect();
            let (unreadable, missing_on) = check(&clients, &acked).await;
            *outcome.lock().unwrap() = Outcome {
                acked,
                unreadable,
                missing_on,
                power_losses: Vec::new(),
            };
            Ok(())
        });
    }
    let mut power_losses = Vec::new();
    steps
        .run(&mut sim, |sim, _| {
            for (i, name) in NODES.iter().enumerate() {
                sim.crash(*name);
                power_losses.push(disks[i].crash_keeping(power_loss_seed(seed, i)));
            }
            for name in NODES {
                sim.bounce(name);
            }
        })
        .map_err(|e| e.to_string())?;
    let mut outcome = std::mem::take(&mut *outcome.lock().unwrap());
    outcome.power_losses = power_losses;
    Ok(outcome)
}

/// The acknowledged puts; returns after every node lost power and restarted.
async fn write_then_cut_power(clients: &[PeerClient], steps: &Steps) -> Vec<(String, String)> {
    wait_up(clients).await;
    // The cluster answers once every node is up and sees the others.
    sim_cluster::eventually(30, "the first W = 3 put succeeds", || async {
        put(&clients[0], "warm-up", VersionVector::new(), "x")
            .await
            .is_ok()
    })
    .await;
    let mut acked = Vec::new();
    for i in 0..ACKED_PUTS {
        let (k, v) = (format!("acked-{i}"), format!("v{i}"));
        if put(&clients[i % 3], &k, VersionVector::new(), &v)
            .await
            .is_ok()
        {
            acked.push((k, v));
        }
    }
    assert!(
        acked.len() >= ACKED_PUTS / 2,
        "too few acknowledged puts: {}",
        acked.len()
    );
    let in_flight = (0..IN_FLIGHT_PUTS).map(|i| unchecked_put(&clients[i % 3], i));
    let cut = async {
        // Long enough for some in-flight puts to reach some replicas.
        tokio::time::sleep(Duration::from_millis(20)).await;
        steps.ask(1).await;
    };
    tokio::join!(futures_util::future::join_all(in_flight), cut);
    acked
}

/// Waits until every node answers a ping.
async fn wait_up(clients: &[PeerClient]) {
    for node in clients {
        sim_cluster::eventually(30, "the node answers a ping", || async {
            node.call(Request::Ping, Duration::from_secs(1))
                .await
                .is_ok()
        })
        .await;
    }
}

/// A put whose outcome nobody waits for or checks.
async fn unchecked_put(node: &PeerClient, i: usize) {
    let request = Request::Coordinate {
        request: ClientRequest::Put {
            key: key(&format!("in-flight-{i}")),
            context: VersionVector::new(),
            value: Some(format!("u{i}").into_bytes().into()),
            quorum: RequestQuorum::default(),
            ttl_secs: None,
        },
        forwarded: false,
    };
    let _ = node.call(request, Duration::from_secs(5)).await;
}

/// Which acknowledged keys are unreadable, and which replicas lack which.
async fn check(
    clients: &[PeerClient],
    acked: &[(String, String)],
) -> (Vec<String>, Vec<(String, &'static str)>) {
    wait_up(clients).await;
    let all = RequestQuorum {
        r: Some(3),
        ..RequestQuorum::default()
    };
    let mut unreadable = Vec::new();
    let mut missing_on = Vec::new();
    for (i, (k, v)) in acked.iter().enumerate() {
        // Before the quorum read, which would repair what it finds.
        for (node, name) in clients.iter().zip(NODES) {
            let has = local_copy(node, k)
                .await
                .is_some_and(|o| values(&o).contains(v));
            if !has {
                missing_on.push((k.clone(), name));
            }
        }
        let found = read_all(&clients[i % 3], k, all).await;
        let readable = found.is_some_and(|o| values(&o).contains(v));
        if !readable {
            unreadable.push(k.clone());
        }
    }
    (unreadable, missing_on)
}

/// A get of `k` with R = 3, retried (every 100 ms, at most 30 s) until a
/// quorum answers: peers may still be coming back.
async fn read_all(node: &PeerClient, k: &str, all: RequestQuorum) -> Option<Siblings> {
    for _ in 0..300 {
        if let Ok(found) = get_with(node, k, all).await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no R = 3 quorum answered a get of {k} within 30 s");
}

fn honest_disks() -> [MemStorage; 3] {
    [(); 3].map(|_| MemStorage::new().with_simulated_sync_ms(SYNC_MS))
}

fn lying_disks() -> [MemStorage; 3] {
    [(); 3].map(|_| MemStorage::with_lying_sync().with_simulated_sync_ms(SYNC_MS))
}

#[test]
fn a_power_cut_to_every_node_loses_no_acknowledged_write() {
    sim_cluster::for_each_seed(
        "sim_power_loss",
        "a_power_cut_to_every_node_loses_no_acknowledged_write",
        |seed| {
            let outcome = run(seed, honest_disks(), always)?;
            eprintln!(
                "seed {seed}: {} acknowledged, unsynced batches at the cut {:?}, kept {:?}",
                outcome.acked.len(),
                outcome
                    .power_losses
                    .iter()
                    .map(|p| p.unsynced)
                    .collect::<Vec<_>>(),
                outcome
                    .power_losses
                    .iter()
                    .map(|p| p.kept.len())
                    .collect::<Vec<_>>(),
            );
            assert_eq!(outcome.power_losses.len(), 3, "every disk lost power once");
            assert!(
                outcome.unreadable.is_empty(),
                "lost acknowledged writes: {:?}",
                outcome.unreadable
            );
            assert!(
                outcome.missing_on.is_empty(),
                "replicas lost acknowledged writes: {:?}",
                outcome.missing_on
            );
            Ok(())
        },
    );
}

#[test]
fn the_same_power_cut_finds_lost_writes_when_sync_lies() {
    sim_cluster::for_each_seed(
        "sim_power_loss",
        "the_same_power_cut_finds_lost_writes_when_sync_lies",
        |seed| {
            let outcome = run(seed, lying_disks(), always)?;
            assert_lost("lying sync", seed, &outcome);
            Ok(())
        },
    );
}

#[test]
fn the_same_power_cut_finds_lost_writes_when_nodes_ack_before_fsync() {
    sim_cluster::for_each_seed(
        "sim_power_loss",
        "the_same_power_cut_finds_lost_writes_when_nodes_ack_before_fsync",
        |seed| {
            let outcome = run(seed, honest_disks(), periodic)?;
            assert_lost("fsync = periodic", seed, &outcome);
            Ok(())
        },
    );
}

/// The check found acknowledged writes that the power cut lost.
fn assert_lost(fault: &str, seed: u64, outcome: &Outcome) {
    eprintln!(
        "seed {seed}, {fault}: {} acknowledged, {} unreadable, {} replica copies missing, unsynced batches at the cut {:?}, kept {:?}",
        outcome.acked.len(),
        outcome.unreadable.len(),
        outcome.missing_on.len(),
        outcome.power_losses.iter().map(|p| p.unsynced).collect::<Vec<_>>(),
        outcome.power_losses.iter().map(|p| p.kept.len()).collect::<Vec<_>>(),
    );
    assert!(
        !outcome.unreadable.is_empty(),
        "{fault}: the check missed the acknowledged writes the power cut lost"
    );
}
