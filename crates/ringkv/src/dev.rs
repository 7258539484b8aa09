//! `ringkv dev`: a local cluster of separate `ringkv serve` processes, made
//! for trying failures.
//!
//! Node i (1-based) listens on HTTP 127.0.0.1:(http_base+i-1) and RPC
//! 127.0.0.1:(rpc_base+i-1) and keeps its data in `<data-dir>/n<i>`. N is
//! min(3, nodes) and R = W = a majority of N.
//!
//! Before starting anything, `dev` takes an exclusive lock on
//! `<data-dir>/dev.lock` and checks that every port is free, so a second
//! `dev` fails at once with one line naming the directory or port. Every run
//! gets its own cluster name, and a node counts as up only when the server
//! answering on its port reports that name: another cluster on the same
//! ports can never make this one look ready.
//!
//! Every run also gets its own cluster secret: 32 random bytes, hex-encoded,
//! written to `<data-dir>/secret` (mode 0600) and passed to each node with
//! `--secret-file`, so nodes of the run let in only each other and clients
//! given that file (`RINGKV_SECRET=$(cat <data-dir>/secret)`).
//!
//! Once every node is up, `dev` prints each node's pid and supervises: a node
//! that exits (a crash, `kill -9`) is reported with its exit code or signal
//! while the others keep serving, and is started again after a backoff that
//! doubles per quick failure, at most `--max-restarts` times in a row
//! (`--no-restart` turns this off). Each restart prints a status line of
//! every node's pid. On Ctrl-C or SIGTERM `dev` sends SIGTERM to every node,
//! waits for them to exit, and exits itself. It never kills anything it did
//! not start.

mod port_owner;
mod preflight;

use anyhow::{bail, Context, Result};
use clap::Args;
use preflight::{check_args, check_ports_free, is_our_node, lock_data_dir, run_cluster_name};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Default for `--max-restarts`: quick restarts of one node in a row before
/// `dev` leaves it stopped.
pub const DEFAULT_MAX_RESTARTS: u32 = 5;
/// Wait before the first restart of a node; doubles per quick restart.
pub const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait before a restart.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(8);
/// A node that ran this long before it exited starts a fresh restart count.
pub const STABLE_UPTIME: Duration = Duration::from_secs(60);
/// Longest time the nodes get to answer health checks after starting.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time the nodes get to exit after SIGTERM before they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Number of nodes (1-64, `MAX_NODES`).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Parent directory of the nodes' data directories.
    #[arg(long, default_value = "ringkv-dev")]
    pub data_dir: PathBuf,
    /// First HTTP port; node i uses base + i - 1.
    #[arg(long, default_value_t = 8001)]
    pub http_base: u16,
    /// First RPC port; node i uses base + i - 1.
    #[arg(long, default_value_t = 9001)]
    pub rpc_base: u16,
    /// Passed to every node: `always` or `periodic:<ms>`.
    #[arg(long, default_value = "always")]
    pub fsync: String,
    /// Leave a node that exits stopped instead of starting it again.
    #[arg(long)]
    pub no_restart: bool,
    /// Quick restarts of one node in a row before it is left stopped.
    #[arg(long, default_value_t = DEFAULT_MAX_RESTARTS)]
    pub max_restarts: u32,
}

fn node_args(args: &DevArgs, cluster: &str, i: u16) -> Vec<String> {
    let n = args.nodes.min(3);
    let majority = n / 2 + 1;
    let mut out = vec![
        "serve".to_string(),
        format!("--id=n{i}"),
        format!("--http=127.0.0.1:{}", args.http_base + i - 1),
        format!("--rpc=127.0.0.1:{}", args.rpc_base + i - 1),
        format!(
            "--data-dir={}",
            args.data_dir.join(format!("n{i}")).display()
        ),
        format!("--cluster={cluster}"),
        format!("--secret-file={}", secret_path(args).display()),
        format!("--fsync={}", args.fsync),
        format!("--n={n}"),
        format!("--r={majority}"),
        format!("--w={majority}"),
    ];
    for j in (1..=args.nodes).filter(|j| *j != i) {
        out.push(format!("--peer=n{j}=127.0.0.1:{}", args.rpc_base + j - 1));
    }
    out
}

/// Where a run's cluster secret is kept.
fn secret_path(args: &DevArgs) -> PathBuf {
    args.data_dir.join("secret")
}

/// Writes a fresh random secret for this run, readable by its owner only.
fn write_secret(path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for the secret: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // Replace, never reuse: a file left by an earlier run (maybe with other
    // permissions) is removed first.
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing the cluster secret {}", path.display()))?;
    writeln!(file, "{hex}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// How a process ended, for a person: `exit code 1` or `signal 9 (SIGKILL)`.
fn describe_exit(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(sig) => format!("signal {sig} ({})", signal_name(sig)),
        None => status.to_string(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

/// What to do about a node that exited after running for `uptime`, having
/// been restarted `in_a_row` times in a row before: the new count, and the
/// wait before the restart (`None`: leave it stopped). A node that ran for
/// [`STABLE_UPTIME`] starts counting afresh; the wait doubles per quick
/// restart from [`RESTART_BACKOFF_MIN`] up to [`RESTART_BACKOFF_MAX`].
fn restart_decision(in_a_row: u32, uptime: Duration, max: u32) -> (u32, Option<Duration>) {
    let in_a_row = if uptime >= STABLE_UPTIME { 0 } else { in_a_row };
    if in_a_row >= max {
        return (in_a_row, None);
    }
    let wait = RESTART_BACKOFF_MIN
        .saturating_mul(1u32 << in_a_row.min(16))
        .min(RESTART_BACKOFF_MAX);
    (in_a_row + 1, Some(wait))
}

/// One node as `dev` runs it.
struct Slot {
    id: u16,
    child: Option<Child>,
    pid: Option<u32>,
    started: Instant,
    restarts_in_a_row: u32,
    restarts_total: u32,
    restart_at: Option<Instant>,
}

fn spawn(exe: &Path, args: &DevArgs, cluster: &str, i: u16) -> Result<Child> {
    Command::new(exe)
        .args(node_args(args, cluster, i))
        .stdin(Stdio::null())
        // Its own process group: Ctrl-C in the terminal reaches `dev` only,
        // which then stops the nodes in order (no race with a node that
        // exits on SIGINT by itself and would look like a crash).
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting node n{i}"))
}

impl Slot {
    fn start(&mut self, exe: &Path, args: &DevArgs, cluster: &str) -> Result<()> {
        let child = spawn(exe, args, cluster, self.id)?;
        self.pid = child.id();
        self.child = Some(child);
        self.started = Instant::now();
        self.restart_at = None;
        Ok(())
    }

    fn pid_text(&self) -> String {
        self.pid.map_or("?".into(), |p| p.to_string())
    }
}

/// `status: n1 pid 101 · n2 pid 230 (restarted 1x) · n3 down`.
fn status_line(slots: &[Slot]) -> String {
    let parts: Vec<String> = slots
        .iter()
        .map(|s| {
            let mut part = match (&s.child, s.restart_at) {
                (Some(_), _) => format!("n{} pid {}", s.id, s.pid_text()),
                (None, Some(_)) => format!("n{} restarting", s.id),
                (None, None) => format!("n{} down", s.id),
            };
            if s.restarts_total > 0 {
                part.push_str(&format!(" (restarted {}x)", s.restarts_total));
            }
            part
        })
        .collect();
    format!("status: {}", parts.join(" · "))
}

/// SIGTERM to a node this process started and has not reaped.
fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on a pid this process spawned and has not reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
}

/// Waits until every node answers as a member of `cluster`. A node that exits
/// meanwhile fails the start at once, naming the node and how it exited (its
/// own error is on stderr just above).
async fn wait_started(slots: &mut [Slot], args: &DevArgs, cluster: &str) -> Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut up = vec![false; slots.len()];
    loop {
        for (k, slot) in slots.iter_mut().enumerate() {
            if let Some(child) = slot.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    slot.child = None;
                    bail!(
                        "n{} (pid {}) exited while starting ({}); its error is above",
                        slot.id,
                        slot.pid_text(),
                        describe_exit(&status)
                    );
                }
            }
            if !up[k] {
                up[k] = is_our_node(args.http_base + slot.id - 1, cluster).await;
            }
        }
        if up.iter().all(|u| *u) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let late: Vec<String> = (0..slots.len())
                .filter(|k| !up[*k])
                .map(|k| format!("n{}", slots[k].id))
                .collect();
            bail!(
                "{} did not answer within {STARTUP_TIMEOUT:?}",
                late.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_banner(args: &DevArgs, slots: &[Slot]) {
    let url = |i: u16| format!("http://127.0.0.1:{}", args.http_base + i - 1);
    println!(
        "ringkv dev cluster ready: {} nodes, data in {}",
        args.nodes,
        args.data_dir.display()
    );
    for s in slots {
        println!(
            "  n{}  pid {}  http {}  rpc 127.0.0.1:{}",
            s.id,
            s.pid_text(),
            url(s.id),
            args.rpc_base + s.id - 1
        );
    }
    println!(
        "try:  curl -X PUT --data-binary hello {}/v1/kv/demo/greeting",
        url(1)
    );
    println!("      curl -i {}/v1/kv/demo/greeting", url(args.nodes));
    if args.no_restart {
        println!("A node that exits stays stopped (--no-restart); the others keep serving.");
    } else {
        println!(
            "A node that exits is restarted (at most {} times in a row); the others keep serving.",
            args.max_restarts
        );
    }
    println!("Ctrl-C stops the cluster.");
}

/// Resolves with the index and exit status of the first running node to
/// exit; never, while none runs.
async fn first_exit(slots: &mut [Slot]) -> (usize, std::io::Result<ExitStatus>) {
    let waits: Vec<_> = slots
        .iter_mut()
        .enumerate()
        .filter_map(|(k, s)| {
            s.child
                .as_mut()
                .map(|c| Box::pin(async move { (k, c.wait().await) }))
        })
        .collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(waits).await.0
}

enum Event {
    Stop,
    Exited(usize, std::io::Result<ExitStatus>),
    RestartDue,
}

/// Reports a node's exit and schedules its restart, if any.
fn on_exit(slot: &mut Slot, status: std::io::Result<ExitStatus>, args: &DevArgs) {
    let how = match &status {
        Ok(s) => describe_exit(s),
        Err(e) => format!("unknown status: {e}"),
    };
    slot.child = None;
    let uptime = slot.started.elapsed();
    let head = format!(
        "n{} (pid {}) exited: {how} after {:.1}s; the other nodes keep serving",
        slot.id,
        slot.pid_text(),
        uptime.as_secs_f64()
    );
    if args.no_restart {
        println!("{head}; not restarting it (--no-restart)");
        return;
    }
    let (in_a_row, wait) = restart_decision(slot.restarts_in_a_row, uptime, args.max_restarts);
    slot.restarts_in_a_row = in_a_row;
    match wait {
        Some(wait) => {
            println!(
                "{head}; restarting it in {wait:?} (restart {in_a_row} of {} in a row)",
                args.max_restarts
            );
            slot.restart_at = Some(Instant::now() + wait);
        }
        None => println!(
            "{head}; not restarting it: it exited {} times in a row within {STABLE_UPTIME:?} (--max-restarts)",
            in_a_row + 1
        ),
    }
}

/// Sends SIGTERM to every running node and waits for them (killing any that
/// take longer than [`STOP_TIMEOUT`]).
async fn stop_all(slots: &mut [Slot]) {
    slots
        .iter()
        .filter_map(|s| s.child.as_ref())
        .for_each(terminate);
    let deadline = Instant::now() + STOP_TIMEOUT;
    for slot in slots.iter_mut() {
        if let Some(child) = slot.child.as_mut() {
            if tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            {
                eprintln!(
                    "n{} did not stop within {STOP_TIMEOUT:?}; killing it",
                    slot.id
                );
                let _ = child.kill().await;
            }
        }
    }
}

pub async fn run(args: DevArgs) -> Result<()> {
    check_args(&args)?;
    let _lock = lock_data_dir(&args.data_dir)?;
    check_ports_free(&args)?;
    let exe = std::env::current_exe().context("finding the ringkv executable")?;
    let cluster = run_cluster_name();
    write_secret(&secret_path(&args))?;
    let now = Instant::now();
    let mut slots: Vec<Slot> = (1..=args.nodes)
        .map(|id| Slot {
            id,
            child: None,
            pid: None,
            started: now,
            restarts_in_a_row: 0,
            restarts_total: 0,
            restart_at: None,
        })
        .collect();
    let mut stop = Box::pin(crate::serve::terminated());
    let started = async {
        for slot in slots.iter_mut() {
            slot.start(&exe, &args, &cluster)?;
        }
        wait_started(&mut slots, &args, &cluster).await
    };
    let outcome = tokio::select! {
        r = started => r,
        _ = &mut stop => Err(anyhow::anyhow!("stopped before the cluster was up")),
    };
    if let Err(e) = outcome {
        stop_all(&mut slots).await;
        return Err(e);
    }
    print_banner(&args, &slots);
    loop {
        let next_restart = slots.iter().filter_map(|s| s.restart_at).min();
        let event = tokio::select! {
            _ = &mut stop => Event::Stop,
            (k, status) = first_exit(&mut slots) => Event::Exited(k, status),
            _ = tokio::time::sleep_until(next_restart.unwrap_or(now)), if next_restart.is_some() => Event::RestartDue,
        };
        match event {
            Event::Stop => break,
            Event::Exited(k, status) => on_exit(&mut slots[k], status, &args),
            Event::RestartDue => {
                let now = Instant::now();
                for slot in slots
                    .iter_mut()
                    .filter(|s| s.restart_at.is_some_and(|t| t <= now))
                {
                    match slot.start(&exe, &args, &cluster) {
                        Ok(()) => {
                            slot.restarts_total += 1;
                            println!("n{} restarted as pid {}", slot.id, slot.pid_text());
                        }
                        Err(e) => {
                            slot.restart_at = None;
                            println!("n{} could not be restarted: {e:#}", slot.id);
                        }
                    }
                }
                println!("{}", status_line(&slots));
            }
        }
        if slots
            .iter()
            .all(|s| s.child.is_none() && s.restart_at.is_none())
        {
            bail!("every node has exited and none will be restarted; the cluster is stopped");
        }
    }
    stop_all(&mut slots).await;
    println!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Default dev arguments with `nodes` nodes (shared with `preflight`'s tests).
    pub(super) fn args(nodes: u16) -> DevArgs {
        DevArgs {
            nodes,
            data_dir: "d".into(),
            http_base: 8001,
            rpc_base: 9001,
            fsync: "always".into(),
            no_restart: false,
            max_restarts: DEFAULT_MAX_RESTARTS,
        }
    }

    #[test]
    fn node_arguments_name_every_peer_the_run_cluster_and_a_majority_quorum() {
        let a = node_args(&args(3), "c1", 2);
        for want in [
            "--id=n2",
            "--http=127.0.0.1:8002",
            "--peer=n1=127.0.0.1:9001",
            "--peer=n3=127.0.0.1:9003",
            "--w=2",
            "--cluster=c1",
            "--secret-file=d/secret",
        ] {
            assert!(a.contains(&want.to_string()), "{want} in {a:?}");
        }
        assert!(node_args(&args(1), "c", 1).contains(&"--n=1".to_string()));
    }

    #[test]
    fn a_run_secret_is_random_long_enough_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_secret(&path).unwrap();
        let first = std::fs::read(&path).unwrap();
        assert!(ringkv_core::auth::ClusterSecret::new(&first).is_ok());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        write_secret(&path).unwrap();
        assert_ne!(
            std::fs::read(&path).unwrap(),
            first,
            "a new run, a new secret"
        );
    }

    #[test]
    fn exits_are_described_by_code_or_signal() {
        assert_eq!(describe_exit(&ExitStatus::from_raw(1 << 8)), "exit code 1");
        assert_eq!(
            describe_exit(&ExitStatus::from_raw(9)),
            "signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe_exit(&ExitStatus::from_raw(15)),
            "signal 15 (SIGTERM)"
        );
    }

    #[test]
    fn restarts_back_off_and_stop_after_the_limit_unless_the_node_ran_long() {
        let quick = Duration::from_secs(1);
        let mut n = 0;
        let mut waits = Vec::new();
        while let (next, Some(wait)) = restart_decision(n, quick, DEFAULT_MAX_RESTARTS) {
            n = next;
            waits.push(wait);
        }
        assert_eq!(waits.len() as u32, DEFAULT_MAX_RESTARTS);
        assert_eq!(waits[0], RESTART_BACKOFF_MIN);
        assert_eq!(waits[1], RESTART_BACKOFF_MIN * 2);
        assert!(waits.iter().all(|w| *w <= RESTART_BACKOFF_MAX));
        assert_eq!(
            restart_decision(40, quick, 100).1,
            Some(RESTART_BACKOFF_MAX)
        );
        assert_eq!(
            restart_decision(n, STABLE_UPTIME, DEFAULT_MAX_RESTARTS),
            (1, Some(RESTART_BACKOFF_MIN))
        );
        assert_eq!(restart_decision(0, quick, 0), (0, None));
    }
}
