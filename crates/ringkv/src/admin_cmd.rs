//! `ringkv admin`: watch and change cluster membership (P4, O1–O3).
//!
//! - `status`: every node, its state (joining, normal, leaving, removed),
//!   its share of the replica slots, whether the asked node thinks it is up,
//!   and any transfer in progress with a progress bar.
//! - `ring`: each partition's replicas in every active layout version.
//! - `join NODE_ID`: add a node that is running and known through gossip
//!   (a node started with `serve --seed` on an empty data directory joins
//!   by itself).
//! - `decommission NODE_ID`: the node streams its data to the nodes that
//!   take over its partitions, then leaves.
//! - `remove NODE_ID`: drop a dead node; its partitions are rebuilt from the
//!   other replicas.
//!
//! Every command talks to one node's HTTP API (`--node`), prints what
//! happened, and exits non-zero with the node's reason when it refuses.
//! `--json` prints the node's JSON answer for scripts.

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use ringkv_client::Client;
use serde_json::Value;

#[derive(Args, Debug)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Args, Debug)]
pub struct NodeArg {
    /// Node to talk to: its HTTP address (any node will do).
    #[arg(long, default_value = "http://127.0.0.1:8001", env = "RINGKV_NODE")]
    pub node: String,
    /// Client token for a node started with --http-tokens-file (sent as
    /// `Authorization: Bearer`); not needed with `ringkv dev`.
    #[arg(long, env = "RINGKV_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the node's JSON answer instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Every node's state, share, liveness and transfers.
    Status(NodeArg),
    /// Each partition's replicas in every active layout version.
    Ring(NodeArg),
    /// Add a running node known through gossip to the layout.
    Join {
        node_id: String,
        #[command(flatten)]
        target: NodeArg,
    },
    /// Stream a node's data away, then take it out of the cluster.
    Decommission {
        node_id: String,
        #[command(flatten)]
        target: NodeArg,
    },
    /// Drop a dead node; its replicas are rebuilt from the others.
    Remove {
        node_id: String,
        #[command(flatten)]
        target: NodeArg,
    },
}

pub async fn run(args: AdminArgs) -> Result<()> {
    match args.command {
        AdminCommand::Status(t) => {
            let status = fetch(&t, "/v1/cluster").await?;
            print(&t, &status, render_status)
        }
        AdminCommand::Ring(t) => {
            let ring = fetch(&t, "/v1/cluster/ring").await?;
            print(&t, &ring, render_ring)
        }
        AdminCommand::Join { node_id, target } => change(&target, "join", &node_id).await,
        AdminCommand::Decommission { node_id, target } => {
            change(&target, "decommission", &node_id).await
        }
        AdminCommand::Remove { node_id, target } => change(&target, "remove", &node_id).await,
    }
}

fn client(target: &NodeArg) -> Result<Client> {
    let node = &target.node;
    Client::new(node)
        .and_then(|c| c.with_token(target.token.as_deref()))
        .with_context(|| format!("node address {node:?}"))
}

async fn fetch(target: &NodeArg, path: &str) -> Result<Value> {
    let node = &target.node;
    client(target)?
        .admin_get(path)
        .await
        .with_context(|| format!("asking {node} for {path}"))
}

async fn change(target: &NodeArg, op: &str, node_id: &str) -> Result<()> {
    let path = format!("/v1/admin/{op}/{}", encode_segment(node_id));
    let answer = client(target)?
        .admin_post(&path)
        .await
        .map_err(|e| anyhow!("{op} {node_id} through {}: {e}", target.node))?;
    print(target, &answer, |a| {
        let version = a["layout_version"].as_u64().unwrap_or(0);
        let moved = a["moved_slots"].as_u64().unwrap_or(0);
        format!(
            "{op} {node_id}: layout version {version} applied; {moved} replica slots move. \
             Watch the transfers with `ringkv admin status --node {}`.\n",
            target.node
        )
    })
}

fn print(target: &NodeArg, value: &Value, render: impl Fn(&Value) -> String) -> Result<()> {
    if target.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", render(value));
    }
    Ok(())
}

/// Node ids are `[A-Za-z0-9._-]`; anything else is escaped.
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "-".into(),
    }
}

/// `[#####-----]` for `done` of `total`.
pub fn progress_bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        width
    } else {
        ((done.min(total) as u128 * width as u128) / total as u128) as usize
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

fn render_status(s: &Value) -> String {
    let layout = &s["layout"];
    let mut out = format!(
        "cluster {}, seen from {}: layout version {} (reads use version {}{})\n",
        text(&s["cluster"]),
        text(&s["node"]),
        text(&layout["version"]),
        text(&layout["read_version"]),
        if layout["in_transition"].as_bool() == Some(true) {
            "; data is moving"
        } else {
            ""
        }
    );
    if s["refilling"].as_bool() == Some(true) {
        out.push_str(&format!(
            "{} was rebuilt (serve --rebuild) and is refilling its partitions from its peers: it refuses reads until done\n",
            text(&s["node"])
        ));
    }
    out.push_str(&format!(
        "{:<10} {:<8} {:<5} {:>6}  {:<21} {:<21} {:<6} TRANSFER\n",
        "NODE", "STATE", "UP", "SHARE", "RPC", "HTTP", "ZONE"
    ));
    for n in s["nodes"].as_array().into_iter().flatten() {
        let up = match (n["up"].as_bool(), n["state"].as_str()) {
            (_, Some("removed")) | (None, _) => "-",
            (Some(true), _) => "yes",
            (Some(false), _) => "NO",
        };
        let share = n["share"].as_f64().unwrap_or(0.0) * 100.0;
        let transfer = match &n["transfer"] {
            Value::Object(t) => {
                let done = t
                    .get("partitions_done")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let total = t
                    .get("partitions_total")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let keys = t.get("keys").and_then(Value::as_u64).unwrap_or(0);
                format!(
                    "{} {done}/{total} partitions, {keys} keys",
                    progress_bar(done, total, 20)
                )
            }
            _ => String::new(),
        };
        let line = format!(
            "{:<10} {:<8} {:<5} {:>5.1}%  {:<21} {:<21} {:<6} {}",
            text(&n["id"]),
            text(&n["state"]),
            up,
            share,
            text(&n["rpc"]),
            text(&n["http"]),
            text(&n["zone"]),
            transfer
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn render_ring(r: &Value) -> String {
    let mut out = String::new();
    for v in r["versions"].as_array().into_iter().flatten() {
        out.push_str(&format!("layout version {}\n", text(&v["version"])));
        out.push_str("PARTITION  REPLICAS\n");
        for p in v["partitions"].as_array().into_iter().flatten() {
            let replicas: Vec<String> = p["replicas"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            out.push_str(&format!(
                "{:<10} {}\n",
                text(&p["partition"]),
                replicas.join(" ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_bar_fills_with_the_transfer() {
        assert_eq!(progress_bar(0, 10, 10), "[----------]");
        assert_eq!(progress_bar(5, 10, 10), "[#####-----]");
        assert_eq!(progress_bar(10, 10, 10), "[##########]");
        assert_eq!(progress_bar(99, 10, 4), "[####]", "never past full");
        assert_eq!(progress_bar(0, 0, 4), "[####]", "nothing to move is done");
    }

    #[test]
    fn node_ids_are_escaped_in_paths() {
        assert_eq!(encode_segment("n1"), "n1");
        assert_eq!(encode_segment("a/b"), "a%2Fb");
    }

    #[test]
    fn status_renders_every_node_with_its_state_and_transfer() {
        let s = serde_json::json!({
            "cluster": "c", "node": "n1",
            "layout": {"version": 3, "read_version": 2, "in_transition": true},
            "nodes": [
                {"id": "n1", "state": "normal", "up": true, "share": 0.25, "rpc": "127.0.0.1:9001", "http": "127.0.0.1:8001", "zone": null, "transfer": null},
                {"id": "n4", "state": "joining", "up": false, "share": 0.25, "rpc": "127.0.0.1:9004", "http": "127.0.0.1:8004", "zone": "z1",
                 "transfer": {"partitions_done": 3, "partitions_total": 6, "keys": 100}}
            ]
        });
        let out = render_status(&s);
        assert!(
            out.contains("layout version 3 (reads use version 2; data is moving)"),
            "{out}"
        );
        assert!(out.contains("n4         joining  NO"), "{out}");
        assert!(
            out.contains("[##########----------] 3/6 partitions, 100 keys"),
            "{out}"
        );
    }
}
