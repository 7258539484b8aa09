//! End-to-end tests of staying writable and converging through a node
//! failure (issue 7), on real `ringkv serve` processes on loopback:
//!
//! - kill -9 one node of three while a client writes, restart it, and all
//!   replicas converge. With three nodes and N = 3 there is no fallback to
//!   hold hints, so anti-entropy is what brings the node back;
//! - with four nodes and N = 3, one killed, `?w=3` writes still succeed
//!   (fallbacks take them as hints); after it restarts, hinted handoff alone
//!   (anti-entropy is off) brings every replica to the same data and the
//!   hints pending drop to zero;
//! - `?pw=` counts only real replicas: with a home of the key killed,
//!   `?w=3&pw=3` is 503 while `?pw=2` and `?w=3&pw=2` succeed;
//! - `?local=true` answers from the node's own storage: 404 on a node that
//!   is no replica of the key, the value on each replica; a PUT with it is
//!   400.
//!
//! Every wait is a bounded poll; replicas are inspected with `?local=true`.

mod common;

use common::{eventually, http, wait_healthy, Cluster, Node};
use ringkv_core::key::ObjectKey;
use ringkv_core::NodeId;
use ringkv_node::{NodeConfig, PeerConfig};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long replicas may take to converge after a restart.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);

/// Indices into `nodes` of the N = 3 replicas (homes) of `bucket/key`,
/// computed as every node computes them: the layout of the members n1..nK
/// (capacity 1, no zone) with `partitions` partitions.
fn homes(nodes: &[Node], partitions: u32, bucket: &str, key: &str) -> Vec<usize> {
    let id = |i: usize| NodeId::new(&format!("n{}", i + 1)).unwrap();
    let mut config = NodeConfig::new(
        id(0),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:1".into(),
        "unused".into(),
    );
    config.partitions = partitions;
    config.peers = (1..nodes.len())
        .map(|i| PeerConfig {
            id: id(i),
            rpc: "127.0.0.1:1".into(),
            capacity: 1,
            zone: None,
        })
        .collect();
    let layout = config.layout().unwrap();
    let key = ObjectKey::new(bucket, key.as_bytes().to_vec().into(), 1024).unwrap();
    let partition = layout.partition_of(key.position());
    let mut out: Vec<usize> = layout
        .replicas(partition, 3)
        .map(|home| nodes.iter().position(|n| n.id == home.as_str()).unwrap())
        .collect();
    out.sort();
    out
}

/// A replica's own copy: `(status, body)` of `GET ?local=true`.
fn local(node: &Node, bucket: &str, key: &str) -> (u16, String) {
    let r = http(
        node.http,
        "GET",
        &format!("/v1/kv/{bucket}/{key}?local=true"),
        &[],
        b"",
    )
    .unwrap();
    (r.status, r.text())
}

/// The sum of every series of counter `name` with `target="<target>"`, over
/// all running nodes' `/metrics`.
fn counter_for(nodes: &[Node], name: &str, target: &str) -> u64 {
    let series = format!("{name}{{target=\"{target}\"}} ");
    nodes
        .iter()
        .filter(|n| n.child.is_some())
        .map(|n| http(n.http, "GET", "/metrics", &[], b"").unwrap().text())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.strip_prefix(&series).map(|v| v.parse::<u64>().unwrap()))
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Hints each running node's `GET /v1/cluster` says it holds for `target`.
fn hints_pending_for(nodes: &[Node], target: &str) -> Vec<u64> {
    nodes
        .iter()
        .filter(|n| n.child.is_some())
        .map(|n| {
            let cluster = http(n.http, "GET", "/v1/cluster", &[], b"").unwrap().json();
            let entry = cluster["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["id"] == target)
                .unwrap_or_else(|| panic!("{target} missing from {cluster}"))
                .clone();
            entry["hints_pending"].as_u64().unwrap()
        })
        .collect()
}

fn put(node: &Node, bucket: &str, key: &str, query: &str, value: &str) -> common::Reply {
    http(
        node.http,
        "PUT",
        &format!("/v1/kv/{bucket}/{key}{query}"),
        &[],
        value.as_bytes(),
    )
    .unwrap()
}

#[test]
fn kill_9_one_of_three_while_writing_then_restart_and_all_replicas_converge() {
    // Only `[anti_entropy]` matters in this file: the flags give the node's
    // id, addresses and data dir. A short re-check pause (default 5 s, which
    // no flag sets) keeps the test short.
    let conf = tempfile::tempdir().unwrap();
    let toml = conf.path().join("ae.toml");
    std::fs::write(
        &toml,
        "id = \"unused\"\nhttp = \"127.0.0.1:1\"\nrpc = \"127.0.0.1:1\"\ndata_dir = \"unused\"\n\
         [anti_entropy]\nrecheck_after_ms = 200\n",
    )
    .unwrap();
    let config = format!("--config={}", toml.display());
    let mut c = Cluster::start(
        3,
        &[
            &config,
            "--partitions=16",
            "--anti-entropy-interval-ms=200",
            "--handoff-interval-ms=200",
        ],
    );
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.http).collect();
    // What the client knows: acknowledged writes, and writes whose outcome
    // is unknown (an error or no answer: they may or may not have landed).
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let unknown = Arc::new(Mutex::new(Vec::<String>::new()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (acked, unknown, attempts) = (acked.clone(), unknown.clone(), attempts.clone());
        std::thread::spawn(move || {
            for i in 0..2000usize {
                if acked.lock().unwrap().len() >= 200 {
                    return;
                }
                attempts.store(i + 1, Ordering::SeqCst);
                let (key, value) = (format!("k{i}"), format!("v{i}"));
                // Coordinators in turn, n3 included (refused while it is down).
                let port = ports[i % ports.len()];
                let path = format!("/v1/kv/crash/{key}");
                match http(port, "PUT", &path, &[], value.as_bytes()) {
                    Ok(r) if r.status == 204 => acked.lock().unwrap().push((key, value)),
                    _ => unknown.lock().unwrap().push(key),
                }
            }
        })
    };
    let acked_count = || acked.lock().unwrap().len();
    let wait_for = |count: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked_count() < count {
            assert!(Instant::now() < deadline, "writes stalled at {count}");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    wait_for(50);
    c.nodes[2].kill(); // SIGKILL, mid-stream
    let acked_at_kill = acked_count();
    wait_for(acked_at_kill + 60);
    let acked_while_down = acked_count() - acked_at_kill;
    c.nodes[2].start();
    wait_healthy(c.nodes[2].http);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    let unknown = unknown.lock().unwrap().clone();
    assert_eq!(acked.len(), 200, "unknown outcomes: {unknown:?}");
    assert!(
        acked_while_down >= 60,
        "n3 missed {acked_while_down} acknowledged writes while down, so only a repair can give it them"
    );

    eventually(
        CONVERGE_WITHIN,
        "every acknowledged write on all three replicas",
        || {
            let mut wrong = Vec::new();
            for (key, value) in &acked {
                for node in &c.nodes {
                    let got = local(node, "crash", key);
                    if got != (200, value.clone()) {
                        wrong.push(format!("{key} on {}: {got:?}", node.id));
                    }
                }
            }
            wrong
        },
    );
    // Writes with an unknown outcome may have landed anywhere; whatever
    // landed, all three replicas now agree on it.
    eventually(
        CONVERGE_WITHIN,
        "replicas agree on writes of unknown outcome",
        || {
            let mut wrong = Vec::new();
            for key in &unknown {
                let copies: Vec<_> = c.nodes.iter().map(|n| local(n, "crash", key)).collect();
                if copies.iter().any(|copy| *copy != copies[0]) {
                    wrong.push(format!("{key}: {copies:?}"));
                }
            }
            wrong
        },
    );
}

#[test]
fn with_four_nodes_w3_writes_succeed_with_one_down_and_hints_bring_it_back() {
    // Anti-entropy effectively off: only hinted handoff can bring n4 back.
    let mut c = Cluster::start(
        4,
        &[
            "--anti-entropy-interval-ms=3600000",
            "--handoff-interval-ms=200",
        ],
    );
    // (key, value): 10 written with every node up, 40 while n4 is down.
    let before: Vec<(String, String)> = (0..10)
        .map(|i| (format!("b{i}"), format!("before-{i}")))
        .collect();
    let during: Vec<(String, String)> = (0..40)
        .map(|i| (format!("d{i}"), format!("during-{i}")))
        .collect();
    for (key, value) in &before {
        let r = put(&c.nodes[0], "hh", key, "?w=3", value);
        assert_eq!(r.status, 204, "{}", r.text());
    }
    c.nodes[3].kill();
    for (i, (key, value)) in during.iter().enumerate() {
        let r = put(&c.nodes[i % 3], "hh", key, "?w=3", value);
        assert_eq!(r.status, 204, "w=3 with n4 down: {key}: {}", r.text());
    }
    let homed_on_n4 = during
        .iter()
        .filter(|(k, _)| homes(&c.nodes, 256, "hh", k).contains(&3))
        .count();
    assert!(homed_on_n4 > 0, "no key has n4 as a home");
    let stored = counter_for(&c.nodes, "ringkv_hints_stored_total", "n4");
    assert!(
        stored >= homed_on_n4 as u64,
        "{stored} hints stored for n4, {homed_on_n4} writes had it as a home"
    );
    assert!(hints_pending_for(&c.nodes, "n4").iter().sum::<u64>() > 0);
    assert_eq!(
        counter_for(&c.nodes, "ringkv_hints_delivered_total", "n4"),
        0
    );

    c.nodes[3].start();
    wait_healthy(c.nodes[3].http);
    let ids: Vec<String> = c.nodes.iter().map(|n| n.id.clone()).collect();
    eventually(CONVERGE_WITHIN, "no hints pending on any node", || {
        ids.iter()
            .flat_map(|id| {
                let pending = hints_pending_for(&c.nodes, id);
                pending
                    .iter()
                    .any(|&h| h > 0)
                    .then(|| format!("for {id}: {pending:?}"))
            })
            .collect()
    });
    let delivered = counter_for(&c.nodes, "ringkv_hints_delivered_total", "n4");
    assert!(
        delivered >= 1 && delivered <= stored,
        "delivered {delivered} of {stored} hints for n4"
    );
    // Every key is on exactly its three homes with its value; the stand-ins
    // kept their copies as hints, never as data.
    eventually(CONVERGE_WITHIN, "each key on exactly its homes", || {
        let mut wrong = Vec::new();
        for (key, value) in before.iter().chain(&during) {
            let want = homes(&c.nodes, 256, "hh", key);
            for (i, node) in c.nodes.iter().enumerate() {
                let got = local(node, "hh", key);
                let ok = if want.contains(&i) {
                    got == (200, value.clone())
                } else {
                    got.0 == 404
                };
                if !ok {
                    wrong.push(format!("{key} on {} (homes {want:?}): {got:?}", node.id));
                }
            }
        }
        wrong
    });
}

#[test]
fn pw_counts_only_real_replicas_when_a_home_is_down() {
    let mut c = Cluster::start(4, &["--handoff-interval-ms=200"]);
    // A key that has n4 as a home, coordinated by another of its homes.
    let key = (0..)
        .map(|i| format!("pw{i}"))
        .find(|k| homes(&c.nodes, 256, "pw", k).contains(&3))
        .unwrap();
    let at = homes(&c.nodes, 256, "pw", &key)[0];
    assert_ne!(at, 3);
    c.nodes[3].kill();
    let coordinator = &c.nodes[at];

    let r = put(coordinator, "pw", &key, "?w=3&pw=3", "a");
    assert_eq!(r.status, 503, "pw=3 with a home down: {}", r.text());
    assert_eq!(r.json()["error"]["code"], "quorum_not_met", "{}", r.text());

    // PW above W (default 2) raises what the write waits for, as in Riak:
    // three homes cannot answer, so this is a failed quorum too.
    let r = put(coordinator, "pw", &key, "?pw=3", "b");
    assert_eq!(r.status, 503, "{}", r.text());
    // PW above N is a bad request.
    let r = put(coordinator, "pw", &key, "?pw=4", "c");
    assert_eq!(r.status, 400, "{}", r.text());

    for query in ["?pw=2", "?w=3&pw=2", "?w=3"] {
        let r = put(coordinator, "pw", &key, query, query);
        assert_eq!(r.status, 204, "{query} with a home down: {}", r.text());
    }
}

#[test]
fn local_get_answers_from_this_node_only_and_local_put_is_refused() {
    let c = Cluster::start(4, &[]);
    let key = "loc";
    let want = homes(&c.nodes, 256, "lb", key);
    let stranger = (0..4).find(|i| !want.contains(i)).unwrap();
    let r = put(&c.nodes[stranger], "lb", key, "?w=3", "here");
    assert_eq!(r.status, 204, "{}", r.text());

    for (i, node) in c.nodes.iter().enumerate() {
        let got = local(node, "lb", key);
        if i == stranger {
            assert_eq!(got.0, 404, "{} holds no copy: {got:?}", node.id);
        } else {
            assert_eq!(got, (200, "here".to_string()), "{} is a home", node.id);
        }
    }
    // The same node answers a coordinated read with the value.
    let r = http(c.nodes[stranger].http, "GET", "/v1/kv/lb/loc", &[], b"").unwrap();
    assert_eq!((r.status, r.text()), (200, "here".to_string()));
    // A local read of a key nobody holds is 404 too.
    assert_eq!(local(&c.nodes[want[0]], "lb", "never-written").0, 404);

    let r = put(&c.nodes[want[0]], "lb", key, "?local=true", "no");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "bad_request");
    assert!(r.text().contains("local=true"), "{}", r.text());
    assert_eq!(local(&c.nodes[want[0]], "lb", key).1, "here");
}
