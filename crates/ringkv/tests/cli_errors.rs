//! End-to-end: the CLI's failures say what to do, and its output serves a
//! script (`get --raw`, `get --json`), against real `serve` processes.

mod common;

use common::{free_port, Cluster, BIN};
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `ringkv args` with `stdin` piped in.
fn ringkv(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // The CLI may exit without reading (e.g. a refused value): ignore EPIPE.
    let _ = pipe.write_all(stdin);
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = ringkv(args, stdin);
    assert!(
        out.status.success(),
        "ringkv {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn fails(args: &[&str], stdin: &[u8]) -> String {
    let out = ringkv(args, stdin);
    assert!(!out.status.success(), "ringkv {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn nothing_listening_says_refused_and_what_to_check() {
    let node = format!("--node=http://127.0.0.1:{}", free_port());
    let err = fails(&["get", "demo", "k", &node], b"");
    assert!(
        err.contains(&node["--node=".len()..])
            && err.contains("connection refused")
            && err.contains("Is the node running")
            && err.contains("HTTP address"),
        "{err}"
    );
}

#[test]
fn cli_against_one_node() {
    let cluster = Cluster::start(1, &["--n=1", "--r=1", "--w=1"]);
    let n = &cluster.nodes[0];
    let node = format!("--node={}", n.url());
    let node = node.as_str();

    // An RPC port is not an HTTP server: the message says to use the HTTP one.
    let rpc = format!("--node=http://127.0.0.1:{}", n.rpc);
    let err = fails(&["get", "demo", "k", &rpc], b"");
    assert!(
        err.contains(&format!("127.0.0.1:{}", n.rpc))
            && err.contains("RPC port")
            && err.contains("serve --http"),
        "{err}"
    );

    // A value over the node's limit (1 MiB) is the node's 413, every time.
    let big = vec![b'x'; 20 << 20];
    for attempt in 0..20 {
        let err = fails(&["put", "big", "d", node], &big);
        assert!(
            err.contains("413") && err.contains("value_too_large"),
            "attempt {attempt}: {err}"
        );
    }

    // An empty value only when asked for.
    let err = fails(&["put", "mykey", "myvalue", node], b"");
    assert!(
        err.contains("empty value") && err.contains("--empty"),
        "{err}"
    );
    let err = fails(&["put", "demo", "e", "", node], b"");
    assert!(err.contains("--empty"), "{err}");
    let out = String::from_utf8(ok(&["get", "mykey", "myvalue", node], b"")).unwrap();
    assert_eq!(out, "not found\n");
    ok(&["put", "demo", "e", "--empty", node], b"");
    assert_eq!(ok(&["get", "demo", "e", "--raw", node], b""), b"");

    // --raw gives the exact bytes of a binary value, even one that looks
    // like the default output's base64 form.
    let binary: Vec<u8> = (0..=255u8).chain(*b"base64:AAAA\n").collect();
    ok(&["put", "demo", "bin", node], &binary);
    assert_eq!(ok(&["get", "demo", "bin", "--raw", node], b""), binary);
    ok(&["put", "demo", "fake", "base64:AAAA", node], b"");
    assert_eq!(
        ok(&["get", "demo", "fake", "--raw", node], b""),
        b"base64:AAAA"
    );

    // --json is the node's JSON form.
    let out = ok(&["get", "demo", "fake", "--json", node], b"");
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["values"], serde_json::json!(["YmFzZTY0OkFBQUE="]));
    assert!(json["context"].as_str().is_some_and(|c| !c.is_empty()));
    let out = ok(&["get", "demo", "nothing", "--json", node], b"");
    assert_eq!(out, b"{\"context\":null,\"values\":[]}\n");

    // --raw refuses to guess between siblings.
    ok(&["put", "demo", "sib", "one", node], b"");
    ok(&["put", "demo", "sib", "two", node], b"");
    let err = fails(&["get", "demo", "sib", "--raw", node], b"");
    assert!(
        err.contains("2 siblings") && err.contains("--sibling"),
        "{err}"
    );
    let first = ok(
        &["get", "demo", "sib", "--raw", "--sibling", "1", node],
        b"",
    );
    let second = ok(
        &["get", "demo", "sib", "--raw", "--sibling", "2", node],
        b"",
    );
    let mut both = [first, second];
    both.sort();
    assert_eq!(both, [b"one".to_vec(), b"two".to_vec()]);

    // delete takes --r like get.
    let out = String::from_utf8(ok(&["delete", "demo", "sib", "--r", "1", node], b"")).unwrap();
    assert!(out.starts_with("context: "), "{out}");
    let out = String::from_utf8(ok(&["get", "demo", "sib", "--r", "1", node], b"")).unwrap();
    assert!(out.contains("deleted (tombstone)"), "{out}");
}

/// Needs the node to send each sibling's write time in its JSON form
/// (`"written_ms": [...]`, parallel to `values`); the CLI already prints it.
#[test]
fn get_shows_each_siblings_write_time() {
    let cluster = Cluster::start(1, &["--n=1", "--r=1", "--w=1"]);
    let node = format!("--node={}", cluster.nodes[0].url());
    ok(&["put", "demo", "t", "one", &node], b"");
    let out = String::from_utf8(ok(&["get", "demo", "t", &node], b"")).unwrap();
    assert!(out.contains("written: 20"), "{out}");
}

/// `ringkv put mykey myvalue` (bucket forgotten) in a terminal must not sit
/// waiting for a value on stdin: with stdin a pseudo-terminal it fails at
/// once, says how to pass a value, and writes nothing.
#[test]
fn put_without_a_value_in_a_terminal_refuses_at_once() {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty(3) fills two fds this test owns; null name/termios/winsize are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    // SAFETY: `slave` is a valid fd from openpty, owned from here on by the File.
    let tty = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(slave) };
    let started = std::time::Instant::now();
    let out = Command::new(BIN)
        .args(["put", "mykey", "myvalue", "--node", "http://127.0.0.1:1"])
        .stdin(Stdio::from(tty))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    // SAFETY: closing the master fd this test opened.
    unsafe { libc::close(master) };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "it did not wait on the terminal"
    );
    assert!(
        stderr.contains("no value given") && stderr.contains("ringkv put BUCKET KEY [VALUE]"),
        "{stderr}"
    );
}
