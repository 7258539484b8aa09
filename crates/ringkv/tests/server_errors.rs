//! End-to-end tests of what the server says when something goes wrong, on
//! real processes: a delete of a missing key (404, nothing written), a failed
//! write quorum (the write may have been applied), a foreign context, and the
//! WARN lines both nodes log on a cluster-name mismatch or a peer outage.
//!
//! Nodes here log to a file each (stderr redirected), so a test can read
//! what an operator would see. `RINGKV_BIN`, when set, names the binary to
//! run instead of the one cargo built for this test (a target directory
//! shared by several checkouts relinks `target/debug/ringkv` under a
//! running test).

mod common;

use common::{http, plan, Node};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The log file of `node` in `dir`.
fn log_path(dir: &Path, node: &Node) -> PathBuf {
    dir.join(format!("{}.log", node.id))
}

/// Starts `node` at INFO with stderr appended to its log file, and waits
/// until it is healthy.
fn start_logged(dir: &Path, node: &mut Node) {
    let log = File::options()
        .create(true)
        .append(true)
        .open(log_path(dir, node))
        .unwrap();
    let bin = std::env::var("RINGKV_BIN").unwrap_or_else(|_| common::BIN.to_string());
    let child = Command::new(bin)
        .args(&node.args)
        .env("RINGKV_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start ringkv serve");
    node.child = Some(child);
    assert!(node.wait_started(), "{} exited at start", node.id);
}

/// A started cluster of `n` nodes with `flags` each, logging to files.
fn cluster(n: usize, flags: &[&str]) -> (tempfile::TempDir, Vec<Node>) {
    let dir = tempfile::tempdir().unwrap();
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let mut nodes = plan(n, dir.path(), |_| flags.clone());
    for node in &mut nodes {
        start_logged(dir.path(), node);
    }
    (dir, nodes)
}

/// Lines of `node`'s log that contain every one of `words`.
fn log_lines(dir: &Path, node: &Node, words: &[&str]) -> Vec<String> {
    std::fs::read_to_string(log_path(dir, node))
        .unwrap_or_default()
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .map(String::from)
        .collect()
}

/// Waits (at most 10 s) until `node`'s log has a line with all of `words`.
fn wait_for_log(dir: &Path, node: &Node, words: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = log_lines(dir, node, words);
        if !lines.is_empty() || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn message(r: &common::Reply) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn delete_without_a_context_of_a_missing_key_is_404_and_writes_nothing() {
    let (_dir, nodes) = cluster(3, &[]);
    let p = nodes[0].http;
    let r = http(p, "DELETE", "/v1/kv/b/never", &[], b"").unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "not_found");
    assert!(message(&r).contains("nothing was deleted"), "{}", r.text());
    let get = http(p, "GET", "/v1/kv/b/never", &[], b"").unwrap();
    assert_eq!(get.status, 404);
    assert_eq!(
        get.header("x-ringkv-context"),
        None,
        "no tombstone was written"
    );

    // A live key is deleted as before; deleting it again writes nothing more.
    assert_eq!(http(p, "PUT", "/v1/kv/b/k", &[], b"v").unwrap().status, 204);
    assert_eq!(
        http(p, "DELETE", "/v1/kv/b/k", &[], b"").unwrap().status,
        204
    );
    let again = http(p, "DELETE", "/v1/kv/b/k", &[], b"").unwrap();
    assert_eq!(again.status, 404, "{}", again.text());
    assert!(
        message(&again).contains("already deleted"),
        "{}",
        again.text()
    );
    let tombstone = again.header("x-ringkv-context").unwrap().to_string();

    // With a context, a delete writes as today.
    let with = http(
        p,
        "DELETE",
        "/v1/kv/b/k",
        &[("X-Ringkv-Context", &tombstone)],
        b"",
    )
    .unwrap();
    assert_eq!(with.status, 204, "{}", with.text());
}

#[test]
fn a_foreign_context_says_to_read_the_key_again() {
    let (_dir, nodes) = cluster(1, &["--n=1", "--r=1", "--w=1"]);
    for token in ["ng", "AQ", "nQEC"] {
        let r = http(
            nodes[0].http,
            "PUT",
            "/v1/kv/b/k",
            &[("X-Ringkv-Context", token)],
            b"v",
        )
        .unwrap();
        assert_eq!(r.status, 400, "{token}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "bad_context");
        let text = message(&r);
        assert!(text.contains("read the key again"), "{token}: {text}");
        assert!(!text.contains("buffer"), "{token}: {text}");
    }
}

#[test]
fn a_failed_write_quorum_says_the_write_may_have_been_applied() {
    let (_dir, mut nodes) = cluster(3, &[]);
    let p = nodes[0].http;
    nodes[1].kill();
    nodes[2].kill();
    let r = http(p, "PUT", "/v1/kv/b/k", &[], b"v").unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "quorum_not_met");
    let text = message(&r);
    assert!(
        text.contains("the put may have been applied")
            && text.contains("read the key before retrying"),
        "{text}"
    );
    // It was: this node wrote its own copy first.
    let read = http(p, "GET", "/v1/kv/b/k?r=1", &[], b"").unwrap();
    assert_eq!(read.status, 200, "{}", read.text());
    // One failed request is one quorum failure on the node that answered it.
    let metrics = http(p, "GET", "/metrics", &[], b"").unwrap().text();
    assert!(
        metrics.contains("ringkv_quorum_failures_total{op=\"put\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn a_cluster_name_mismatch_is_a_warn_on_both_nodes_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = plan(2, dir.path(), |i| {
        vec![
            format!("--cluster=c{i}"),
            "--n=2".into(),
            "--r=1".into(),
            "--w=2".into(),
        ]
    });
    for node in &mut nodes {
        start_logged(dir.path(), node);
    }
    for i in 0..5 {
        let r = http(nodes[0].http, "PUT", &format!("/v1/kv/b/k{i}"), &[], b"v").unwrap();
        assert_eq!(r.status, 503, "{}", r.text());
    }
    let refusing = wait_for_log(
        dir.path(),
        &nodes[1],
        &["WARN", "refused a peer's handshake"],
    );
    assert!(!refusing.is_empty(), "n2 logged no refusal");
    assert!(refusing[0].contains("cluster"), "{}", refusing[0]);
    let connecting = wait_for_log(
        dir.path(),
        &nodes[0],
        &["WARN", "the peer refused this node's handshake"],
    );
    assert_eq!(connecting.len(), 1, "once per change: {connecting:?}");
    assert!(connecting[0].contains("c1"), "{}", connecting[0]);
}

#[test]
fn a_peer_going_down_and_back_logs_one_warn_and_one_info() {
    let (dir, mut nodes) = cluster(3, &[]);
    let p = nodes[0].http;
    nodes[2].kill();
    for i in 0..20 {
        let r = http(p, "PUT", &format!("/v1/kv/b/k{i}"), &[], b"v").unwrap();
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let down = wait_for_log(dir.path(), &nodes[0], &["WARN", "peer is down", "n3"]);
    assert_eq!(down.len(), 1, "one WARN per outage: {down:?}");

    start_logged(dir.path(), &mut nodes[2]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    while log_lines(dir.path(), &nodes[0], &["INFO", "peer is back up", "n3"]).is_empty() {
        assert!(Instant::now() < deadline, "n1 never logged n3 back up");
        let _ = http(p, "PUT", &format!("/v1/kv/b/again{i}"), &[], b"v");
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    for j in 0..10 {
        let _ = http(p, "PUT", &format!("/v1/kv/b/after{j}"), &[], b"v");
    }
    let back = log_lines(dir.path(), &nodes[0], &["INFO", "peer is back up", "n3"]);
    assert_eq!(back.len(), 1, "{back:?}");
    let down = log_lines(dir.path(), &nodes[0], &["WARN", "peer is down", "n3"]);
    assert_eq!(down.len(), 1, "{down:?}");
}
