//! End-to-end: the README's first command (`ringkv dev`) and the client
//! commands against it.

mod common;

use common::{start_dev, BIN};
use std::process::Command;
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ringkv {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dev_cluster_serves_the_cli_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut dev, http, _) = start_dev(dir.path(), 3);
    let node = |i: u16| format!("--node=http://127.0.0.1:{}", http + i);
    let out = run(&["put", "demo", "greeting", "hello", &node(0)]);
    assert!(out.starts_with("context: "), "{out}");
    run(&["put", "demo", "greeting", "bonjour", &node(1)]);
    let out = run(&["get", "demo", "greeting", &node(2)]);
    assert!(
        out.contains("siblings: 2") && out.contains("hello") && out.contains("bonjour"),
        "{out}"
    );
    let ctx = out
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("context: ")
        .to_string();
    run(&[
        "put",
        "demo",
        "greeting",
        "hello/bonjour",
        "--context",
        &ctx,
        &node(0),
    ]);
    let out = run(&["get", "demo", "greeting", &node(1)]);
    assert!(out.ends_with("hello/bonjour\n"), "{out}");
    run(&["delete", "demo", "greeting", &node(2)]);
    assert!(run(&["get", "demo", "greeting", &node(0)]).contains("deleted"));
    let bench = run(&[
        "bench",
        "--ops",
        "300",
        "--concurrency",
        "4",
        "--read-ratio",
        "0.5",
        "--keys",
        "20",
        "--quiet",
        &node(0),
    ]);
    assert!(
        bench.contains("p99") && bench.contains("errors 0"),
        "{bench}"
    );

    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(dev.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = dev.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "dev did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", http)).is_err(),
        "nodes stopped with the dev command"
    );
}
