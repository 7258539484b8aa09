//! `ringkv bench` against real `serve` processes: it refuses a cluster that
//! does not answer, counts only successes, reports failures by kind and
//! fails the run on them (unless `--max-error-rate` allows), and never
//! leaves siblings behind, however often it runs or however many workers
//! share few keys.

mod common;

use common::{free_port, http, Cluster, BIN};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs `ringkv bench` with `args` (plus `--quiet`); every test load is small.
fn bench(args: &[&str]) -> (Output, String, String) {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .arg("--quiet")
        .env("RINGKV_LOG", "warn")
        .output()
        .expect("run ringkv bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// The live siblings of `bench/<key>`, read from all three replicas.
fn siblings(port: u16, key: &str) -> usize {
    let target = format!("/v1/kv/bench/{key}?r=3");
    let reply = http(port, "GET", &target, &[("Accept", "application/json")], b"").unwrap();
    assert_eq!(reply.status, 200, "{key}: {}", reply.text());
    reply.json()["values"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_dead_address_fails_fast_and_counts_no_throughput() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let (out, stdout, stderr) = bench(&["--node", &url, "--ops", "1000"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("ops/s"), "no throughput: {stdout}");
    assert!(
        stderr.contains(&url) && stderr.contains("/v1/health"),
        "{stderr}"
    );
}

#[test]
fn failures_are_reported_by_kind_and_fail_the_run_unless_allowed() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.nodes[2].kill();
    let node = cluster.nodes[0].url();
    // W=3 cannot be met with one replica down: every put fails.
    let load = [
        "--node",
        &node,
        "--w",
        "3",
        "--ops",
        "20",
        "--concurrency",
        "2",
        "--keys",
        "4",
    ];
    let (out, stdout, stderr) = bench(&load);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("0 of 20 ops ok"),
        "no success counted: {stdout}"
    );
    assert!(
        stdout.contains("errors 20 of") && stdout.contains("HTTP 5"),
        "{stdout}"
    );
    assert!(stderr.contains("--max-error-rate"), "{stderr}");

    // The JSON report of a failing run carries its failures by kind.
    let mut json = load.to_vec();
    json.push("--json");
    let (out, stdout, stderr) = bench(&json);
    assert!(!out.status.success(), "{stdout}{stderr}");
    let j: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(j["ok"], 0, "{j}");
    assert!(j["put"].is_null(), "no successful put: {j}");
    assert_eq!(j["errors"]["total"], 20, "{j}");
    let kinds = j["errors"]["by_kind"].as_object().unwrap();
    assert!(kinds.keys().all(|k| k.starts_with("HTTP 5")), "{j}");

    let mut tolerant = load.to_vec();
    tolerant.extend(["--max-error-rate", "1"]);
    let (out, stdout, stderr) = bench(&tolerant);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("errors 20 of"), "{stdout}");

    let (out, _, stderr) = bench(&["--node", &node, "--max-error-rate", "1.5"]);
    assert!(
        !out.status.success() && stderr.contains("--max-error-rate"),
        "{stderr}"
    );
}

#[test]
fn repeated_runs_leave_one_value_and_hot_keys_get_no_conflicts() {
    let cluster = Cluster::start(3, &[]);
    let port = cluster.nodes[0].http;
    // Siblings left by blind writes (as an older bench left them) are superseded.
    for v in [&b"old-1"[..], b"old-2"] {
        let put = http(port, "PUT", "/v1/kv/bench/k0", &[], v).unwrap();
        assert_eq!(put.status, 204, "{}", put.text());
    }
    assert_eq!(siblings(port, "k0"), 2);

    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    let mut load = vec!["--ops", "60", "--keys", "5", "--concurrency", "3"];
    for url in &urls {
        load.extend(["--node", url.as_str()]);
    }
    for run in 0..2 {
        let (out, stdout, stderr) = bench(&load);
        assert!(out.status.success(), "run {run}: {stdout}{stderr}");
        assert!(stdout.contains("errors 0"), "run {run}: {stdout}");
    }
    for i in 0..5 {
        assert_eq!(siblings(port, &format!("k{i}")), 1, "k{i}");
    }

    let mut hot = vec![
        "--ops",
        "500",
        "--keys",
        "10",
        "--concurrency",
        "50",
        "--bucket",
        "hot",
    ];
    hot.extend(["--node", urls[0].as_str(), "--node", urls[1].as_str()]);
    let (out, stdout, stderr) = bench(&hot);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("errors 0") && !stdout.contains("409"),
        "{stdout}"
    );
}

#[test]
fn json_output_is_one_object_with_rates_quantiles_and_failures() {
    let cluster = Cluster::start(3, &[]);
    let node = cluster.nodes[0].url();
    let load = [
        "--node",
        &node,
        "--ops",
        "200",
        "--keys",
        "20",
        "--concurrency",
        "4",
        "--read-ratio",
        "0.5",
        "--json",
    ];
    let (out, stdout, stderr) = bench(&load);
    assert!(out.status.success(), "{stdout}{stderr}");
    let j: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(j["ops"], 200);
    assert_eq!(j["ok"], 200);
    assert_eq!(j["errors"]["total"], 0);
    let (gets, puts) = (&j["get"], &j["put"]);
    assert_eq!(
        gets["ok"].as_u64().unwrap() + puts["ok"].as_u64().unwrap(),
        200,
        "{j}"
    );
    for op in [gets, puts] {
        assert!(op["ops_per_s"].as_f64().unwrap() > 0.0, "{j}");
        let q = |k: &str| op[k].as_f64().unwrap();
        assert!(q("p50_ms") > 0.0, "{j}");
        assert!(
            q("p50_ms") <= q("p99_ms") && q("p99_ms") <= q("p999_ms"),
            "{j}"
        );
        assert!(q("p999_ms") <= q("max_ms"), "{j}");
    }

    // A cluster that does not answer gets no report at all.
    drop(cluster);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (out, stdout, _) = bench(&["--node", &dead, "--json"]);
    assert!(!out.status.success());
    assert!(
        stdout.trim().is_empty(),
        "a refused start prints no report: {stdout}"
    );
}
