//! The checks `ringkv dev` makes before it starts a node, so that a second
//! `dev` fails at once with one line naming what is taken, and the check
//! that a node answering on a port is one this run started.
//!
//! - The data dir is locked (`flock` on `<data-dir>/dev.lock`, holding the
//!   pid of the `dev` that has it); the kernel drops the lock when that
//!   process exits, however it exits.
//! - Every HTTP and RPC port must be free on 127.0.0.1.
//! - Each run names its cluster uniquely, and a node counts as up only if
//!   its `/v1/cluster` answer carries that name.
//!
//! Nothing here starts, stops or signals a process.

use super::DevArgs;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Most nodes `dev` starts.
pub const MAX_NODES: u16 = 64;
/// Longest time one identity probe of a node's HTTP port may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most bytes of a probe answer read (the `/v1/cluster` JSON).
const PROBE_MAX_BYTES: u64 = 1 << 20;
/// The lock file in the data dir that marks it as used by a running `dev`.
const LOCK_FILE: &str = "dev.lock";

/// Checks the node count and that both port ranges fit and do not overlap.
pub fn check_args(args: &DevArgs) -> Result<()> {
    if args.nodes == 0 || args.nodes > MAX_NODES {
        bail!("--nodes must be between 1 and {MAX_NODES}");
    }
    let last = |base: u16, flag: &str| {
        base.checked_add(args.nodes - 1)
            .filter(|_| base != 0)
            .with_context(|| {
                format!(
                    "{flag} {base}: {} ports from there do not fit in 1-65535",
                    args.nodes
                )
            })
    };
    let http_last = last(args.http_base, "--http-base")?;
    let rpc_last = last(args.rpc_base, "--rpc-base")?;
    if args.http_base <= rpc_last && args.rpc_base <= http_last {
        bail!(
            "HTTP ports {}-{http_last} and RPC ports {}-{rpc_last} overlap; move --http-base or --rpc-base",
            args.http_base,
            args.rpc_base
        );
    }
    Ok(())
}

/// Takes the exclusive lock on `<dir>/dev.lock` (creating `dir`) and writes
/// this process's pid into it. The lock lasts as long as the file is open;
/// the kernel drops it when this process exits, however it exits.
pub fn lock_data_dir(dir: &Path) -> Result<File> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock(2) on a descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let by = match holder.trim() {
            "" => String::new(),
            pid => format!(" (pid {pid})"),
        };
        bail!(
            "data dir {} is in use by another ringkv dev{by}; stop it or pass another --data-dir",
            dir.display()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

/// Checks that every node's HTTP and RPC port can be bound on 127.0.0.1.
pub fn check_ports_free(args: &DevArgs) -> Result<()> {
    let mut held = Vec::new();
    for i in 1..=args.nodes {
        for (what, port) in [
            ("HTTP", args.http_base + i - 1),
            ("RPC", args.rpc_base + i - 1),
        ] {
            match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => held.push(l),
                Err(e) => {
                    let by = match super::port_owner::port_owner(port) {
                        Some((pid, cmd)) => format!("by pid {pid} ({cmd})"),
                        None => {
                            "by another process; is another ringkv dev or ringkv serve running?"
                                .into()
                        }
                    };
                    bail!(
                        "port 127.0.0.1:{port} ({what} of n{i}) is taken {by} ({e}); stop it or pass another --{}-base",
                        what.to_lowercase()
                    )
                }
            }
        }
    }
    Ok(())
}

/// A name no other cluster on this machine has: the nodes of this run
/// report it in `/v1/cluster`, and peers of another run refuse them.
pub fn run_cluster_name() -> String {
    format!(
        "ringkv-dev-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    )
}

/// Whether a `/v1/cluster` answer comes from a node of cluster `name`.
pub fn answer_is_from(answer: &str, name: &str) -> bool {
    answer.starts_with("HTTP/1.1 200") && answer.contains(&format!("\"cluster\":\"{name}\""))
}

/// Whether the server on `port` is a node of cluster `name`.
pub async fn is_our_node(port: u16, name: &str) -> bool {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"GET /v1/cluster HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        s.take(PROBE_MAX_BYTES).read_to_end(&mut answer).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Ok(answer)) if answer_is_from(&answer, name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::tests::args;

    #[test]
    fn bad_node_counts_and_port_ranges_are_refused() {
        assert!(check_args(&args(3)).is_ok());
        assert!(check_args(&args(0)).is_err());
        assert!(check_args(&args(MAX_NODES + 1)).is_err());
        assert!(check_args(&args(MAX_NODES)).is_ok());
        let high = DevArgs {
            http_base: 65535,
            ..args(3)
        };
        assert!(check_args(&high)
            .unwrap_err()
            .to_string()
            .contains("do not fit"));
        let overlap = DevArgs {
            rpc_base: 8002,
            ..args(3)
        };
        assert!(check_args(&overlap)
            .unwrap_err()
            .to_string()
            .contains("overlap"));
    }

    #[test]
    fn a_locked_data_dir_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another ringkv dev"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        assert!(lock_data_dir(dir.path()).is_ok());
    }

    #[test]
    fn only_an_answer_naming_this_run_s_cluster_counts() {
        let ok = "HTTP/1.1 200 OK\r\n\r\n{\"node\":\"n1\",\"cluster\":\"ringkv-dev-1-ab\"}";
        assert!(answer_is_from(ok, "ringkv-dev-1-ab"));
        assert!(!answer_is_from(ok, "ringkv-dev-2-ab"));
        assert!(!answer_is_from(
            "HTTP/1.1 404 Not Found\r\n\r\n",
            "ringkv-dev-1-ab"
        ));
    }
}
