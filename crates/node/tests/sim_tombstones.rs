//! Simulation: deletes stay deleted and are collected, TTLs expire (D4, D5).
//!
//! Real nodes on turmoil's network, as in `sim.rs`, with the hint age limit,
//! the tombstone grace period and the collector's interval cut to seconds:
//!
//! - a delete made while one home is cut off reaches it after the partition
//!   heals (by anti-entropy, or by a hint when a stand-in took it), then the
//!   key is reaped on every node and never comes back, through any path;
//! - after a key is reaped, a client still holding a context from before the
//!   delete cannot supersede a new write (no dot is ever reused: the
//!   "doomstone" of riak_kv#679);
//! - a value put with a TTL reads as absent through every node once it
//!   expires, and is then reaped like a delete.
//!
//! Replay a seed with `RINGKV_SIM_SEED=<seed> cargo test -p ringkv-node --test sim_tombstones <test>`.

#[allow(dead_code)]
mod sim_cluster;
mod sim_net;

use bytes::Bytes;
use ringkv_core::protocol::{ClientRequest, ClientResponse, Request, Response};
use ringkv_core::replication::RequestQuorum;
use ringkv_core::version_vector::VersionVector;
use ringkv_node::rpc::backoff::RECONNECT_BACKOFF_CAP;
use ringkv_node::rpc::PeerClient;
use ringkv_node::NodeConfig;
use ringkv_storage::MemStorage;
use sim_cluster::{
    call, client_of, cluster_on, coordinate, eventually, get_with, id, key, local_copy, put,
    put_with, values,
};
use std::time::Duration;

const THREE: [&str; 3] = ["n1", "n2", "n3"];
const FOUR: [&str; 4] = ["n1", "n2", "n3", "n4"];

fn for_each_seed(name: &str, test: impl Fn(u64) -> turmoil::Result) {
    sim_cluster::for_each_seed("sim_tombstones", name, test)
}

fn disks(n: usize) -> Vec<MemStorage> {
    (0..n).map(|_| MemStorage::new()).collect()
}

/// Hints live 1 s, deletes are kept 2 s, the collector runs every 200 ms.
fn fast_gc(config: &mut NodeConfig) {
    config.hints.max_age_ms = 1_000;
    config.tombstone_grace_ms = 2_000;
    config.gc_interval_ms = 200;
}

fn quorum(r: Option<usize>, w: Option<usize>) -> RequestQuorum {
    RequestQuorum { r, w, pw: None }
}

async fn delete(node: &PeerClient, k: &str, context: VersionVector, w: Option<usize>) {
    let request = ClientRequest::Put {
        key: key(k),
        context,
        value: None,
        quorum: quorum(None, w),
        ttl_secs: None,
    };
    match coordinate(node, request).await {
        ClientResponse::Put(Ok(_)) => {}
        other => panic!("delete answered {other:?}"),
    }
}

/// Whether no node holds any copy of `k`, nor a hint for it.
async fn gone_everywhere(nodes: &[&str], k: &str) -> bool {
    for node in nodes {
        let client = client_of(node);
        if local_copy(&client, k).await.is_some() {
            return false;
        }
        for home in nodes {
            let hinted = Request::ReplicaRead {
                key: key(k),
                hint_for: Some(id(home)),
            };
            if !matches!(call(&client, hinted).await, Response::ReplicaRead(Ok(None))) {
                return false;
            }
        }
    }
    true
}

/// A quorum read of `k` through every node, retried past connect backoff
/// after a partition heals; panics if any finds a live value.
async fn reads_absent_everywhere(nodes: &[&str], k: &str) {
    for node in nodes {
        let client = client_of(node);
        let mut found = None;
        for _ in 0..4 {
            match get_with(&client, k, quorum(Some(3), None)).await {
                Ok(answer) => {
                    found = Some(answer);
                    break;
                }
                Err(_) => tokio::time::sleep(RECONNECT_BACKOFF_CAP).await,
            }
        }
        let found = found.unwrap_or_else(|| panic!("no quorum read of {k} through {node}"));
        assert!(
            found.as_ref().is_none_or(|o| o.is_deleted()),
            "{k} came back through {node}: {found:?}"
        );
    }
}

#[test]
fn a_delete_made_during_a_partition_is_collected_and_never_comes_back() {
    for_each_seed(
        "a_delete_made_during_a_partition_is_collected_and_never_comes_back",
        |seed| {
            let mut sim = cluster_on(seed, &THREE, disks(3), fast_gc);
            sim.client("client", async {
                let n1 = client_of("n1");
                let written = put_with(
                    &n1,
                    "doomed",
                    VersionVector::new(),
                    "v",
                    quorum(None, Some(3)),
                )
                .await
                .expect("put on every home");
                turmoil::partition("n3", "n1");
                turmoil::partition("n3", "n2");
                delete(&n1, "doomed", written, None).await;
                assert!(
                    local_copy(&client_of("n3"), "doomed")
                        .await
                        .is_some_and(|o| !o.is_deleted()),
                    "n3 still holds the value"
                );
                tokio::time::sleep(Duration::from_secs(3)).await;
                assert!(
                    local_copy(&n1, "doomed").await.is_some(),
                    "not reaped while a home is cut off"
                );
                turmoil::repair("n3", "n1");
                turmoil::repair("n3", "n2");
                eventually(60, "the delete is reaped on every node", || {
                    gone_everywhere(&THREE, "doomed")
                })
                .await;
                // Anti-entropy, read repair and hints run on: nothing returns.
                tokio::time::sleep(Duration::from_secs(3)).await;
                reads_absent_everywhere(&THREE, "doomed").await;
                assert!(gone_everywhere(&THREE, "doomed").await, "the key came back");
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn a_delete_a_stand_in_held_as_a_hint_is_collected_after_handoff() {
    for_each_seed(
        "a_delete_a_stand_in_held_as_a_hint_is_collected_after_handoff",
        |seed| {
            let mut sim = cluster_on(seed, &FOUR, disks(4), fast_gc);
            sim.client("client", async {
                let n1 = client_of("n1");
                // A key with n4 among its homes, written to all three.
                let layout = sim_cluster::node_config("n1", &FOUR).layout().unwrap();
                let k = (0..200)
                    .map(|i| format!("d{i}"))
                    .find(|k| {
                        let p = ringkv_core::layout::partition_of(
                            key(k).position(),
                            layout.partitions(),
                        );
                        let homes: Vec<_> = layout.preference_list(p).take(3).cloned().collect();
                        homes.contains(&id("n4")) && homes.contains(&id("n1"))
                    })
                    .expect("such a key");
                let written = put_with(&n1, &k, VersionVector::new(), "v", quorum(None, Some(3)))
                    .await
                    .expect("put");
                for other in ["n1", "n2", "n3"] {
                    turmoil::partition("n4", other);
                }
                // W = 3 with n4 cut off: a stand-in takes the delete as a hint.
                delete(&n1, &k, written, Some(3)).await;
                for other in ["n1", "n2", "n3"] {
                    turmoil::repair("n4", other);
                }
                eventually(60, "the delete is reaped on every node", || {
                    gone_everywhere(&FOUR, &k)
                })
                .await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                assert!(gone_everywhere(&FOUR, &k).await, "the key came back");
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn after_a_reap_a_pre_delete_context_cannot_supersede_a_new_write() {
    for_each_seed(
        "after_a_reap_a_pre_delete_context_cannot_supersede_a_new_write",
        |seed| {
            let mut sim = cluster_on(seed, &THREE, disks(3), fast_gc);
            sim.client("client", async {
                let (n1, n2) = (client_of("n1"), client_of("n2"));
                let old_context = put_with(
                    &n1,
                    "reused",
                    VersionVector::new(),
                    "v1",
                    quorum(None, Some(3)),
                )
                .await
                .expect("put");
                delete(&n1, "reused", old_context.clone(), Some(3)).await;
                eventually(30, "the delete is reaped", || {
                    gone_everywhere(&THREE, "reused")
                })
                .await;
                put(&n1, "reused", VersionVector::new(), "v2")
                    .await
                    .expect("a new write after the reap");
                // A client that read before the delete writes late, with its old context.
                put(&n2, "reused", old_context, "late")
                    .await
                    .expect("late write");
                let found = get_with(&n1, "reused", quorum(Some(3), None))
                    .await
                    .expect("get")
                    .expect("present");
                assert_eq!(
                    values(&found),
                    vec!["late".to_string(), "v2".to_string()],
                    "v2 survives: the old context never saw it"
                );
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn an_expired_value_reads_as_absent_through_every_node_and_is_then_collected() {
    for_each_seed(
        "an_expired_value_reads_as_absent_through_every_node_and_is_then_collected",
        |seed| {
            let mut sim = cluster_on(seed, &THREE, disks(3), fast_gc);
            sim.client("client", async {
                let n1 = client_of("n1");
                let request = ClientRequest::Put {
                    key: key("session"),
                    context: VersionVector::new(),
                    value: Some(Bytes::from_static(b"token")),
                    quorum: quorum(None, Some(3)),
                    ttl_secs: Some(1),
                };
                assert!(matches!(
                    coordinate(&n1, request).await,
                    ClientResponse::Put(Ok(_))
                ));
                for node in THREE {
                    let found = get_with(&client_of(node), "session", quorum(Some(1), None))
                        .await
                        .expect("get");
                    assert_eq!(
                        found.map(|f| values(&f)),
                        Some(vec!["token".to_string()]),
                        "live through {node}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(1_100)).await;
                reads_absent_everywhere(&THREE, "session").await;
                eventually(30, "the expired key is reaped", || {
                    gone_everywhere(&THREE, "session")
                })
                .await;
                Ok(())
            });
            sim.run()
        },
    );
}
