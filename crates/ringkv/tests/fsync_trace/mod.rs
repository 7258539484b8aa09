//! Running `ringkv serve` under strace, for the durability check in
//! `durable_acks.rs`: the tracer's flags ([`strace_wrapper`]), whether strace
//! may be missing ([`strace_available`]), and the traced node ([`Traced`]),
//! which never outlives the test. The parsing ([`strace`]) and the rule ([`acks`]) are
//! pure and tested on hand-written traces.

pub mod acks;
pub mod strace;

use crate::common::Node;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Set to skip the strace tests where strace is missing; never honoured in
/// CI (`CI` set), where a missing strace is a failure.
pub const SKIP_ENV: &str = "RINGKV_SKIP_STRACE";

/// How long the traced node may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// True when strace runs here. False only when it is missing and
/// [`SKIP_ENV`] allows skipping (outside CI); otherwise a missing strace
/// panics, so CI can never pass without running the check.
pub fn strace_available() -> bool {
    let present = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return true;
    }
    let may_skip = std::env::var_os(SKIP_ENV).is_some() && std::env::var_os("CI").is_none();
    assert!(
        may_skip,
        "strace is not installed: the fsync check cannot run. Install it \
         (`apt-get install -y strace`; .ci/run does) or, outside CI, set {SKIP_ENV}=1 to skip"
    );
    eprintln!("SKIPPED: strace is missing and {SKIP_ENV} is set");
    false
}

/// The command line that runs the node under strace, writing to `out`.
/// `-f` follows every thread, `-ttt -T` give each call's start and
/// duration in microseconds, `-yy` names each descriptor (file path, TCP
/// ports), `-s` keeps enough of each buffer to find a put's marker.
pub fn strace_wrapper(out: &Path) -> Vec<String> {
    [
        "strace",
        "-f",
        "-qq",
        "-ttt",
        "-T",
        "-yy",
        "-s",
        "8192",
        "-e",
        "trace=write,writev,pwrite64,fdatasync,fsync,sendto,sendmsg",
        "-o",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string(), "--".to_string()])
    .collect()
}

/// A node running under strace. Dropping it kills the node itself, not
/// only strace (a killed strace detaches and would leave the node running).
pub struct Traced(pub Node);

impl Traced {
    /// Starts `node` under strace, writing the trace to `out`, and waits
    /// until it answers health checks.
    pub fn start(mut node: Node, out: &Path) -> Traced {
        node.start_under(&strace_wrapper(out));
        let mut traced = Traced(node);
        assert!(traced.0.wait_started(), "the traced node did not start");
        traced
    }

    /// The node's pid: strace's only child.
    fn node_pid(&self) -> Option<i32> {
        let tracer = self.0.child.as_ref()?.id();
        let children = format!("/proc/{tracer}/task/{tracer}/children");
        std::fs::read_to_string(children)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    fn signal_node(&self, signal: i32) {
        if let Some(pid) = self.node_pid() {
            // SAFETY: kill(2) on the node strace started for this test.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// SIGTERM to the node, then waits for strace to finish the trace and
    /// exit (it exits when the node does).
    pub fn stop(&mut self) {
        self.signal_node(libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        let tracer = self.0.child.as_mut().expect("the tracer is running");
        while tracer.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the traced node did not stop within {STOP_TIMEOUT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.0.child = None;
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        self.signal_node(libc::SIGKILL);
        self.0.kill();
    }
}
