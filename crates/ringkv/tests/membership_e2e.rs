//! End-to-end membership (issue 8) on real processes on loopback:
//!
//! - `ringkv dev` starts three nodes; a fourth `ringkv serve --seed` on an
//!   empty data directory joins by itself and becomes normal once its
//!   partitions have streamed in; `ringkv admin decommission n1` streams
//!   n1's data away and n1 ends removed. A client writes and reads back all
//!   along: every read of an acknowledged write finds it, and afterwards
//!   every acknowledged write is readable through the new node.
//! - A node stopped with SIGSTOP (it stops answering but keeps its
//!   connections) is judged down by its peers, and up again after SIGCONT;
//!   the test prints how long each took.
//!
//! Every wait is a bounded poll.

mod common;

use common::{free_port, http, start_dev, Cluster, BIN};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a join or a decommission may take to complete here.
const CHANGE_WITHIN: Duration = Duration::from_secs(120);

fn ringkv(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RINGKV_LOG", "warn")
        .output()
        .unwrap()
}

/// `ringkv admin status --json` through the node on `port`.
fn status(port: u16) -> Value {
    let node = format!("http://127.0.0.1:{port}");
    let out = ringkv(&["admin", "status", "--node", &node, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn state_of(status: &Value, id: &str) -> Option<String> {
    status["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == id)
        .and_then(|n| n["state"].as_str())
        .map(str::to_string)
}

/// Polls until the node on `port` sees `id` in `state` with one active
/// layout version; returns how long that took.
fn wait_for_state(port: u16, id: &str, state: &str) -> Duration {
    let started = Instant::now();
    loop {
        let s = status(port);
        if state_of(&s, id).as_deref() == Some(state) && s["layout"]["in_transition"] == false {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < CHANGE_WITHIN,
            "{id} not {state} within {CHANGE_WITHIN:?}: {s:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What the client saw: acknowledged writes, and every read that missed one.
#[derive(Default)]
struct Seen {
    acked: BTreeMap<String, String>,
    wrong_reads: Vec<String>,
    failed_writes: usize,
    reads: usize,
}

/// Writes `k{i}` through the nodes on `write_ports` in turn and reads each
/// acknowledged key back (and an older one) through the next node, until
/// `stop`.
fn client(ports: Vec<u16>, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        let writer = ports[i % ports.len()];
        let reader = ports[(i + 1) % ports.len()];
        let path = format!("/v1/kv/e2e/{k}");
        match http(writer, "PUT", &path, &[], v.as_bytes()) {
            Ok(r) if r.status == 204 => {
                seen.lock().unwrap().acked.insert(k.clone(), v.clone());
            }
            _ => seen.lock().unwrap().failed_writes += 1,
        }
        let older = {
            let s = seen.lock().unwrap();
            s.acked
                .iter()
                .nth(i * 7 % s.acked.len().max(1))
                .map(|(k, v)| (k.clone(), v.clone()))
        };
        for (k, v) in [Some((k, v)), older].into_iter().flatten() {
            if !seen.lock().unwrap().acked.contains_key(&k) {
                continue;
            }
            let got = http(reader, "GET", &format!("/v1/kv/e2e/{k}"), &[], b"");
            let mut s = seen.lock().unwrap();
            s.reads += 1;
            match got {
                Ok(r) if r.status == 200 && r.text() == v => {}
                Ok(r) => s
                    .wrong_reads
                    .push(format!("{k} via {reader}: {} {}", r.status, r.text())),
                Err(e) => s.wrong_reads.push(format!("{k} via {reader}: {e}")),
            }
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_joiner(
    dir: &std::path::Path,
    cluster: &str,
    seed_rpc: u16,
    secret_file: &std::path::Path,
) -> (Child, u16) {
    let (http_port, rpc) = (free_port(), free_port());
    let child = Command::new(BIN)
        .args([
            "serve",
            "--id=n4",
            &format!("--cluster={cluster}"),
            &format!("--http=127.0.0.1:{http_port}"),
            &format!("--rpc=127.0.0.1:{rpc}"),
            &format!("--seed=127.0.0.1:{seed_rpc}"),
        ])
        .arg(format!("--data-dir={}", dir.join("n4").display()))
        .arg(format!("--secret-file={}", secret_file.display()))
        .env("RINGKV_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    (child, http_port)
}

#[test]
fn dev_grows_by_a_seeded_node_and_shrinks_by_a_decommission_while_every_read_checks_out() {
    let dir = tempfile::tempdir().unwrap();
    let (mut dev, http_base, rpc_base) = start_dev(dir.path(), 3);
    let (n1, n2, n3) = (http_base, http_base + 1, http_base + 2);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || client(vec![n2, n3], seen, stop))
    };
    std::thread::sleep(Duration::from_secs(2));

    // `ringkv dev` names its cluster per run; a joining node must name it too.
    let cluster = status(n2)["cluster"].as_str().unwrap().to_string();
    // ... and prove the run's secret.
    let secret = common::dev_secret_file(dir.path(), http_base);
    let (mut joiner, n4) = start_joiner(dir.path(), &cluster, rpc_base, &secret);
    let joined = wait_for_state(n2, "n4", "normal");
    eprintln!("n4 joined and its data arrived in {joined:?}");
    let s = status(n4);
    assert_eq!(s["layout"]["version"], 2, "{s:#}");
    let n4_node = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "n4")
        .unwrap();
    assert!(
        (n4_node["share"].as_f64().unwrap() - 0.25).abs() < 0.01,
        "{n4_node}"
    );

    let out = ringkv(&[
        "admin",
        "decommission",
        "n1",
        "--node",
        &format!("http://127.0.0.1:{n2}"),
    ]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("layout version 3 applied"), "{said}");
    let left = wait_for_state(n2, "n1", "removed");
    eprintln!("n1 streamed its data away and left in {left:?}");
    // n4 learns the retirement by gossip, a round or two later.
    wait_for_state(n4, "n1", "removed");
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();

    let seen = seen.lock().unwrap();
    eprintln!(
        "client: {} acknowledged writes, {} failed writes, {} reads checked",
        seen.acked.len(),
        seen.failed_writes,
        seen.reads
    );
    assert!(seen.acked.len() > 100, "the client made progress");
    assert!(
        seen.wrong_reads.is_empty(),
        "reads that missed an acknowledged write: {:?}",
        seen.wrong_reads
    );
    for (k, v) in &seen.acked {
        let r = http(n4, "GET", &format!("/v1/kv/e2e/{k}?r=2"), &[], b"").unwrap();
        assert_eq!((r.status, r.text()), (200, v.clone()), "{k} through n4");
    }

    // The ring has one version, without n1; the status table says it all.
    let node = format!("http://127.0.0.1:{n4}");
    let ring = ringkv(&["admin", "ring", "--node", &node, "--json"]);
    assert!(ring.status.success());
    let ring: Value = serde_json::from_slice(&ring.stdout).unwrap();
    let versions = ring["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{ring:#}");
    for p in versions[0]["partitions"].as_array().unwrap() {
        assert!(
            !p["replicas"]
                .as_array()
                .unwrap()
                .contains(&Value::from("n1")),
            "{p}"
        );
    }
    let table = ringkv(&["admin", "status", "--node", &node]);
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("n4") && l.contains("normal")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("n1") && l.contains("removed")),
        "{table}"
    );

    // A change the cluster cannot make says why and exits non-zero.
    let out = ringkv(&["admin", "remove", "n9", "--node", &node]);
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("not a member"), "{why}");
    let out = ringkv(&["admin", "join", "n4", "--node", &node]);
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("already a member"), "{why}");
    let out = ringkv(&["admin", "join", "n7", "--node", &node]);
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && why.contains("not known through gossip"),
        "{why}"
    );

    let _ = joiner.kill();
    let _ = joiner.wait();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(dev.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = dev.wait();
    let _ = n1;
}

#[test]
fn a_stopped_node_is_judged_down_by_its_peers_and_up_after_it_continues() {
    let cluster = Cluster::start(3, &["--gossip-interval-ms=500"]);
    let (p1, p2) = (cluster.nodes[0].http, cluster.nodes[1].http);
    let up = |port: u16| -> bool {
        let c = http(port, "GET", "/v1/cluster", &[], b"").unwrap().json();
        c["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "n3")
            .unwrap()["up"]
            == true
    };
    std::thread::sleep(Duration::from_secs(5));
    assert!(up(p1) && up(p2));
    let pid = cluster.nodes[2].child.as_ref().unwrap().id() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stopped = Instant::now();
    while up(p1) || up(p2) {
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "n3 never judged down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let down_after = stopped.elapsed();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let continued = Instant::now();
    while !(up(p1) && up(p2)) {
        assert!(
            continued.elapsed() < Duration::from_secs(30),
            "n3 never judged up again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "n3 (SIGSTOP) judged down by both peers after {down_after:?}, up after SIGCONT in {:?}",
        continued.elapsed()
    );
    assert!(down_after < Duration::from_secs(15), "{down_after:?}");
}

#[test]
fn a_node_joining_a_cluster_of_another_name_stops_with_the_reason() {
    let cluster = Cluster::start(1, &["--n=1", "--r=1", "--w=1"]);
    let dir = tempfile::tempdir().unwrap();
    let (http_port, rpc) = (free_port(), free_port());
    let started = Instant::now();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--id=n9",
            "--cluster=another",
            "--n=1",
            "--r=1",
            "--w=1",
            &format!("--http=127.0.0.1:{http_port}"),
            &format!("--rpc=127.0.0.1:{rpc}"),
            &format!("--seed=127.0.0.1:{}", cluster.nodes[0].rpc),
        ])
        .arg(format!("--data-dir={}", dir.path().join("n9").display()))
        .env("RINGKV_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("refused this node") && why.contains("another"),
        "{why}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it stopped at once"
    );
}
