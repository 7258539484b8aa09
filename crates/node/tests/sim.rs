//! Deterministic simulation: a whole cluster in one thread on virtual time.
//!
//! Each test runs a 3-node cluster of real `ringkv_node::run` nodes over
//! turmoil's simulated TCP, with in-memory storage, a seeded network that
//! delays (and so reorders) messages, and partitions. Clients talk to the
//! nodes with the node-to-node RPC `Coordinate` request, so everything but
//! HTTP runs exactly as in production.
//!
//! Every test runs for several seeds. A failing seed prints the command that
//! replays it exactly: `RINGKV_SIM_SEED=<seed> cargo test -p ringkv-node --test sim <test>`.

#[allow(dead_code)]
mod sim_cluster;
mod sim_net;

use ringkv_core::protocol::{OpError, Request};
use ringkv_core::version_vector::VersionVector;
use ringkv_node::rpc::backoff::RECONNECT_BACKOFF_CAP;
use ringkv_node::rpc::PeerClient;
use ringkv_storage::MemStorage;
use sim_cluster::{client_of, get, put, values};
use std::sync::Arc;
use std::time::Duration;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// Builds a simulation with `seed` and registers the three nodes.
fn cluster(seed: u64) -> turmoil::Sim<'static> {
    cluster_on(
        seed,
        [MemStorage::new(), MemStorage::new(), MemStorage::new()],
    )
}

/// Like [`cluster`], with the nodes' disks given, so a test can crash them.
fn cluster_on(seed: u64, disks: [MemStorage; 3]) -> turmoil::Sim<'static> {
    sim_cluster::cluster_on(seed, &NODES, disks.to_vec(), |_| {})
}

fn for_each_seed(name: &str, test: impl Fn(u64) -> turmoil::Result) {
    sim_cluster::for_each_seed("sim", name, test)
}

#[test]
fn read_after_acknowledged_write_sees_it_when_r_plus_w_exceeds_n() {
    for_each_seed(
        "read_after_acknowledged_write_sees_it_when_r_plus_w_exceeds_n",
        |seed| {
            let mut sim = cluster(seed);
            sim.client("client", async {
                let clients: Vec<PeerClient> = NODES.iter().map(|n| client_of(n)).collect();
                for i in 0..20 {
                    let k = format!("key-{i}");
                    let writer = &clients[i % 3];
                    let reader = &clients[(i + 1) % 3];
                    put(writer, &k, VersionVector::new(), &format!("v{i}"))
                        .await
                        .expect("put");
                    let found = get(reader, &k)
                        .await
                        .expect("get")
                        .expect("acknowledged write is visible");
                    assert_eq!(values(&found), vec![format!("v{i}")]);
                }
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn concurrent_blind_writes_become_siblings_and_a_put_with_the_read_context_collapses_them() {
    for_each_seed(
        "concurrent_blind_writes_become_siblings_and_a_put_with_the_read_context_collapses_them",
        |seed| {
            let mut sim = cluster(seed);
            sim.client("client", async {
                let (a, b) = (client_of("n1"), client_of("n2"));
                let (ra, rb) = tokio::join!(
                    put(&a, "cart", VersionVector::new(), "apples"),
                    put(&b, "cart", VersionVector::new(), "pears")
                );
                ra.expect("first blind put");
                rb.expect("second blind put");
                let found = get(&client_of("n3"), "cart")
                    .await
                    .expect("get")
                    .expect("present");
                assert_eq!(
                    values(&found),
                    vec!["apples".to_string(), "pears".to_string()]
                );
                put(&a, "cart", found.clock().clone(), "apples+pears")
                    .await
                    .expect("resolving put");
                for node in NODES {
                    let after = get(&client_of(node), "cart")
                        .await
                        .expect("get")
                        .expect("present");
                    assert_eq!(
                        values(&after),
                        vec!["apples+pears".to_string()],
                        "read via {node}"
                    );
                }
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn with_one_node_partitioned_away_r_and_w_of_two_still_succeed() {
    for_each_seed(
        "with_one_node_partitioned_away_r_and_w_of_two_still_succeed",
        |seed| {
            let mut sim = cluster(seed);
            sim.client("client", async {
                let n1 = client_of("n1");
                put(&n1, "before", VersionVector::new(), "x")
                    .await
                    .expect("put before partition");
                for other in ["n1", "n2", "client"] {
                    turmoil::partition("n3", other);
                }
                for i in 0..10 {
                    let k = format!("during-{i}");
                    put(&n1, &k, VersionVector::new(), "y")
                        .await
                        .expect("put with n3 partitioned away");
                    let found = get(&client_of("n2"), &k)
                        .await
                        .expect("get with n3 partitioned away");
                    assert_eq!(values(&found.expect("present")), vec!["y".to_string()]);
                }
                let found = get(&n1, "before").await.expect("get").expect("present");
                assert_eq!(values(&found), vec!["x".to_string()]);
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn with_two_nodes_partitioned_away_the_quorum_error_names_the_missing_replicas() {
    for_each_seed(
        "with_two_nodes_partitioned_away_the_quorum_error_names_the_missing_replicas",
        |seed| {
            let mut sim = cluster(seed);
            sim.client("client", async {
                let n1 = client_of("n1");
                put(&n1, "k", VersionVector::new(), "x")
                    .await
                    .expect("put while healthy");
                turmoil::partition("n1", "n2");
                turmoil::partition("n1", "n3");
                let started = tokio::time::Instant::now();
                match put(&n1, "k", VersionVector::new(), "y").await {
                    Err(OpError::Quorum(e)) => {
                        assert_eq!((e.needed, e.asked, e.acks), (2, 3, 1), "{e}");
                        let failed: Vec<&str> =
                            e.failures.iter().map(|(n, _)| n.as_str()).collect();
                        assert!(failed.contains(&"n2") && failed.contains(&"n3"), "{e}");
                    }
                    other => panic!("expected a quorum error, got {other:?}"),
                }
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "the request deadline bounds the wait"
                );
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn a_node_that_crashes_and_loses_unsynced_writes_returns_as_a_new_actor_and_loses_nothing_acknowledged(
) {
    use std::sync::atomic::{AtomicU8, Ordering};
    for_each_seed(
        "a_node_that_crashes_and_loses_unsynced_writes_returns_as_a_new_actor_and_loses_nothing_acknowledged",
        |seed| {
            let disks = [MemStorage::new(), MemStorage::new(), MemStorage::new()];
            let n2_disk = disks[1].clone();
            let mut sim = cluster_on(seed, disks);
            // 0: writing, 1: asks the test to crash n2, 2: n2 is back.
            let phase = Arc::new(AtomicU8::new(0));
            let client_phase = phase.clone();
            sim.client("client", async move {
                let n1 = client_of("n1");
                for i in 0..10 {
                    put(&n1, &format!("k{i}"), VersionVector::new(), &format!("v{i}")).await.expect("put");
                }
                let before = put(&client_of("n2"), "before", VersionVector::new(), "x").await.expect("put via n2");
                let actor_before = before.entries()[0].0.clone();
                client_phase.store(1, Ordering::SeqCst);
                while client_phase.load(Ordering::SeqCst) != 2 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                // n2 restarts; wait until it coordinates again.
                let n2 = client_of("n2");
                let context = loop {
                    match n2.call(Request::Ping, Duration::from_secs(1)).await {
                        Ok(_) => break put(&n2, "after", VersionVector::new(), "x").await.expect("put via n2"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                };
                let actor_after = context.entries()[0].0.clone();
                assert_eq!(context.len(), 1);
                assert_ne!(actor_after, actor_before, "n2 lost unsynced state, so it mints as a new actor");
                assert_eq!(actor_after.member(), "n2");
                for i in 0..10 {
                    let found = get(&n2, &format!("k{i}")).await.expect("get").expect("acknowledged write survives");
                    assert_eq!(values(&found), vec![format!("v{i}")]);
                }
                Ok(())
            });
            while !sim.step()? {
                if phase.load(Ordering::SeqCst) == 1 {
                    sim.crash("n2");
                    n2_disk.crash();
                    sim.bounce("n2");
                    phase.store(2, Ordering::SeqCst);
                }
            }
            Ok(())
        },
    );
}

/// A small seeded generator (xorshift64*), so the schedule follows the seed.
struct Schedule(u64);

impl Schedule {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

#[test]
fn under_random_partitions_no_acknowledged_write_is_lost() {
    for_each_seed(
        "under_random_partitions_no_acknowledged_write_is_lost",
        |seed| {
            let mut sim = cluster(seed);
            sim.client("client", async move {
                let mut schedule = Schedule(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
                let clients: Vec<PeerClient> = NODES.iter().map(|n| client_of(n)).collect();
                let pairs = [("n1", "n2"), ("n1", "n3"), ("n2", "n3")];
                let mut cut = [false; 3];
                // key -> values whose put was acknowledged (blind puts supersede
                // nothing, so every one of them must still be there at the end).
                let mut acked: Vec<Vec<String>> = vec![Vec::new(); 6];
                for op in 0..60 {
                    if schedule.below(5) == 0 {
                        let p = schedule.below(3);
                        let (a, b) = pairs[p];
                        if cut[p] {
                            turmoil::repair(a, b);
                        } else {
                            turmoil::partition(a, b);
                        }
                        cut[p] = !cut[p];
                        continue;
                    }
                    let k = schedule.below(acked.len());
                    let value = format!("v{op}");
                    let via = &clients[schedule.below(3)];
                    if put(via, &format!("key-{k}"), VersionVector::new(), &value)
                        .await
                        .is_ok()
                    {
                        acked[k].push(value);
                    }
                    // A failed put is "unknown": it may or may not have landed.
                }
                for (p, (a, b)) in pairs.iter().enumerate() {
                    if cut[p] {
                        turmoil::repair(*a, *b);
                    }
                }
                // Peers that were cut are known down until their reconnection
                // backoff passes (at most the cap): wait that out.
                tokio::time::sleep(RECONNECT_BACKOFF_CAP + Duration::from_millis(100)).await;
                let total: usize = acked.iter().map(Vec::len).sum();
                assert!(total > 10, "the schedule acknowledged only {total} writes");
                for (k, want) in acked.iter().enumerate() {
                    for (n, via) in clients.iter().enumerate() {
                        let found = get(via, &format!("key-{k}"))
                            .await
                            .expect("read after healing");
                        let have = found.as_ref().map(values).unwrap_or_default();
                        for v in want {
                            assert!(
                                have.contains(v),
                                "acknowledged {v} of key-{k} missing via n{}: {have:?}",
                                n + 1
                            );
                        }
                    }
                }
                Ok(())
            });
            sim.run()
        },
    );
}
