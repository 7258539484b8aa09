//! End-to-end: the limits a client can push against, each with its error.
//! (Key, value and context sizes are covered in `http_api.rs`.)

mod common;

use common::{free_port, http, Cluster};
use std::net::TcpListener;
use std::time::{Duration, Instant};

#[test]
fn a_put_that_would_exceed_max_siblings_gets_409_and_a_reconciling_put_succeeds() {
    let c = Cluster::start(1, &["--n=1", "--r=1", "--w=1", "--max-siblings=2"]);
    let p = c.nodes[0].http;
    assert_eq!(
        http(p, "PUT", "/v1/kv/b/k", &[], b"one").unwrap().status,
        204
    );
    assert_eq!(
        http(p, "PUT", "/v1/kv/b/k", &[], b"two").unwrap().status,
        204
    );
    let third = http(p, "PUT", "/v1/kv/b/k", &[], b"three").unwrap();
    assert_eq!(third.status, 409, "{}", third.text());
    assert_eq!(third.json()["error"]["code"], "too_many_siblings");
    let read = http(
        p,
        "GET",
        "/v1/kv/b/k",
        &[("Accept", "application/json")],
        b"",
    )
    .unwrap();
    assert_eq!(
        read.json()["values"].as_array().unwrap().len(),
        2,
        "the refused put changed nothing"
    );
    let ctx = read.json()["context"].as_str().unwrap().to_string();
    let resolved = http(
        p,
        "PUT",
        "/v1/kv/b/k",
        &[("x-ringkv-context", &ctx)],
        b"one+two",
    )
    .unwrap();
    assert_eq!(
        resolved.status, 204,
        "a put with the read context collapses the siblings"
    );
}

#[test]
fn requests_past_the_in_flight_limit_get_503_overloaded() {
    // A "peer" that accepts connections and never answers: a request waits on
    // it for the connect timeout, holding the node's only in-flight permit.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let (http_port, rpc_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let mut node = common::Node {
        id: "n1".into(),
        http: http_port,
        rpc: rpc_port,
        data_dir: dir.path().join("n1"),
        args: vec![
            "serve".into(),
            "--id=n1".into(),
            format!("--http=127.0.0.1:{http_port}"),
            format!("--rpc=127.0.0.1:{rpc_port}"),
            format!("--data-dir={}", dir.path().join("n1").display()),
            format!("--peer=n2=127.0.0.1:{silent_port}"),
            "--n=2".into(),
            "--r=2".into(),
            "--w=2".into(),
            "--max-in-flight-requests=1".into(),
            "--connect-timeout-ms=2000".into(),
        ],
        child: None,
        place: common::Place::loopback(),
    };
    node.start();
    assert!(node.wait_started(), "node started");
    let slow = std::thread::spawn(move || loop {
        let started = Instant::now();
        let r = http(http_port, "PUT", "/v1/kv/b/slow", &[], b"x").unwrap();
        if r.json()["error"]["code"] == "overloaded" {
            continue; // a probe held the permit for a moment: try again
        }
        return (
            r.status,
            r.json()["error"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            started.elapsed(),
        );
    });
    // Wait until the slow request holds the permit, then knock.
    let deadline = Instant::now() + Duration::from_secs(10);
    let overloaded = loop {
        // r=1 reads only the local copy: a probe never waits on the silent peer.
        let r = http(http_port, "GET", "/v1/kv/b/other?r=1", &[], b"").unwrap();
        if r.status == 503 && r.json()["error"]["code"] == "overloaded" {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "never saw 503 overloaded (last: {} {})",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(overloaded.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("more than 1 requests in flight"));
    let (status, message, took) = slow.join().unwrap();
    assert_eq!(status, 503, "{message}");
    assert!(
        message.contains("n2") && message.contains("could not connect within"),
        "{message}"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "the silent peer held the request for the connect timeout"
    );
    drop(silent);
}
