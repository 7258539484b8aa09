//! `ringkv dev`: a local cluster of separate `ringkv serve` processes.
//!
//! Node i (1-based) listens on HTTP 127.0.0.1:(8000+i) and RPC
//! 127.0.0.1:(9000+i) and keeps its data in `<data-dir>/n<i>`. N is
//! min(3, nodes) and R = W = a majority of N. The command prints the
//! endpoints once every node answers `/v1/health`, and on Ctrl-C or SIGTERM
//! sends SIGTERM to every node, waits for them to exit, and exits itself.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Number of nodes.
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
}

/// Longest time the nodes get to answer health checks after starting.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time the nodes get to exit after SIGTERM before they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

fn node_args(args: &DevArgs, i: u16) -> Vec<String> {
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

fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on a pid this process spawned and has not reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
}

async fn wait_healthy(urls: &[String]) -> Result<()> {
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    for url in urls {
        let client = ringkv_client::Client::new(url)?;
        loop {
            if client.health().await.is_ok() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{url} did not become healthy within {STARTUP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

pub async fn run(args: DevArgs) -> Result<()> {
    if args.nodes == 0 || args.nodes > 64 {
        bail!("--nodes must be between 1 and 64");
    }
    let exe = std::env::current_exe().context("finding the ringkv executable")?;
    let mut children = Vec::new();
    let mut urls = Vec::new();
    for i in 1..=args.nodes {
        let child = Command::new(&exe)
            .args(node_args(&args, i))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting node n{i}"))?;
        children.push(child);
        urls.push(format!("http://127.0.0.1:{}", args.http_base + i - 1));
    }
    if let Err(e) = wait_healthy(&urls).await {
        children.iter().for_each(terminate);
        return Err(e);
    }
    println!(
        "ringkv dev cluster: {} nodes, data in {}",
        args.nodes,
        args.data_dir.display()
    );
    for (i, url) in urls.iter().enumerate() {
        println!(
            "  n{}  http {url}  rpc 127.0.0.1:{}",
            i + 1,
            args.rpc_base + i as u16
        );
    }
    println!(
        "try:  curl -X PUT --data-binary hello {}/v1/kv/demo/greeting",
        urls[0]
    );
    println!("      curl -i {}/v1/kv/demo/greeting", urls[urls.len() - 1]);
    println!("Ctrl-C stops the cluster.");

    let exited = async {
        let waits = children.iter_mut().map(|c| Box::pin(c.wait()));
        futures_select_first(waits).await
    };
    let unexpected = tokio::select! {
        _ = crate::serve::terminated() => None,
        status = exited => Some(status),
    };
    children.iter().for_each(terminate);
    for (i, child) in children.iter_mut().enumerate() {
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!(
                    "n{} did not stop within {STOP_TIMEOUT:?}; killing it",
                    i + 1
                );
                let _ = child.kill().await;
            }
        }
    }
    if let Some(status) = unexpected {
        bail!("a node exited unexpectedly ({status}); the cluster was stopped");
    }
    println!("stopped");
    Ok(())
}

/// Resolves with the first child's exit status (as text).
async fn futures_select_first<F>(waits: impl Iterator<Item = F>) -> String
where
    F: std::future::Future<Output = std::io::Result<std::process::ExitStatus>> + Unpin,
{
    let waits: Vec<F> = waits.collect();
    let (status, _, _) = futures_util::future::select_all(waits).await;
    match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_arguments_name_every_peer_and_a_majority_quorum() {
        let args = DevArgs {
            nodes: 3,
            data_dir: "d".into(),
            http_base: 8001,
            rpc_base: 9001,
            fsync: "always".into(),
        };
        let a = node_args(&args, 2);
        assert!(a.contains(&"--id=n2".to_string()));
        assert!(a.contains(&"--http=127.0.0.1:8002".to_string()));
        assert!(a.contains(&"--peer=n1=127.0.0.1:9001".to_string()));
        assert!(a.contains(&"--peer=n3=127.0.0.1:9003".to_string()));
        assert!(a.contains(&"--w=2".to_string()));
        let one = DevArgs { nodes: 1, ..args };
        assert!(node_args(&one, 1).contains(&"--n=1".to_string()));
    }
}
