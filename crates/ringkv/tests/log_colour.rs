//! End-to-end: a node's log written to a pipe or file carries no ANSI colour
//! codes (colour is for terminals only), so log files stay greppable.

mod common;

use common::BIN;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Command::new(BIN)
        .args([
            "serve",
            "--id=n1",
            "--http=127.0.0.1:0",
            "--rpc=127.0.0.1:0",
            "--n=1",
            "--r=1",
            "--w=1",
        ])
        .arg(format!("--data-dir={}", dir.path().join("n1").display()))
        .env("RINGKV_LOG", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = node.stderr.take().unwrap();
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(15)) {
        let started = line.contains("node started");
        seen.push(line);
        if started {
            break;
        }
    }
    let _ = node.kill();
    let _ = node.wait();
    assert!(
        seen.iter().any(|l| l.contains("node started")),
        "the node never logged its start: {seen:?}"
    );
    assert!(
        seen.iter().all(|l| !l.contains('\u{1b}')),
        "escape codes in a piped log: {seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("INFO")),
        "levels are still written: {seen:?}"
    );
}
