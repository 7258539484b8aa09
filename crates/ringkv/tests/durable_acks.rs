//! fjall durability, end to end: every acknowledged put was covered by an
//! `fdatasync` of the journal that holds it.
//!
//! Mechanism: a real single-node `ringkv serve` (N = R = W = 1, so the node's
//! own fsync is the whole acknowledgement) runs under `strace -f -ttt -T -yy`
//! (see `fsync_trace/mod.rs` for the flags), tracing `write`, `writev`,
//! `pwrite64`, `fdatasync`, `fsync`, `sendto` and `sendmsg`. The client makes
//! [`PUTS`] sequential puts, each on its own connection, each value carrying
//! a unique marker. The trace is then parsed (`fsync_trace/strace.rs`) and
//! checked (`fsync_trace/acks.rs`): for every put, the first journal write
//! holding its marker, then a sync of that same `.jnl` file that started
//! after the write returned and ended before the response, then the first
//! send on the put's connection. Syscalls are what the kernel was asked to
//! do, so this checks ringkv and fjall together, not a model of them.
//!
//! - Under `--fsync always` the check must find no violation.
//! - Under `--fsync periodic:60000` (acknowledge at once, sync every
//!   minute) it must report every put as acknowledged before its sync: the
//!   proof that the check can fail against real fjall.
//!
//! Needs strace (`.ci/run` installs it) and ptrace; without strace the tests
//! fail, unless `RINGKV_SKIP_STRACE=1` outside CI. Run:
//! `cargo test -p ringkv --test durable_acks -- --nocapture`.

mod common;
mod fsync_trace;

use common::{http, plan};
use fsync_trace::acks::{check, Put, Violation};
use fsync_trace::{strace_available, Traced};

/// Sequential puts per run.
const PUTS: usize = 20;

/// Runs [`PUTS`] puts on a traced node with `--fsync=<fsync>` and returns
/// what the check found.
fn traced_puts(fsync: &str) -> Vec<Violation> {
    let dir = tempfile::tempdir().unwrap();
    let trace_file = dir.path().join("strace.txt");
    let flags = ["--n=1", "--r=1", "--w=1", &format!("--fsync={fsync}")].map(String::from);
    let node = plan(1, dir.path(), |_| flags.to_vec()).remove(0);
    let mut traced = Traced::start(node, &trace_file);
    let node = &traced.0;
    let run = std::process::id();
    let mut puts = Vec::new();
    for i in 0..PUTS {
        let marker = format!("durable-ack-probe-{run}-{i:04}");
        let reply = http(
            node.http,
            "PUT",
            &format!("/v1/kv/probe/k{i}"),
            &[],
            marker.as_bytes(),
        )
        .expect("put");
        assert_eq!(reply.status, 204, "put {i}: {}", reply.text());
        puts.push(Put {
            marker,
            client_port: reply.local_port,
        });
    }
    let (data_dir, http_port) = (node.data_dir.clone(), node.http);
    traced.stop();
    let trace = std::fs::read_to_string(&trace_file).expect("the trace");
    let calls = fsync_trace::strace::parse(&trace);
    let data_dir = std::fs::canonicalize(&data_dir).unwrap();
    let violations = check(&calls, &puts, data_dir.to_str().unwrap(), http_port);
    let journal_syncs = calls
        .iter()
        .filter(|c| c.name.contains("sync") && c.fd_target.ends_with(".jnl"))
        .count();
    eprintln!(
        "--fsync={fsync}: {PUTS} puts, {} traced calls, {journal_syncs} journal syncs, {} violations",
        calls.len(),
        violations.len()
    );
    violations
}

#[test]
fn every_acknowledged_put_was_fsynced_first_under_fsync_always() {
    if !strace_available() {
        return;
    }
    let violations = traced_puts("always");
    assert!(
        violations.is_empty(),
        "acknowledged before durable: {violations:#?}"
    );
}

#[test]
fn the_check_reports_acks_before_fsync_under_fsync_periodic() {
    if !strace_available() {
        return;
    }
    let violations = traced_puts("periodic:60000");
    let early = violations
        .iter()
        .filter(|v| matches!(v, Violation::AckedBeforeSync { .. }))
        .count();
    assert_eq!(
        early, PUTS,
        "every put is acknowledged before a sync: {violations:#?}"
    );
}
