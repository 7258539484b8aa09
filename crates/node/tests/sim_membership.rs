//! Simulation: layout changes under a write load lose no acknowledged write
//! (P4).
//!
//! Each test runs real nodes on turmoil with a client writing all along, then
//! waits until the change is complete (one active layout version again, seen
//! from every node) and checks, for every write the client saw
//! acknowledged:
//!
//! - a quorum read (R = 2) through a node finds it, and
//! - at least W = 2 of the key's homes in the final layout hold it in
//!   their own storage (so the new replicas got it by streaming or by the
//!   writes sent to every active version, not only through read repair).
//!
//! The changes: a fourth node joins through a seed (about a quarter of the
//! replica slots move to it); a node is decommissioned; and a join meets a
//! partition that cuts one node off while data moves.
//!
//! Replay a seed with `RINGKV_SIM_SEED=<seed> cargo test -p ringkv-node --test sim_membership <test>`.

#[allow(dead_code)]
mod sim_cluster;
mod sim_net;

use ringkv_core::layout::{compute_layout, partition_of, Layout, LayoutParams, Member};
use ringkv_core::layout_history::{LayoutChange, NodeState};
use ringkv_core::protocol::{Request, Response};
use ringkv_core::replication::Replication;
use ringkv_core::version_vector::VersionVector;
use ringkv_node::node::NodeState as Node;
use ringkv_node::NodeConfig;
use ringkv_storage::MemStorage;
use sim_cluster::{
    call, client_of, cluster_with, eventually, get, host, id, key, local_copy, put, values,
    OnStartOf, Steps,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const Q: u32 = 16;

fn for_each_seed(name: &str, test: impl Fn(u64) -> turmoil::Result) {
    sim_cluster::for_each_seed("sim_membership", name, test)
}

fn configure(config: &mut NodeConfig) {
    config.partitions = Q;
    config.replication = Replication { n: 3, r: 2, w: 2 };
    config.gossip_interval_ms = 300;
    if config.peers.is_empty() {
        // Not a founder: join through n1.
        config.seeds = vec![format!("n1:{}", sim_cluster::RPC_PORT)];
    }
}

/// The running nodes, by name, as each (re)started.
type Registry = Arc<Mutex<BTreeMap<&'static str, Arc<Node>>>>;

/// The newest layout version each life of each node started with.
type StartedWith = Arc<Mutex<BTreeMap<&'static str, Vec<u64>>>>;

fn registry() -> (Registry, OnStartOf) {
    let (nodes, _, on_start) = registry_with_starts();
    (nodes, on_start)
}

fn registry_with_starts() -> (Registry, StartedWith, OnStartOf) {
    let nodes: Registry = Arc::default();
    let starts: StartedWith = Arc::default();
    let (hook, seen) = (nodes.clone(), starts.clone());
    let on_start: OnStartOf = Arc::new(move |name| {
        let (nodes, starts) = (hook.clone(), seen.clone());
        Some(Box::new(move |state: &Arc<Node>| {
            let version = state.cluster.read(|_, h| h.newest().stamp.version);
            starts
                .lock()
                .unwrap()
                .entry(name)
                .or_default()
                .push(version);
            nodes.lock().unwrap().insert(name, state.clone());
        }))
    });
    (nodes, starts, on_start)
}

fn node(nodes: &Registry, name: &str) -> Option<Arc<Node>> {
    nodes.lock().unwrap().get(name).cloned()
}

/// Whether `observer` sees one active layout version in which `member`
/// is in `state`.
fn settled(nodes: &Registry, observer: &str, member: &str, state: NodeState) -> bool {
    node(nodes, observer).is_some_and(|n| {
        n.cluster
            .read(|_, h| !h.in_transition() && h.state_of(&id(member)) == state)
    })
}

/// Waits up to `seconds` until every one of `observers` sees `member`
/// in `state` with one active version; panics with what each sees.
async fn wait_settled(
    nodes: &Registry,
    observers: &[&str],
    member: &str,
    state: NodeState,
    seconds: u64,
) {
    for _ in 0..seconds * 10 {
        if observers.iter().all(|o| settled(nodes, o, member, state)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen: Vec<String> = observers
        .iter()
        .map(|o| match node(nodes, o) {
            None => format!("{o}: not running"),
            Some(n) => n.cluster.read(|m, h| {
                let progress: Vec<String> = m
                    .entries()
                    .values()
                    .map(|e| {
                        let v = |s: Option<ringkv_core::layout_history::LayoutStamp>| {
                            s.map_or(0, |s| s.version)
                        };
                        format!(
                            "{} acked {} synced {} transfer {:?}",
                            e.record.id,
                            v(e.record.acked),
                            v(e.record.synced),
                            e.record.transfer
                        )
                    })
                    .collect();
                format!(
                    "{o}: versions {:?}, {member} {:?}; {progress:?}",
                    h.stamps().iter().map(|s| s.version).collect::<Vec<_>>(),
                    h.state_of(&id(member))
                )
            }),
        })
        .collect();
    panic!(
        "not within {seconds} s: {member} {state:?} everywhere:\n{}",
        seen.join("\n")
    );
}

/// The layout `members` get from the same function the nodes run.
fn layout_of(members: &[&str], previous: Option<&Layout>) -> Layout {
    let members: Vec<Member> = members
        .iter()
        .map(|m| Member {
            id: id(m),
            capacity: 1,
            zone: None,
        })
        .collect();
    let params = LayoutParams {
        partitions: Q,
        replication: 3,
    };
    compute_layout(&members, params, previous).unwrap()
}

/// The writes a client saw acknowledged, by key.
type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// Blind puts of `count` new keys through `through` (round robin), one
/// every 50 ms; records the acknowledged ones.
async fn write_load(acked: &Acked, prefix: &str, count: usize, through: &[&str]) {
    for i in 0..count {
        let (k, v) = (format!("{prefix}-{i}"), format!("v{i}"));
        let coordinator = client_of(through[i % through.len()]);
        if put(&coordinator, &k, VersionVector::new(), &v)
            .await
            .is_ok()
        {
            acked.lock().unwrap().insert(k, v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every acknowledged write: readable with R = 2 through `reader`, and held
/// by at least 2 of its homes in `layout`.
async fn check_every_write(acked: &Acked, reader: &str, layout: &Layout) {
    let writes = acked.lock().unwrap().clone();
    assert!(
        writes.len() > 50,
        "the load was acknowledged: {}",
        writes.len()
    );
    for (k, v) in &writes {
        let found = get(&client_of(reader), k)
            .await
            .unwrap_or_else(|e| panic!("read {k}: {e}"));
        let found = found.map(|f| values(&f)).unwrap_or_default();
        assert!(found.contains(v), "{k}: acknowledged {v}, read {found:?}");
        let p = partition_of(key(k).position(), Q);
        let mut holders = Vec::new();
        for home in layout.replicas(p, 3) {
            let copy = local_copy(&client_of(home.as_str()), k).await;
            if copy.is_some_and(|c| values(&c).contains(v)) {
                holders.push(home.to_string());
            }
        }
        assert!(
            holders.len() >= 2,
            "{k}: only {holders:?} of its homes hold it"
        );
    }
}

#[test]
fn a_fourth_node_joins_during_a_write_load_and_every_acknowledged_write_stays() {
    for_each_seed(
        "a_fourth_node_joins_during_a_write_load_and_every_acknowledged_write_stays",
        |seed| {
            let (nodes, on_start) = registry();
            let founders: &'static [&'static str] = &["n1", "n2", "n3"];
            let disks: Vec<MemStorage> = (0..3).map(|_| MemStorage::new()).collect();
            let mut sim = cluster_with(seed, founders, disks, configure, on_start.clone());
            let steps = Steps::default();
            let acked: Acked = Arc::default();
            let (s, a, n) = (steps.clone(), acked.clone(), nodes.clone());
            sim.client("client", async move {
                write_load(&a, "before", 30, &["n1", "n2", "n3"]).await;
                s.ask(1).await; // n4 starts and joins through n1
                write_load(&a, "during", 100, &["n1", "n2", "n3"]).await;
                let all = ["n1", "n2", "n3", "n4"];
                wait_settled(&n, &all, "n4", NodeState::Normal, 60).await;
                let v1 = layout_of(&["n1", "n2", "n3"], None);
                let v2 = layout_of(&["n1", "n2", "n3", "n4"], Some(&v1));
                let now = node(&n, "n2")
                    .unwrap()
                    .cluster
                    .read(|_, h| h.newest().stamp);
                assert_eq!((now.version, now.digest), (2, v2.digest()));
                let moved = v2.moved_slots(&v1);
                assert_eq!(moved, (Q * 3 / 4) as usize, "a quarter of the 48 slots");
                check_every_write(&a, "n4", &v2).await;
                Ok(())
            });
            steps.run(&mut sim, |sim, _| {
                host(
                    sim,
                    "n4",
                    founders,
                    MemStorage::new(),
                    configure,
                    on_start.clone(),
                )
            })
        },
    );
}

/// Also: a node restarted afterwards comes back with the layout it
/// persisted (version 2), not the one its `--peer` flags would found.
#[test]
fn a_decommissioned_node_streams_its_data_away_under_load_and_leaves() {
    for_each_seed(
        "a_decommissioned_node_streams_its_data_away_under_load_and_leaves",
        |seed| {
            let (nodes, starts, on_start) = registry_with_starts();
            let founders: &'static [&'static str] = &["n1", "n2", "n3", "n4"];
            let disks: Vec<MemStorage> = (0..4).map(|_| MemStorage::new()).collect();
            let mut sim = cluster_with(seed, founders, disks, configure, on_start);
            let steps = Steps::default();
            let acked: Acked = Arc::default();
            let (s, a, n, st) = (steps.clone(), acked.clone(), nodes.clone(), starts.clone());
            sim.client("client", async move {
                write_load(&a, "before", 40, &["n1", "n2", "n3", "n4"]).await;
                let change = Request::ChangeLayout(LayoutChange::Decommission(id("n1")));
                match call(&client_of("n2"), change).await {
                    Response::ChangeLayout(Ok(stamp)) => assert_eq!(stamp.version, 2),
                    other => panic!("decommission: {other:?}"),
                }
                write_load(&a, "during", 100, &["n2", "n3", "n4"]).await;
                wait_settled(&n, &["n2", "n3", "n4"], "n1", NodeState::Removed, 60).await;
                let v1 = layout_of(founders, None);
                let v2 = layout_of(&["n2", "n3", "n4"], Some(&v1));
                check_every_write(&a, "n3", &v2).await;
                s.ask(1).await; // n2 crashes
                s.ask(2).await; // and restarts
                eventually(20, "n2 restarted", || {
                    let st = st.clone();
                    async move { st.lock().unwrap().get("n2").is_some_and(|l| l.len() == 2) }
                })
                .await;
                assert_eq!(
                    st.lock().unwrap()["n2"],
                    vec![1, 2],
                    "lives of n2 started with"
                );
                wait_settled(&n, &["n2"], "n1", NodeState::Removed, 10).await;
                check_every_write(&a, "n2", &v2).await;
                Ok(())
            });
            steps.crash_then_bounce(&mut sim, "n2")
        },
    );
}

#[test]
fn a_dead_node_is_removed_and_its_replicas_are_rebuilt_from_the_others() {
    for_each_seed(
        "a_dead_node_is_removed_and_its_replicas_are_rebuilt_from_the_others",
        |seed| {
            let (nodes, on_start) = registry();
            let founders: &'static [&'static str] = &["n1", "n2", "n3", "n4"];
            let disks: Vec<MemStorage> = (0..4).map(|_| MemStorage::new()).collect();
            let mut sim = cluster_with(seed, founders, disks, configure, on_start);
            let steps = Steps::default();
            let acked: Acked = Arc::default();
            let (s, a, n) = (steps.clone(), acked.clone(), nodes.clone());
            sim.client("client", async move {
                write_load(&a, "before", 40, &["n1", "n2", "n3", "n4"]).await;
                s.ask(1).await; // n4 dies for good
                let change = Request::ChangeLayout(LayoutChange::Remove(id("n4")));
                match call(&client_of("n1"), change).await {
                    Response::ChangeLayout(Ok(stamp)) => assert_eq!(stamp.version, 2),
                    other => panic!("remove: {other:?}"),
                }
                write_load(&a, "after", 60, &["n1", "n2", "n3"]).await;
                wait_settled(&n, &["n1", "n2", "n3"], "n4", NodeState::Removed, 60).await;
                let v1 = layout_of(founders, None);
                let v2 = layout_of(&["n1", "n2", "n3"], Some(&v1));
                check_every_write(&a, "n1", &v2).await;
                Ok(())
            });
            steps.run(&mut sim, |sim, _| sim.crash("n4"))
        },
    );
}

#[test]
fn a_partition_during_a_join_loses_nothing_once_healed() {
    for_each_seed(
        "a_partition_during_a_join_loses_nothing_once_healed",
        |seed| {
            let (nodes, on_start) = registry();
            let founders: &'static [&'static str] = &["n1", "n2", "n3", "n4"];
            let disks: Vec<MemStorage> = (0..4).map(|_| MemStorage::new()).collect();
            let mut sim = cluster_with(seed, founders, disks, configure, on_start.clone());
            let steps = Steps::default();
            let acked: Acked = Arc::default();
            let (s, a, n) = (steps.clone(), acked.clone(), nodes.clone());
            sim.client("client", async move {
                write_load(&a, "before", 40, &["n1", "n2", "n3", "n4"]).await;
                s.ask(1).await; // n5 starts and joins through n1
                eventually(20, "n1 applied the join", || {
                    let n = n.clone();
                    async move {
                        node(&n, "n1").is_some_and(|x| x.cluster.read(|_, h| h.in_transition()))
                    }
                })
                .await;
                // n3 is cut off while data moves; writes go on.
                for other in ["n1", "n2", "n4", "n5", "client"] {
                    turmoil::partition("n3", other);
                }
                write_load(&a, "cut", 60, &["n1", "n2", "n4"]).await;
                for other in ["n1", "n2", "n4", "n5", "client"] {
                    turmoil::repair("n3", other);
                }
                write_load(&a, "healed", 40, &["n1", "n2", "n3", "n4"]).await;
                let all = ["n1", "n2", "n3", "n4", "n5"];
                wait_settled(&n, &all, "n5", NodeState::Normal, 90).await;
                let v1 = layout_of(founders, None);
                let v2 = layout_of(&["n1", "n2", "n3", "n4", "n5"], Some(&v1));
                check_every_write(&a, "n2", &v2).await;
                Ok(())
            });
            steps.run(&mut sim, |sim, _| {
                host(
                    sim,
                    "n5",
                    founders,
                    MemStorage::new(),
                    configure,
                    on_start.clone(),
                )
            })
        },
    );
}

/// Two operators decommission different nodes through different nodes at
/// the same moment: both make a version 2, gossip keeps one of them
/// everywhere, and the node whose change lost applies it again on top, so
/// in the end both nodes have left and nothing acknowledged is lost.
#[test]
fn concurrent_changes_through_two_nodes_both_take_effect() {
    for_each_seed(
        "concurrent_changes_through_two_nodes_both_take_effect",
        |seed| {
            let (nodes, on_start) = registry();
            let founders: &'static [&'static str] = &["n1", "n2", "n3", "n4", "n5"];
            let disks: Vec<MemStorage> = (0..5).map(|_| MemStorage::new()).collect();
            let mut sim = cluster_with(seed, founders, disks, configure, on_start);
            let acked: Acked = Arc::default();
            let (a, n) = (acked.clone(), nodes.clone());
            sim.client("client", async move {
                write_load(&a, "before", 60, &["n1", "n2", "n3"]).await;
                let first = Request::ChangeLayout(LayoutChange::Decommission(id("n4")));
                let second = Request::ChangeLayout(LayoutChange::Decommission(id("n5")));
                let (c1, c2) = (client_of("n1"), client_of("n2"));
                let (r1, r2) = tokio::join!(call(&c1, first), call(&c2, second));
                for r in [r1, r2] {
                    match r {
                        Response::ChangeLayout(Ok(stamp)) => assert_eq!(stamp.version, 2),
                        other => panic!("decommission: {other:?}"),
                    }
                }
                write_load(&a, "during", 60, &["n1", "n2", "n3"]).await;
                let rest = ["n1", "n2", "n3"];
                wait_settled(&n, &rest, "n4", NodeState::Removed, 90).await;
                wait_settled(&n, &rest, "n5", NodeState::Removed, 90).await;
                let newest = node(&n, "n1")
                    .unwrap()
                    .cluster
                    .read(|_, h| h.newest().stamp);
                assert_eq!(newest.version, 3, "the losing change was applied again");
                let final_layout = node(&n, "n1")
                    .unwrap()
                    .cluster
                    .read(|_, h| h.newest().layout.clone());
                assert_eq!(
                    final_layout
                        .members()
                        .iter()
                        .map(|m| m.id.to_string())
                        .collect::<Vec<_>>(),
                    ["n1", "n2", "n3"]
                );
                check_every_write(&a, "n3", &final_layout).await;
                Ok(())
            });
            sim.run()
        },
    );
}
