//! End-to-end, only its own get in (N4): a `ringkv dev` cluster runs with a
//! per-run secret; a `serve` with another secret (or none) cannot join it,
//! and a context token the cluster did not sign is refused with 400.

mod common;

use common::{free_port, http, start_dev, BIN};
use ringkv_core::auth::{ClusterKey, ClusterSecret};
use ringkv_core::key::ObjectKey;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Starts `serve` joining through `seed` with `secret` (None: none at all)
/// and returns how it ended.
fn join_with(seed: u16, cluster: &str, secret: Option<&str>, dir: &Path) -> Output {
    let mut serve = Command::new(BIN);
    serve
        .args([
            "serve",
            "--id=n9",
            &format!("--cluster={cluster}"),
            &format!("--http=127.0.0.1:{}", free_port()),
            &format!("--rpc=127.0.0.1:{}", free_port()),
            &format!("--seed=127.0.0.1:{seed}"),
        ])
        .arg(format!("--data-dir={}", dir.display()))
        .env("RINGKV_LOG", "error")
        .env_remove("RINGKV_SECRET")
        .stdin(Stdio::null());
    if let Some(s) = secret {
        serve.env("RINGKV_SECRET", s);
    }
    serve.output().unwrap()
}

fn stop(mut dev: Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(dev.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while dev.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "dev did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_serve_without_the_dev_secret_cannot_join_and_a_forged_context_is_400() {
    let dir = tempfile::tempdir().unwrap();
    let (dev, http_base, rpc_base) = start_dev(dir.path(), 1);
    let secret = std::fs::read(common::dev_secret_file(dir.path(), http_base)).unwrap();
    let cluster_info = http(http_base, "GET", "/v1/cluster", &[], b"")
        .unwrap()
        .json();
    let cluster = cluster_info["cluster"].as_str().unwrap().to_string();

    let cases = [
        (
            Some("somebody else's secret, long enough"),
            "did not prove the cluster secret",
        ),
        (None, "without a cluster secret (open mode)"),
    ];
    for (i, (theirs, says)) in cases.into_iter().enumerate() {
        let started = Instant::now();
        let out = join_with(
            rpc_base,
            &cluster,
            theirs,
            &dir.path().join(format!("n9-{i}")),
        );
        assert!(!out.status.success());
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(
            why.contains("refused this node") && why.contains(says),
            "{why}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "it stopped at once"
        );
    }
    let members = http(http_base, "GET", "/v1/cluster", &[], b"")
        .unwrap()
        .text();
    assert!(!members.contains("n9"), "n9 never got in: {members}");

    // Contexts: the cluster's own round-trips; edited or foreign ones are 400.
    let put = http(http_base, "PUT", "/v1/kv/b/k", &[], b"v1").unwrap();
    assert_eq!(put.status, 204);
    let own = put.header("x-ringkv-context").unwrap().to_string();
    let again = http(
        http_base,
        "PUT",
        "/v1/kv/b/k",
        &[("x-ringkv-context", &own)],
        b"v2",
    )
    .unwrap();
    assert_eq!(again.status, 204, "{}", again.text());
    let key = ObjectKey::new("b", bytes::Bytes::from_static(b"k"), 1024).unwrap();
    let clock = ringkv_core::context::decode_context(
        &own,
        8192,
        key.position(),
        &ClusterKey::from_secret(&ClusterSecret::new(&secret).unwrap()),
    )
    .expect("signed with the run's secret");
    let stranger = ClusterKey::from_secret(&ClusterSecret::new(b"a stranger's secret!").unwrap());
    let foreign = ringkv_core::context::encode_context(&clock, key.position(), &stranger);
    let mut edited = own.clone().into_bytes();
    let middle = edited.len() / 2;
    edited[middle] = if edited[middle] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    for token in [foreign, edited] {
        let refused = http(
            http_base,
            "PUT",
            "/v1/kv/b/k",
            &[("x-ringkv-context", &token)],
            b"v3",
        )
        .unwrap();
        assert_eq!(refused.status, 400, "{token}");
        let body = refused.json();
        assert_eq!(body["error"]["code"], "bad_context", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("not issued by this cluster"), "{message}");
    }
    stop(dev);
}
