//! Simulation: staying writable and converging through failures (F2, F3,
//! F4). Real nodes on turmoil's network, as in `sim.rs`:
//!
//! - one home of a key down: writes with W = 3 of N = 3 still succeed on a
//!   stand-in, and after the home returns, hinted handoff brings it up to
//!   date and the stand-ins let go of their hints; PW counts homes only;
//! - a stale replica is repaired by one quorum read;
//! - a value a quorum read returned is never hidden from a later quorum
//!   read (monotonic quorum reads), even when the replica that held it
//!   alone is then cut off;
//! - with no hint to carry what a replica missed (a 3-node cluster has no
//!   stand-ins), anti-entropy alone brings it up to date after the
//!   partition heals, and every replica ends with equal Merkle roots (F5);
//! - a record that fails its checksum is treated as missing and replaced by
//!   a replica's copy, by anti-entropy alone.
//!
//! Replay a seed with `RINGKV_SIM_SEED=<seed> cargo test -p ringkv-node --test sim_handoff <test>`.

#[allow(dead_code)]
mod sim_cluster;
mod sim_net;

use ringkv_core::layout::partition_of;
use ringkv_core::protocol::{Request, Response};
use ringkv_core::replication::RequestQuorum;
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use ringkv_node::rpc::backoff::RECONNECT_BACKOFF_CAP;
use ringkv_node::rpc::PeerClient;
use ringkv_storage::MemStorage;
use sim_cluster::{
    call, client_of, cluster_on, eventually, get_with, id, key, local_copy, node_config, put,
    put_with, root, values, Steps,
};
use std::time::Duration;

const FOUR: [&str; 4] = ["n1", "n2", "n3", "n4"];
const THREE: [&str; 3] = ["n1", "n2", "n3"];

fn for_each_seed(name: &str, test: impl Fn(u64) -> turmoil::Result) {
    sim_cluster::for_each_seed("sim_handoff", name, test)
}

fn disks(n: usize) -> Vec<MemStorage> {
    (0..n).map(|_| MemStorage::new()).collect()
}

/// The first `n` nodes of `k`'s preference list in a cluster of `nodes`.
fn preference(k: &str, nodes: &[&'static str], n: usize) -> Vec<NodeId> {
    let layout = node_config(nodes[0], nodes).layout().unwrap();
    let partition = partition_of(key(k).position(), layout.partitions());
    layout.preference_list(partition).take(n).cloned().collect()
}

/// The partition of `k`.
fn partition(k: &str, nodes: &[&'static str]) -> u32 {
    let layout = node_config(nodes[0], nodes).layout().unwrap();
    partition_of(key(k).position(), layout.partitions())
}

/// Waits until every home of `k` has the same Merkle root for its partition.
async fn roots_agree(k: &str, nodes: &[&'static str]) {
    let p = partition(k, nodes);
    let homes = preference(k, nodes, 3);
    eventually(30, &format!("equal roots of partition {p}"), || {
        let homes = homes.clone();
        async move {
            let mut roots = Vec::new();
            for home in &homes {
                roots.push(root(&client_of(home.as_str()), p).await);
            }
            roots.windows(2).all(|w| w[0] == w[1]) && roots[0] != 0
        }
    })
    .await;
}

fn quorum(r: Option<usize>, w: Option<usize>, pw: Option<usize>) -> RequestQuorum {
    RequestQuorum { r, w, pw }
}

/// The hint `node` holds for `home` (merged with its own copy, if any).
async fn hint_at(node: &PeerClient, home: &str, k: &str) -> Option<Siblings> {
    let request = Request::ReplicaRead {
        key: key(k),
        hint_for: Some(id(home)),
    };
    match call(node, request).await {
        Response::ReplicaRead(Ok(found)) => found,
        other => panic!("hinted read answered {other:?}"),
    }
}

/// A quorum read through `coordinator`, retried while a replica just
/// reconnecting after a partition is still in connect backoff (a failed
/// read repairs nothing: it never met its quorum).
async fn read_after_heal(coordinator: &PeerClient, k: &str, r: usize) -> Option<Siblings> {
    for _ in 0..10 {
        match get_with(coordinator, k, quorum(Some(r), None, None)).await {
            Ok(found) => return found,
            Err(e) => eprintln!("read through {} not yet possible: {e}", coordinator.peer()),
        }
        tokio::time::sleep(RECONNECT_BACKOFF_CAP).await;
    }
    panic!(
        "the partition healed but {} cannot reach its replicas",
        coordinator.peer()
    );
}

#[test]
fn with_one_home_down_writes_of_w3_land_on_stand_ins_and_handoff_brings_it_back() {
    for_each_seed(
        "with_one_home_down_writes_of_w3_land_on_stand_ins_and_handoff_brings_it_back",
        |seed| {
            let mut sim = cluster_on(seed, &FOUR, disks(4), |_| {});
            let steps = Steps::default();
            let client_steps = steps.clone();
            sim.client("client", async move {
                // Keys n4 is a home of, written through n1.
                let keys: Vec<String> = (0..200)
                    .map(|i| format!("k{i}"))
                    .filter(|k| preference(k, &FOUR, 3).contains(&id("n4")))
                    .take(12)
                    .collect();
                let n1 = client_of("n1");
                put(&n1, "warm-up", VersionVector::new(), "x")
                    .await
                    .expect("warm-up put");
                client_steps.ask(1).await; // n4 crashes
                for k in &keys {
                    put_with(
                        &n1,
                        k,
                        VersionVector::new(),
                        &format!("v-{k}"),
                        quorum(None, Some(3), None),
                    )
                    .await
                    .expect("W = 3 with one home down: a stand-in takes the third copy");
                }
                // Each key's hint is on one of the nodes that is not its home.
                for k in &keys {
                    let homes = preference(k, &FOUR, 3);
                    let stand_in = FOUR.iter().find(|n| !homes.contains(&id(n))).unwrap();
                    let hint = hint_at(&client_of(stand_in), "n4", k).await;
                    assert_eq!(
                        hint.map(|h| values(&h)),
                        Some(vec![format!("v-{k}")]),
                        "{k} at {stand_in}"
                    );
                }
                // PW counts homes only: with n4 down, 3 homes cannot answer.
                let k = &keys[0];
                let refused = put_with(
                    &n1,
                    k,
                    VersionVector::new(),
                    "pw",
                    quorum(None, Some(2), Some(3)),
                )
                .await;
                assert!(refused.is_err(), "pw = 3 with a home down: {refused:?}");
                put_with(
                    &n1,
                    "pw-ok",
                    VersionVector::new(),
                    "pw",
                    quorum(None, Some(2), Some(2)),
                )
                .await
                .expect("pw = 2 with two homes up");
                client_steps.ask(2).await; // n4 returns
                let n4 = client_of("n4");
                for k in &keys {
                    let want = format!("v-{k}");
                    eventually(20, &format!("n4 receives {k} by handoff"), || {
                        let (n4, want) = (&n4, want.clone());
                        async move {
                            local_copy(n4, k)
                                .await
                                .is_some_and(|o| values(&o).contains(&want))
                        }
                    })
                    .await;
                }
                for k in &keys {
                    roots_agree(k, &FOUR).await;
                }
                for k in &keys {
                    let homes = preference(k, &FOUR, 3);
                    let stand_in = FOUR.iter().find(|n| !homes.contains(&id(n))).unwrap();
                    let stand_in = client_of(stand_in);
                    eventually(
                        5,
                        &format!("the stand-in lets go of the hint for {k}"),
                        || {
                            let stand_in = &stand_in;
                            async move { hint_at(stand_in, "n4", k).await.is_none() }
                        },
                    )
                    .await;
                }
                Ok(())
            });
            steps.crash_then_bounce(&mut sim, "n4")
        },
    );
}

#[test]
fn one_quorum_read_repairs_a_stale_replica() {
    for_each_seed("one_quorum_read_repairs_a_stale_replica", |seed| {
        let mut sim = cluster_on(seed, &THREE, disks(3), |_| {});
        sim.client("client", async {
            let (n1, n3) = (client_of("n1"), client_of("n3"));
            turmoil::partition("n3", "n1");
            turmoil::partition("n3", "n2");
            put(&n1, "stale-peer", VersionVector::new(), "a")
                .await
                .expect("put without n3");
            put(&n1, "stale-local", VersionVector::new(), "b")
                .await
                .expect("put without n3");
            turmoil::repair("n3", "n1");
            turmoil::repair("n3", "n2");
            assert_eq!(
                local_copy(&n3, "stale-peer").await,
                None,
                "n3 missed the writes"
            );
            // A read with R = 3 through n1: n3 is a stale peer.
            let found = read_after_heal(&n1, "stale-peer", 3).await;
            assert_eq!(found.map(|f| values(&f)), Some(vec!["a".to_string()]));
            let repaired = local_copy(&n3, "stale-peer").await;
            assert_eq!(
                repaired.map(|f| values(&f)),
                Some(vec!["a".to_string()]),
                "repaired before the answer (R + W > N)"
            );
            // A read with R = 2 through n3 itself: its own copy is stale.
            let found = read_after_heal(&n3, "stale-local", 2).await;
            assert_eq!(found.map(|f| values(&f)), Some(vec!["b".to_string()]));
            let repaired = local_copy(&n3, "stale-local").await;
            assert_eq!(repaired.map(|f| values(&f)), Some(vec!["b".to_string()]));
            Ok(())
        });
        sim.run()
    });
}

#[test]
fn a_value_a_quorum_read_returned_is_not_hidden_from_a_later_quorum_read() {
    for_each_seed(
        "a_value_a_quorum_read_returned_is_not_hidden_from_a_later_quorum_read",
        |seed| {
            let mut sim = cluster_on(seed, &THREE, disks(3), |_| {});
            sim.client("client", async {
                let (n1, n2) = (client_of("n1"), client_of("n2"));
                put(&n1, "warm-up", VersionVector::new(), "x")
                    .await
                    .expect("warm-up put");
                // A W = 1 write that only n1 took.
                turmoil::partition("n1", "n2");
                turmoil::partition("n1", "n3");
                put_with(
                    &n1,
                    "k",
                    VersionVector::new(),
                    "only-on-n1",
                    quorum(None, Some(1), None),
                )
                .await
                .expect("W = 1 on n1 alone");
                turmoil::repair("n1", "n2");
                turmoil::repair("n1", "n3");
                let first = read_after_heal(&n1, "k", 2).await;
                assert_eq!(
                    first.map(|f| values(&f)),
                    Some(vec!["only-on-n1".to_string()])
                );
                // Cut n1 off at once: the value must still be on a quorum.
                turmoil::partition("n1", "n2");
                turmoil::partition("n1", "n3");
                let later = get_with(&n2, "k", quorum(Some(2), None, None))
                    .await
                    .expect("later quorum read");
                assert_eq!(
                    later.map(|f| values(&f)),
                    Some(vec!["only-on-n1".to_string()]),
                    "a later quorum read without n1 still sees what the first returned"
                );
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn without_hints_anti_entropy_alone_brings_a_replica_up_to_date() {
    for_each_seed(
        "without_hints_anti_entropy_alone_brings_a_replica_up_to_date",
        |seed| {
            let mut sim = cluster_on(seed, &THREE, disks(3), |_| {});
            sim.client("client", async {
                let (n1, n3) = (client_of("n1"), client_of("n3"));
                turmoil::partition("n3", "n1");
                turmoil::partition("n3", "n2");
                let keys: Vec<String> = (0..20).map(|i| format!("ae-{i}")).collect();
                for k in &keys {
                    put(&n1, k, VersionVector::new(), &format!("v-{k}"))
                        .await
                        .expect("put without n3");
                }
                turmoil::repair("n3", "n1");
                turmoil::repair("n3", "n2");
                // No read touches the keys: only anti-entropy can repair n3.
                for k in &keys {
                    let want = format!("v-{k}");
                    eventually(60, &format!("anti-entropy repairs {k} on n3"), || {
                        let (n3, want) = (&n3, want.clone());
                        async move {
                            local_copy(n3, k)
                                .await
                                .is_some_and(|o| values(&o) == vec![want])
                        }
                    })
                    .await;
                }
                for k in &keys {
                    roots_agree(k, &THREE).await;
                }
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn a_corrupt_record_is_replaced_from_a_replica_by_anti_entropy() {
    for_each_seed(
        "a_corrupt_record_is_replaced_from_a_replica_by_anti_entropy",
        |seed| {
            let disks = disks(3);
            let n3_disk = disks[2].clone();
            let mut sim = cluster_on(seed, &THREE, disks, |_| {});
            sim.client("client", async move {
                let (n1, n3) = (client_of("n1"), client_of("n3"));
                put_with(
                    &n1,
                    "fragile",
                    VersionVector::new(),
                    "v",
                    quorum(None, Some(3), None),
                )
                .await
                .expect("put on every home");
                let storage_key = key("fragile").storage_key();
                assert!(n3_disk.corrupt(ringkv_storage::Keyspace::Data, &storage_key));
                let read = Request::ReplicaRead {
                    key: key("fragile"),
                    hint_for: None,
                };
                assert!(
                    matches!(call(&n3, read).await, Response::ReplicaRead(Err(_))),
                    "the damaged record is never served"
                );
                eventually(110, "anti-entropy replaces the corrupt record", || {
                    let n3 = &n3;
                    async move {
                        let read = Request::ReplicaRead {
                            key: key("fragile"),
                            hint_for: None,
                        };
                        match call(n3, read).await {
                            Response::ReplicaRead(Ok(Some(found))) => {
                                values(&found) == vec!["v".to_string()]
                            }
                            _ => false,
                        }
                    }
                })
                .await;
                roots_agree("fragile", &THREE).await;
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn past_a_hint_limit_writes_still_succeed_and_anti_entropy_repairs_what_was_skipped() {
    for_each_seed(
        "past_a_hint_limit_writes_still_succeed_and_anti_entropy_repairs_what_was_skipped",
        |seed| {
            let mut sim = cluster_on(seed, &FOUR, disks(4), |c| c.hints.max_hints_per_target = 2);
            let steps = Steps::default();
            let client_steps = steps.clone();
            sim.client("client", async move {
                // Keys whose homes are n1, n3 and n4, so n2 stands in for n4.
                let keys: Vec<String> = (0..400)
                    .map(|i| format!("h{i}"))
                    .filter(|k| {
                        let homes = preference(k, &FOUR, 3);
                        homes.contains(&id("n4")) && !homes.contains(&id("n2"))
                    })
                    .take(7)
                    .collect();
                assert_eq!(keys.len(), 7);
                let (probe, keys) = keys.split_last().unwrap();
                let keys = keys.to_vec();
                let n1 = client_of("n1");
                client_steps.ask(1).await; // n4 crashes
                                           // Let n1 judge n4 down (its connection attempt fails), so
                                           // every later write sends n2 a hint at once: W = 2 does not
                                           // wait for a stand-in.
                put(&n1, probe, VersionVector::new(), "x")
                    .await
                    .expect("put");
                tokio::time::sleep(Duration::from_secs(2)).await;
                for k in &keys {
                    put(&n1, k, VersionVector::new(), &format!("v-{k}"))
                        .await
                        .expect("W = 2 from real replicas: the write succeeds, hint or not");
                }
                let n2 = client_of("n2");
                let mut hinted = 0;
                for k in &keys {
                    hinted += usize::from(hint_at(&n2, "n4", k).await.is_some());
                }
                assert_eq!(hinted, 2, "n2 keeps two hints for n4 and skips the rest");
                client_steps.ask(2).await; // n4 returns
                let n4 = client_of("n4");
                for k in &keys {
                    let want = format!("v-{k}");
                    eventually(
                        60,
                        &format!("{k} reaches n4 (hint or anti-entropy)"),
                        || {
                            let (n4, want) = (&n4, want.clone());
                            async move {
                                local_copy(n4, k)
                                    .await
                                    .is_some_and(|o| values(&o) == vec![want])
                            }
                        },
                    )
                    .await;
                }
                Ok(())
            });
            steps.crash_then_bounce(&mut sim, "n4")
        },
    );
}

#[test]
fn hints_for_a_node_that_is_not_a_member_are_dropped() {
    for_each_seed(
        "hints_for_a_node_that_is_not_a_member_are_dropped",
        |seed| {
            let disks = disks(3);
            let n1_disk = disks[0].clone();
            // A hint left for "ghost", a node that is no longer a member.
            let mut object = Siblings::new();
            object.update(&VersionVector::new(), &id("n1"), Some("v".into()), 1);
            let record = ringkv_core::hints::HintRecord {
                stored_at_ms: 1,
                object,
            };
            let mut batch = ringkv_storage::WriteBatch::new();
            let hint = ringkv_core::hints::hint_key(&id("ghost"), &key("k").storage_key());
            batch.put(
                ringkv_storage::Keyspace::Hints,
                hint,
                record.encode().unwrap(),
            );
            ringkv_storage::Storage::write(&n1_disk, batch).unwrap();
            let mut sim = cluster_on(seed, &THREE, disks, |_| {});
            sim.client("client", async move {
                let held = || {
                    let scan = ringkv_storage::Storage::scan(
                        &n1_disk,
                        ringkv_storage::Keyspace::Hints,
                        b"",
                        None,
                        10,
                    );
                    scan.unwrap().len()
                };
                assert_eq!(held(), 1);
                eventually(10, "the hint for a non-member is dropped", || {
                    let n = held();
                    async move { n == 0 }
                })
                .await;
                Ok(())
            });
            sim.run()
        },
    );
}
