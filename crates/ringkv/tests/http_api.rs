//! End-to-end: the HTTP contract of a real 3-node cluster on loopback
//! (N = 3, R = W = 2), through raw HTTP so statuses and headers are exact.

mod common;

use common::{http, Cluster};

const CTX: &str = "x-ringkv-context";

#[test]
fn http_contract_of_a_three_node_cluster() {
    let c = Cluster::start(3, &[]);
    let (p1, p2, p3) = (c.nodes[0].http, c.nodes[1].http, c.nodes[2].http);

    // A put on one node is read on another, with a context.
    let put = http(p1, "PUT", "/v1/kv/carts/alice", &[], b"apples").unwrap();
    assert_eq!(put.status, 204, "{}", put.text());
    let ctx1 = put.header(CTX).expect("context on put").to_string();
    let got = http(p3, "GET", "/v1/kv/carts/alice", &[], b"").unwrap();
    assert_eq!((got.status, got.body.as_slice()), (200, b"apples".as_ref()));
    assert_eq!(got.header(CTX), Some(ctx1.as_str()));

    // A second blind write makes siblings: 300 multipart, and JSON on request.
    assert_eq!(
        http(p2, "PUT", "/v1/kv/carts/alice", &[], b"pears")
            .unwrap()
            .status,
        204
    );
    let multi = http(p1, "GET", "/v1/kv/carts/alice", &[], b"").unwrap();
    assert_eq!(multi.status, 300);
    assert!(multi
        .header("content-type")
        .unwrap()
        .starts_with("multipart/mixed; boundary="));
    assert!(multi.text().contains("apples") && multi.text().contains("pears"));
    let json = http(
        p1,
        "GET",
        "/v1/kv/carts/alice",
        &[("Accept", "application/json")],
        b"",
    )
    .unwrap();
    assert_eq!(json.status, 200);
    let body = json.json();
    assert_eq!(body["values"].as_array().unwrap().len(), 2);
    let ctx = body["context"].as_str().unwrap().to_string();

    // Writing back with the read context collapses the siblings.
    let resolved = http(
        p3,
        "PUT",
        "/v1/kv/carts/alice",
        &[(CTX, &ctx)],
        b"apples,pears",
    )
    .unwrap();
    assert_eq!(resolved.status, 204);
    let after = http(p2, "GET", "/v1/kv/carts/alice", &[], b"").unwrap();
    assert_eq!((after.status, after.text().as_str()), (200, "apples,pears"));

    // Delete with the context: 404 afterwards, with the tombstone's context.
    let ctx = after.header(CTX).unwrap().to_string();
    assert_eq!(
        http(p1, "DELETE", "/v1/kv/carts/alice", &[(CTX, &ctx)], b"")
            .unwrap()
            .status,
        204
    );
    let gone = http(p2, "GET", "/v1/kv/carts/alice", &[], b"").unwrap();
    assert_eq!(gone.status, 404);
    assert!(gone.header(CTX).is_some(), "a tombstone keeps its context");
    let never = http(p2, "GET", "/v1/kv/carts/nobody", &[], b"").unwrap();
    assert_eq!((never.status, never.header(CTX)), (404, None));
    assert_eq!(never.json()["error"]["code"], "not_found");

    // A context belongs to its key: handing it to another key is refused.
    let other = http(p1, "PUT", "/v1/kv/carts/bob", &[(CTX, &ctx)], b"x").unwrap();
    assert_eq!(
        (other.status, other.json()["error"]["code"].as_str()),
        (400, Some("bad_context"))
    );

    // Keys are arbitrary bytes, percent-encoded.
    assert_eq!(
        http(p1, "PUT", "/v1/kv/b/a%2Fb%00%FF", &[], b"\x00binary\xff")
            .unwrap()
            .status,
        204
    );
    let bin = http(p2, "GET", "/v1/kv/b/a%2Fb%00%FF", &[], b"").unwrap();
    assert_eq!(bin.body, b"\x00binary\xff");
    assert_eq!(
        http(p2, "GET", "/v1/kv/b/a/b", &[], b"").unwrap().status,
        404,
        "a/b (however its slash is written) is a different key from a/b\\0\\xff"
    );

    // Per-request quorums.
    assert_eq!(
        http(p1, "PUT", "/v1/kv/b/q?w=3", &[], b"v").unwrap().status,
        204
    );
    assert_eq!(
        http(p1, "GET", "/v1/kv/b/q?r=1", &[], b"").unwrap().status,
        200
    );

    // Operator endpoints.
    assert_eq!(
        http(p1, "GET", "/v1/health", &[], b"").unwrap().json()["status"],
        "ok"
    );
    // Peers' HTTP addresses travel in gossip: a few rounds after start.
    let mut cluster = http(p1, "GET", "/v1/cluster", &[], b"").unwrap().json();
    for _ in 0..100 {
        let gossiped = cluster["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["http"].is_string());
        if gossiped {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        cluster = http(p1, "GET", "/v1/cluster", &[], b"").unwrap().json();
    }
    let nodes = cluster["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let layout = &cluster["layout"];
    assert_eq!(layout["version"], 1);
    assert_eq!(layout["partitions"], 256);
    assert_eq!(layout["replication"], 3);
    assert_eq!(layout["digest"].as_str().unwrap().len(), 16);
    // N = 3 of 3 nodes: every node holds a replica of every partition.
    for node in nodes {
        assert_eq!(node["slots"], 256, "{node}");
        let share = node["share"].as_f64().unwrap();
        assert!((share - 1.0 / 3.0).abs() < 1e-9, "{node}");
        assert_eq!(node["ideal_slots"], 256.0, "{node}");
        assert_eq!(node["balance_notes"], serde_json::json!([]), "{node}");
        assert_eq!(node["state"], "normal", "{node}");
        assert_eq!(node["up"], true, "{node}");
        assert!(
            node["http"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{node}"
        );
        assert!(
            node["rpc"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{node}"
        );
        assert_eq!(node["capacity"], 1, "{node}");
    }
    assert_eq!(nodes.iter().filter(|n| n["self"] == true).count(), 1);
    let peer = nodes.iter().find(|n| n["self"] == false).unwrap();
    assert_eq!(peer["health"]["status"], "up", "{peer}");
    assert_eq!(
        peer["health"]["connected"], true,
        "writes went to every replica: {peer}"
    );
    // Every node computed the same layout.
    let digest_of = |port| {
        http(port, "GET", "/v1/cluster", &[], b"").unwrap().json()["layout"]["digest"].clone()
    };
    assert_eq!(digest_of(p2), layout["digest"]);
    let metrics = http(p1, "GET", "/metrics", &[], b"").unwrap().text();
    assert!(
        metrics.contains("ringkv_requests_total{op=\"put\",status=\"204\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("ringkv_storage_sync_batch_writes_count"));
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let c = Cluster::start(3, &["--max-value-bytes=1000", "--max-key-bytes=16"]);
    let p = c.nodes[0].http;
    assert_eq!(
        http(p, "PUT", "/v1/kv/b/k", &[], b"original")
            .unwrap()
            .status,
        204
    );
    let long_context = "A".repeat(10_000);
    // (method, target, headers, body, status, error code)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "PUT",
            "/v1/kv/b/k",
            vec![(CTX, "garbage!!")],
            b"x".to_vec(),
            400,
            "bad_context",
        ),
        (
            "PUT",
            "/v1/kv/b/k",
            vec![(CTX, "AQECbj")],
            b"x".to_vec(),
            400,
            "bad_context",
        ),
        (
            "PUT",
            "/v1/kv/b/k",
            vec![(CTX, &long_context)],
            b"x".to_vec(),
            400,
            "bad_context",
        ),
        (
            "DELETE",
            "/v1/kv/b/k",
            vec![(CTX, "%%%")],
            vec![],
            400,
            "bad_context",
        ),
        (
            "PUT",
            "/v1/kv/b/k",
            vec![],
            vec![b'v'; 1001],
            413,
            "value_too_large",
        ),
        (
            "PUT",
            "/v1/kv/b/k",
            vec![],
            vec![b'v'; 100_000],
            413,
            "value_too_large",
        ),
        (
            "PUT",
            "/v1/kv/b/0123456789abcdefX",
            vec![],
            b"x".to_vec(),
            413,
            "key_too_large",
        ),
        (
            "PUT",
            "/v1/kv/bad%20bucket/k",
            vec![],
            b"x".to_vec(),
            400,
            "bad_key",
        ),
        ("PUT", "/v1/kv/b/", vec![], b"x".to_vec(), 400, "bad_key"),
        (
            "PUT",
            "/v1/kv/b/k?w=4",
            vec![],
            b"x".to_vec(),
            400,
            "bad_request",
        ),
        (
            "PUT",
            "/v1/kv/b/k?w=0",
            vec![],
            b"x".to_vec(),
            400,
            "bad_request",
        ),
        (
            "GET",
            "/v1/kv/b/k?r=two",
            vec![],
            vec![],
            400,
            "bad_request",
        ),
        ("GET", "/v1/kv/b/k?x=1", vec![], vec![], 400, "bad_request"),
        ("GET", "/v2/nothing", vec![], vec![], 404, "no_route"),
        (
            "POST",
            "/v1/kv/b/k",
            vec![],
            b"x".to_vec(),
            405,
            "method_not_allowed",
        ),
    ];
    for (method, target, headers, body, status, code) in cases {
        let r = http(p, method, target, &headers, &body).unwrap();
        assert_eq!(r.status, status, "{method} {target}: {}", r.text());
        assert_eq!(
            r.json()["error"]["code"],
            code,
            "{method} {target}: {}",
            r.text()
        );
        assert!(r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let after = http(c.nodes[1].http, "GET", "/v1/kv/b/k", &[], b"").unwrap();
    assert_eq!(
        (after.status, after.text().as_str()),
        (200, "original"),
        "refused writes changed nothing"
    );
}
