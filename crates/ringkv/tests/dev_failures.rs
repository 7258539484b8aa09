//! End-to-end: `ringkv dev` as a place to try failures, and the start-up
//! errors a user meets first (a second `dev`, `serve` without its flags).
//!
//! Each test starts real processes on ports picked free and bounds every
//! wait, so a failure ends the test instead of hanging it.

mod common;

use common::{free_port, http as request, BIN};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A running `ringkv dev` whose stdout lines arrive on `lines`. Dropping it
/// stops dev (SIGTERM, so it stops its nodes), and kills it if it hangs.
struct Dev {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    http: u16,
    data_dir: PathBuf,
    pids: Vec<u32>,
}

fn sigterm(pid: u32) {
    // SAFETY: kill(2) on a pid this test started (dev or one of its nodes).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

fn sigkill(pid: u32) {
    // SAFETY: as above.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

impl Dev {
    /// Starts a 3-node dev cluster in `dir` with `extra` flags and waits for
    /// its ready banner; retries on fresh ports if one was taken.
    fn start(dir: &Path, extra: &[&str]) -> Dev {
        for attempt in 0..5 {
            let (http, rpc) = (free_port(), free_port());
            let data_dir = dir.join(format!("attempt-{attempt}"));
            let mut child = Command::new(BIN)
                .args(["dev", "--nodes", "3"])
                .arg(format!("--http-base={http}"))
                .arg(format!("--rpc-base={rpc}"))
                .arg("--data-dir")
                .arg(&data_dir)
                .args(extra)
                .env("RINGKV_LOG", "error")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let (tx, lines) = channel();
            let out = BufReader::new(child.stdout.take().unwrap());
            std::thread::spawn(move || {
                for line in out.lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut dev = Dev {
                child,
                lines,
                seen: Vec::new(),
                http,
                data_dir,
                pids: Vec::new(),
            };
            if dev.wait_ready() {
                return dev;
            }
        }
        panic!("could not start a dev cluster in 5 attempts");
    }

    /// Reads the banner's pids; false if dev exited first (a port was taken).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(pid) = line.trim_start().split("  pid ").nth(1) {
                        let pid = pid.split_whitespace().next().unwrap();
                        self.pids.push(pid.parse().unwrap());
                    }
                    if line.starts_with("Ctrl-C stops the cluster") {
                        assert_eq!(self.pids.len(), 3, "{:?}", self.seen);
                        return true;
                    }
                }
                Err(_) => {
                    if self.child.try_wait().unwrap().is_some() {
                        return false;
                    }
                }
            }
        }
        panic!("dev printed no banner within 60 s: {:?}", self.seen);
    }

    /// The next stdout line containing `want` (at most 30 s away).
    fn expect_line(&mut self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(want) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("dev never printed {want:?}; it printed {:?}", self.seen);
    }

    /// SIGTERM, and whether dev then exited 0 (within 30 s).
    fn stop(mut self) -> bool {
        sigterm(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "dev did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if self.child.try_wait().unwrap_or(None).is_some() {
            return;
        }
        sigterm(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap_or(None).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.pids.iter().copied().for_each(sigkill);
    }
}

/// A put on one survivor and a get of it from the other answer.
fn survivors_serve(dev: &Dev, a: u16, b: u16, key: &str) {
    let path = format!("/v1/kv/demo/{key}");
    let put = request(dev.http + a, "PUT", &path, &[], b"still here").unwrap();
    assert_eq!(put.status, 204, "{}", put.text());
    let get = request(dev.http + b, "GET", &path, &[], b"").unwrap();
    assert_eq!(
        (get.status, get.text().as_str()),
        (200, "still here"),
        "{get:?}"
    );
}

/// Runs `ringkv args` to its end, killing it after `limit`.
fn run_bounded(args: &[&str], limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env("RINGKV_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("ringkv {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), started.elapsed())
}

#[test]
fn a_killed_dev_node_is_reported_and_restarted_while_the_others_serve() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path(), &[]);
    let victim = dev.pids[1];
    sigkill(victim);
    let exited = dev.expect_line("n2 (pid ");
    assert!(
        exited.contains(&format!("(pid {victim}) exited: signal 9 (SIGKILL)"))
            && exited.contains("restarting it"),
        "{exited}"
    );
    survivors_serve(&dev, 0, 2, "after-kill");
    let restarted = dev.expect_line("n2 restarted as pid ");
    let new_pid: u32 = restarted.rsplit(' ').next().unwrap().parse().unwrap();
    assert_ne!(new_pid, victim);
    let status = dev.expect_line("status: ");
    assert!(
        status.contains(&format!("n2 pid {new_pid} (restarted 1x)")),
        "{status}"
    );
    common::wait_healthy(dev.http + 1);
    let get = request(dev.http + 1, "GET", "/v1/kv/demo/after-kill", &[], b"").unwrap();
    assert_eq!(get.status, 200, "the restarted node serves: {get:?}");
    assert!(dev.stop(), "dev exits 0 on SIGTERM after a restart");
}

#[test]
fn with_no_restart_a_killed_dev_node_stays_down_and_the_others_serve() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path(), &["--no-restart"]);
    sigkill(dev.pids[2]);
    let exited = dev.expect_line("n3 (pid ");
    assert!(
        exited.contains("signal 9 (SIGKILL)")
            && exited.contains("not restarting it (--no-restart)"),
        "{exited}"
    );
    survivors_serve(&dev, 0, 1, "no-restart");
    // Longer than the first restart backoff (500 ms): still nothing there.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", dev.http + 2)).is_err(),
        "n3 was restarted despite --no-restart"
    );
    assert!(dev.stop());
}

#[test]
fn a_second_dev_on_taken_ports_or_the_same_data_dir_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Dev::start(dir.path(), &[]);
    let other = dir.path().join("other");
    let (out, took) = run_bounded(
        &[
            "dev",
            &format!("--http-base={}", first.http),
            &format!("--rpc-base={}", first.http + 100),
            "--data-dir",
            other.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line, not one per node: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "port 127.0.0.1:{} (HTTP of n1) is taken",
            first.http
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("taken by pid {}", first.pids[0])) && stderr.contains("serve"),
        "names the process holding the port (the first dev's n1): {stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ready"));

    // The same data dir on free ports: the lock names the running dev.
    let (out, took) = run_bounded(
        &[
            "dev",
            &format!("--http-base={}", free_port()),
            &format!("--rpc-base={}", free_port()),
            "--data-dir",
            first.data_dir.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && took < Duration::from_secs(5),
        "{stderr}"
    );
    assert!(
        stderr.contains("is in use by another ringkv dev (pid ")
            && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    assert!(first.stop(), "the first dev is unharmed");
}

#[test]
fn serve_names_every_missing_required_flag_at_once() {
    let (out, _) = run_bounded(&["serve", "--http=127.0.0.1:1"], Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        stderr.trim(),
        "error: --id, --rpc, --data-dir are required (or give --config FILE)"
    );
}
