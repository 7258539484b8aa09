//! Three real nodes in this process: `ringkv_node::run` on loopback TCP
//! with the engines the bench loaded, and what the bench asks them from
//! outside, as any client could: anti-entropy roots over RPC (a client
//! hello, no member id) and `/metrics` over HTTP.

use ringkv_core::anti_entropy::{ExchangeLimits, ExchangeReply, ExchangeRequest, TreeQuery};
use ringkv_core::protocol::{Request, Response};
use ringkv_core::NodeId;
use ringkv_node::net::TcpNetwork;
use ringkv_node::rpc::Greeting;
use ringkv_node::rpc::PeerClient;
use ringkv_node::{Edges, NodeConfig, PeerConfig, StartError};
use ringkv_storage::FjallStorage;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How the nodes' anti-entropy runs.
#[derive(Debug, Clone, Copy)]
pub struct AeSettings {
    pub partitions: u32,
    pub interval_ms: u64,
    pub limits: ExchangeLimits,
}

fn id(i: usize) -> NodeId {
    NodeId::new(&format!("n{}", i + 1)).expect("valid id")
}

/// The configs of n1, n2 and n3 (N = 3, R = W = 2), data under `dir`.
/// Anti-entropy bandwidth is effectively unlimited, so the time measured is
/// the protocol's.
pub fn configs(ae: AeSettings, dir: &Path) -> [NodeConfig; 3] {
    let ports = crate::common::free_ports(6);
    let rpc = |i: usize| format!("127.0.0.1:{}", ports[2 * i + 1]);
    std::array::from_fn(|i| {
        let http = format!("127.0.0.1:{}", ports[2 * i]).parse().expect("addr");
        let mut config = NodeConfig::new(id(i), http, rpc(i), dir.join(format!("n{}", i + 1)));
        config.peers = (0..3)
            .filter(|&j| j != i)
            .map(|j| PeerConfig {
                id: id(j),
                rpc: rpc(j),
                capacity: 1,
                zone: None,
            })
            .collect();
        config.partitions = ae.partitions;
        config.anti_entropy_interval_ms = ae.interval_ms;
        config.anti_entropy_bytes_per_sec = u64::MAX / 4;
        config.anti_entropy = ae.limits;
        config
    })
}

/// The running nodes.
pub struct Cluster {
    configs: [NodeConfig; 3],
    shutdown: CancellationToken,
    nodes: Vec<JoinHandle<Result<(), StartError>>>,
    clients: Vec<PeerClient>,
}

impl Cluster {
    /// Starts the three nodes on `stores` and waits until all are ready
    /// (each rebuilt its trees and bound its listeners).
    pub async fn start(configs: [NodeConfig; 3], stores: &[Arc<FjallStorage>; 3]) -> Cluster {
        let shutdown = CancellationToken::new();
        let mut nodes = Vec::new();
        let mut readies = Vec::new();
        for (config, store) in configs.iter().zip(stores) {
            let edges = Edges {
                network: Arc::new(TcpNetwork),
                storage: store.clone(),
                wall_clock: ringkv_node::system_clock(),
                serve_http: true,
                boot_id: None,
            };
            let ready = CancellationToken::new();
            let (config, stop, up) = (config.clone(), shutdown.clone(), ready.clone());
            let run = ringkv_node::run(config, edges, stop, Some(up));
            nodes.push(tokio::spawn(run));
            readies.push(ready);
        }
        for ready in &readies {
            ready.cancelled().await;
        }
        let clients = configs
            .iter()
            .map(|c| {
                let hello = Greeting::client(c.cluster.clone(), c.cluster_key());
                let network = Arc::new(TcpNetwork);
                PeerClient::new(
                    c.id.clone(),
                    c.rpc.clone(),
                    hello,
                    network,
                    Duration::from_secs(5),
                )
            })
            .collect();
        Cluster {
            configs,
            shutdown,
            nodes,
            clients,
        }
    }

    async fn root(&self, node: usize, partition: u32) -> u64 {
        let ask = Request::AntiEntropy(ExchangeRequest::Tree(TreeQuery::Root { partition }));
        match self.clients[node].call(ask, Duration::from_secs(30)).await {
            Ok(Response::AntiEntropy(Ok(ExchangeReply::Root { hash, .. }))) => hash,
            other => panic!("root of partition {partition} on n{}: {other:?}", node + 1),
        }
    }

    /// The partitions of `among` whose roots are not equal on all three.
    pub async fn differing(&self, among: &[u32]) -> Vec<u32> {
        let mut out = Vec::new();
        for &p in among {
            let first = self.root(0, p).await;
            for node in 1..3 {
                if self.root(node, p).await != first {
                    out.push(p);
                    break;
                }
            }
        }
        out
    }

    /// Polls the roots every 250 ms until every partition's are equal on
    /// all three nodes (confirmed by one more full pass). Returns how many
    /// partitions differed at the first look and how long until all were
    /// equal, or None after `timeout`.
    pub async fn converged(&self, timeout: Duration) -> Option<(usize, Duration)> {
        let started = Instant::now();
        let all: Vec<u32> = (0..self.configs[0].partitions).collect();
        let mut pending = self.differing(&all).await;
        let at_first = pending.len();
        eprintln!("{at_first} partitions differ at ready");
        let mut reported = Instant::now();
        loop {
            if pending.is_empty() {
                let seen = started.elapsed();
                pending = self.differing(&all).await;
                if pending.is_empty() {
                    return Some((at_first, seen));
                }
            }
            if started.elapsed() > timeout {
                eprintln!("{} partitions still differ", pending.len());
                return None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            pending = self.differing(&pending).await;
            if reported.elapsed() > Duration::from_secs(30) {
                reported = Instant::now();
                let at = started.elapsed().as_secs();
                eprintln!("{at} s: {} partitions still differ", pending.len());
            }
        }
    }

    /// Every node's anti-entropy counters, from its `/metrics`.
    pub async fn counters(&self) -> Vec<AeCounters> {
        let mut out = Vec::new();
        for config in &self.configs {
            out.push(AeCounters::parse(&metrics_text(config.http).await));
        }
        out
    }

    /// Stops the nodes cleanly.
    pub async fn stop(self) -> Result<(), String> {
        self.shutdown.cancel();
        for node in self.nodes {
            let outcome = node.await.map_err(|e| e.to_string())?;
            outcome.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// `GET /metrics` of a node over plain HTTP/1.1.
async fn metrics_text(http: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(http)
        .await
        .expect("connect to /metrics");
    let request = "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read /metrics");
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string())
}

/// One node's anti-entropy counters, summed over partitions.
#[derive(Debug, Default, Clone)]
pub struct AeCounters {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub keys_repaired: u64,
    /// Exchanges by result: equal, repaired, failed.
    pub exchanges: BTreeMap<String, u64>,
}

impl AeCounters {
    pub fn bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }

    fn parse(text: &str) -> AeCounters {
        let mut out = AeCounters::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: u64 = value.parse().unwrap_or(0);
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let label = |key: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{key}=\"")))
                    .map(|v| v.trim_end_matches(['"', '}']).to_string())
            };
            match name {
                "ringkv_anti_entropy_bytes_total" => match label("direction").as_deref() {
                    Some("sent") => out.bytes_sent += value,
                    _ => out.bytes_received += value,
                },
                "ringkv_anti_entropy_keys_repaired_total" => out.keys_repaired += value,
                "ringkv_anti_entropy_exchanges_total" => {
                    let result = label("result").unwrap_or_default();
                    *out.exchanges.entry(result).or_default() += value
                }
                _ => {}
            }
        }
        out
    }
}
