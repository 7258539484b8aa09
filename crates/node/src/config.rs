//! Node configuration: who this node is, who its peers are, and every knob.
//!
//! The same settings come from command-line flags or a TOML file
//! (`--config FILE`); [`NodeConfig::validate`] checks them together and
//! [`NodeConfig::members`] turns them into the layout's member list.
//!
//! A cluster starts either from `peers` (every founding node started with
//! the same peers, capacities, zones and settings computes the same first
//! layout; the handshake refuses a node whose first layout differs), or a
//! node joins a running cluster through `seeds` (RPC addresses of any
//! members) on an empty data directory. After the first start the node's
//! persisted layout history and membership win over both (see
//! [`crate::cluster_state`]); seeds stay useful as gossip contacts.

use crate::commit::FsyncPolicy;
use crate::rpc::server::{
    ServerLimits, DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_MAX_INBOUND_CONNECTIONS,
};
use ringkv_core::anti_entropy::ExchangeLimits;
use ringkv_core::auth::{ClusterKey, ClusterSecret};
use ringkv_core::client_auth::ClientTokens;
use ringkv_core::hints::HintLimits;
use ringkv_core::layout::{compute_layout, Layout, LayoutParams, Member, DEFAULT_PARTITIONS};
use ringkv_core::limits::Limits;
use ringkv_core::replication::{BucketProps, Replication};
use ringkv_core::settings::ClusterSettings;
use ringkv_core::streaming::StreamLimits;
use ringkv_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Another node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub id: NodeId,
    /// Its RPC address, `host:port`.
    pub rpc: String,
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    #[serde(default)]
    pub zone: Option<String>,
}

/// Everything a node needs to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Nodes refuse peers that name another cluster.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// A file holding the cluster secret (N4; see [`ringkv_core::auth`]),
    /// read at start into `secret` by the binary.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The cluster secret every node and client must prove in the RPC
    /// handshake, and the key of context-token MACs. `None`: open mode,
    /// which only lets in peers that have no secret either.
    #[serde(skip)]
    pub secret: Option<ClusterSecret>,
    /// Client HTTP address.
    pub http: SocketAddr,
    /// A file of client tokens, one per line (see
    /// [`ringkv_core::client_auth`]), read at start into `http_tokens` by
    /// the binary. Unset: the HTTP API lets in every client.
    #[serde(default)]
    pub http_tokens_file: Option<PathBuf>,
    /// The accepted client tokens (digests); `Some`: every endpoint but
    /// `/v1/health` needs `Authorization: Bearer <token>`.
    #[serde(skip)]
    pub http_tokens: Option<ClientTokens>,
    /// PEM certificate chain and private key: serve the HTTP API over TLS
    /// (both or neither).
    #[serde(default)]
    pub http_tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub http_tls_key: Option<PathBuf>,
    /// Node-to-node RPC address to listen on, `host:port`.
    pub rpc: String,
    /// The RPC address other nodes reach this one at, as gossiped (when
    /// `rpc` listens on every interface, e.g. `0.0.0.0:9000`); default `rpc`.
    #[serde(default)]
    pub advertise_rpc: Option<String>,
    pub data_dir: PathBuf,
    /// Relative weight: a node of capacity 2 holds about twice the data (P2).
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// RPC addresses of members to join through (when there are no
    /// `peers`) and to gossip with now and then, so the cluster never splits
    /// into groups that do not know each other.
    #[serde(default)]
    pub seeds: Vec<String>,
    /// Pause between gossip rounds (one exchange with a random peer).
    #[serde(default = "default_gossip_interval_ms")]
    pub gossip_interval_ms: u64,
    /// Cluster-wide N, R, W defaults.
    #[serde(default)]
    pub replication: Replication,
    /// Per-bucket overrides of N, R, W.
    #[serde(default)]
    pub buckets: BTreeMap<String, BucketProps>,
    /// Q: how many equal partitions the hash circle is cut into (a power of
    /// two, at most 65,536). Fixed when a cluster is created: every node must
    /// use the same value (checked in the handshake).
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    #[serde(default)]
    pub limits: Limits,
    /// `always` (default) or `periodic:<ms>`.
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// How long a coordinator waits for a quorum before answering 503.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How long opening a connection to a peer may take.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// How long a read waits on its first R replicas before also asking the
    /// rest of the preference list (speculative retry).
    #[serde(default = "default_read_speculation_ms")]
    pub read_speculation_ms: u64,
    /// Most inbound RPC connections open at once; one more is closed at once
    /// (default [`DEFAULT_MAX_INBOUND_CONNECTIONS`]).
    #[serde(default = "default_max_inbound_connections")]
    pub max_inbound_connections: usize,
    /// How long a new RPC connection may take to say hello
    /// (default [`DEFAULT_HANDSHAKE_TIMEOUT_MS`]).
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// Bounds on the hints this node keeps as a stand-in, and how fast it
    /// hands them back (`[hints]` in the TOML file).
    #[serde(default)]
    pub hints: HintLimits,
    /// How often hinted handoff looks for hints to deliver, and the
    /// liveness probe pings peers judged down.
    #[serde(default = "default_handoff_interval_ms")]
    pub handoff_interval_ms: u64,
    /// Pause between rounds of anti-entropy exchanges.
    #[serde(default = "default_anti_entropy_interval_ms")]
    pub anti_entropy_interval_ms: u64,
    /// Bytes anti-entropy may move per second (exchanges and repairs).
    #[serde(default = "default_anti_entropy_bytes_per_sec")]
    pub anti_entropy_bytes_per_sec: u64,
    /// Bounds of one exchange (`[anti_entropy]` in the TOML file).
    #[serde(default)]
    pub anti_entropy: ExchangeLimits,
    /// How long a delete (or an expired value) is kept before it may be
    /// reaped; must exceed `hints.max_age_ms`.
    #[serde(default = "default_tombstone_grace_ms")]
    pub tombstone_grace_ms: u64,
    /// Pause between tombstone collector rounds.
    #[serde(default = "default_gc_interval_ms")]
    pub gc_interval_ms: u64,
    /// How partitions are streamed in: chunk sizes, bandwidth, concurrent
    /// pulls and retries (`[streaming]` in the TOML file).
    #[serde(default)]
    pub streaming: StreamLimits,
}

fn default_capacity() -> u32 {
    1
}
fn default_partitions() -> u32 {
    DEFAULT_PARTITIONS
}
fn default_cluster() -> String {
    "ringkv".into()
}
fn default_request_timeout_ms() -> u64 {
    3000
}
fn default_connect_timeout_ms() -> u64 {
    1000
}
fn default_read_speculation_ms() -> u64 {
    100
}
fn default_max_inbound_connections() -> usize {
    DEFAULT_MAX_INBOUND_CONNECTIONS
}
fn default_handshake_timeout_ms() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_MS
}
fn default_tombstone_grace_ms() -> u64 {
    ringkv_core::tombstones::DEFAULT_TOMBSTONE_GRACE_MS
}
fn default_gc_interval_ms() -> u64 {
    crate::tombstone_gc::GC_INTERVAL_MS
}
fn default_anti_entropy_interval_ms() -> u64 {
    crate::anti_entropy::ANTI_ENTROPY_INTERVAL_MS
}
fn default_anti_entropy_bytes_per_sec() -> u64 {
    crate::anti_entropy::ANTI_ENTROPY_BYTES_PER_SEC
}
fn default_gossip_interval_ms() -> u64 {
    crate::gossip::GOSSIP_INTERVAL_MS
}
fn default_handoff_interval_ms() -> u64 {
    crate::handoff::HANDOFF_INTERVAL_MS
}

impl NodeConfig {
    /// A config with defaults for everything but identity and addresses.
    pub fn new(id: NodeId, http: SocketAddr, rpc: String, data_dir: PathBuf) -> Self {
        NodeConfig {
            id,
            cluster: default_cluster(),
            secret_file: None,
            secret: None,
            http,
            http_tokens_file: None,
            http_tokens: None,
            http_tls_cert: None,
            http_tls_key: None,
            rpc,
            advertise_rpc: None,
            data_dir,
            capacity: default_capacity(),
            zone: None,
            peers: Vec::new(),
            seeds: Vec::new(),
            gossip_interval_ms: default_gossip_interval_ms(),
            replication: Replication::default(),
            buckets: BTreeMap::new(),
            partitions: default_partitions(),
            limits: Limits::default(),
            fsync: FsyncPolicy::default(),
            request_timeout_ms: default_request_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            read_speculation_ms: default_read_speculation_ms(),
            max_inbound_connections: default_max_inbound_connections(),
            handshake_timeout_ms: default_handshake_timeout_ms(),
            hints: HintLimits::default(),
            handoff_interval_ms: default_handoff_interval_ms(),
            anti_entropy_interval_ms: default_anti_entropy_interval_ms(),
            anti_entropy_bytes_per_sec: default_anti_entropy_bytes_per_sec(),
            anti_entropy: ExchangeLimits::default(),
            tombstone_grace_ms: default_tombstone_grace_ms(),
            gc_interval_ms: default_gc_interval_ms(),
            streaming: StreamLimits::default(),
        }
    }

    /// The key derived from the cluster secret, or the open-mode key.
    pub fn cluster_key(&self) -> ClusterKey {
        match &self.secret {
            Some(secret) => ClusterKey::from_secret(secret),
            None => ClusterKey::open(),
        }
    }

    /// What the RPC server allows connecting peers.
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            max_inbound_connections: self.max_inbound_connections,
            handshake_timeout: std::time::Duration::from_millis(self.handshake_timeout_ms),
        }
    }

    /// Parses a TOML config file's text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The layout's members: this node and its peers.
    pub fn members(&self) -> Vec<Member> {
        let me = Member {
            id: self.id.clone(),
            capacity: self.capacity,
            zone: self.zone.clone(),
        };
        std::iter::once(me)
            .chain(self.peers.iter().map(|p| Member {
                id: p.id.clone(),
                capacity: p.capacity,
                zone: p.zone.clone(),
            }))
            .collect()
    }

    /// The settings every node of the cluster must share.
    pub fn settings(&self) -> ClusterSettings {
        ClusterSettings {
            partitions: self.partitions,
            replication: self.replication,
            buckets: self.buckets.clone(),
        }
    }

    /// Every member's RPC address, this node's included.
    pub fn addresses(&self) -> BTreeMap<NodeId, String> {
        std::iter::once((self.id.clone(), self.rpc.clone()))
            .chain(self.peers.iter().map(|p| (p.id.clone(), p.rpc.clone())))
            .collect()
    }

    /// Whether this node starts by joining a cluster through its seeds
    /// (no peers configured) rather than founding one.
    pub fn joins_by_seed(&self) -> bool {
        self.peers.is_empty() && !self.seeds.is_empty()
    }

    /// The shape of every layout of the cluster.
    pub fn layout_params(&self) -> LayoutParams {
        LayoutParams {
            partitions: self.partitions,
            replication: self.replication.n,
        }
    }

    /// Layout version 1 of a cluster founded from the configured members
    /// (every founding node computes the same one).
    pub fn layout(&self) -> Result<Layout, String> {
        let params = LayoutParams {
            partitions: self.partitions,
            replication: self.replication.n,
        };
        compute_layout(&self.members(), params, None).map_err(|e| e.to_string())
    }

    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), String> {
        self.limits.validate()?;
        // A joining node's cluster has at least N members; it learns them.
        let nodes = if self.joins_by_seed() {
            self.replication.n.max(1)
        } else {
            1 + self.peers.len()
        };
        // N may not exceed the node count; R and W are checked per request too.
        self.replication
            .validate(nodes)
            .map_err(|e| format!("replication: {e}"))?;
        for (bucket, props) in &self.buckets {
            ringkv_core::key::check_bucket(bucket)
                .map_err(|e| format!("bucket {bucket:?}: {e}"))?;
            self.replication
                .resolve(props, &Default::default(), nodes)
                .map_err(|e| format!("bucket {bucket:?}: {e}"))?;
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err("request_timeout_ms and connect_timeout_ms must be positive".into());
        }
        if self.max_inbound_connections == 0 || self.handshake_timeout_ms == 0 {
            return Err("max_inbound_connections and handshake_timeout_ms must be positive".into());
        }
        self.hints.validate()?;
        if self.handoff_interval_ms == 0 {
            return Err("handoff_interval_ms must be positive".into());
        }
        let ae = &self.anti_entropy;
        if self.anti_entropy_interval_ms == 0
            || self.anti_entropy_bytes_per_sec == 0
            || ae.max_segments == 0
            || ae.max_keys == 0
            || ae.max_summary_bytes == 0
            || ae.timeout_ms == 0
        {
            return Err("anti-entropy intervals and limits must be positive".into());
        }
        if self.tombstone_grace_ms <= self.hints.max_age_ms {
            return Err(format!(
                "tombstone_grace_ms ({}) must exceed hints.max_age_ms ({}): a hint older than a reaped delete could bring the key back",
                self.tombstone_grace_ms, self.hints.max_age_ms
            ));
        }
        if self.gc_interval_ms == 0 {
            return Err("gc_interval_ms must be positive".into());
        }
        self.streaming.validate()?;
        if let Some(m) = self.members().iter().find(|m| m.id.has_epoch()) {
            return Err(format!(
                "node id {} may not contain '~' (reserved for actor epochs)",
                m.id
            ));
        }
        if self.http_tls_cert.is_some() != self.http_tls_key.is_some() {
            return Err("http_tls_cert and http_tls_key go together: give both or neither".into());
        }
        if self.gossip_interval_ms == 0 {
            return Err("gossip_interval_ms must be positive".into());
        }
        if !self.joins_by_seed() {
            self.layout()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_config_parses_with_defaults_and_validates() {
        let cfg = NodeConfig::from_toml(
            r#"
            id = "n1"
            http = "127.0.0.1:8001"
            rpc = "127.0.0.1:9001"
            data_dir = "/tmp/x"
            fsync = "periodic:10"
            [[peers]]
            id = "n2"
            rpc = "127.0.0.1:9002"
            [[peers]]
            id = "n3"
            rpc = "127.0.0.1:9003"
            zone = "b"
            [buckets.carts]
            n = 2
            w = 1
            [streaming]
            bytes_per_sec = 1048576
            "#,
        )
        .unwrap();
        assert_eq!(cfg.streaming.bytes_per_sec, 1 << 20);
        assert_eq!(cfg.streaming.chunk_keys, StreamLimits::default().chunk_keys);
        assert_eq!(cfg.fsync, FsyncPolicy::Periodic { interval_ms: 10 });
        assert_eq!(cfg.replication, Replication::default());
        assert_eq!(cfg.members().len(), 3);
        assert_eq!(cfg.partitions, 256);
        assert_eq!(cfg.server_limits(), ServerLimits::default());
        assert_eq!(cfg.max_inbound_connections, 1024);
        assert_eq!(cfg.handshake_timeout_ms, 5_000);
        cfg.validate().unwrap();
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut cfg = NodeConfig::new(
            NodeId::new("n1").unwrap(),
            "127.0.0.1:8001".parse().unwrap(),
            "127.0.0.1:9001".into(),
            "/tmp/x".into(),
        );
        assert!(
            cfg.validate().unwrap_err().contains("exceeds"),
            "N=3 on one node"
        );
        cfg.replication = Replication { n: 1, r: 1, w: 1 };
        cfg.validate().unwrap();
        cfg.buckets.insert(
            "b".into(),
            BucketProps {
                n: Some(2),
                ..Default::default()
            },
        );
        assert!(cfg.validate().is_err());
        assert!(NodeConfig::from_toml("id = 'n1'\nbogus = 1").is_err());
        cfg.buckets.clear();
        cfg.partitions = 100;
        assert!(cfg.validate().unwrap_err().contains("power of two"));
        cfg.partitions = 256;
        cfg.max_inbound_connections = 0;
        assert!(cfg
            .validate()
            .unwrap_err()
            .contains("max_inbound_connections"));
        cfg.max_inbound_connections = 1;
        cfg.handshake_timeout_ms = 0;
        assert!(cfg.validate().unwrap_err().contains("handshake_timeout_ms"));
        cfg.handshake_timeout_ms = 1;
        cfg.streaming.bytes_per_sec = 0;
        assert!(cfg
            .validate()
            .unwrap_err()
            .contains("streaming.bytes_per_sec"));
        cfg.streaming = StreamLimits::default();
        cfg.http_tls_cert = Some("/tmp/cert.pem".into());
        assert!(cfg.validate().unwrap_err().contains("http_tls_key"));
        cfg.http_tls_key = Some("/tmp/key.pem".into());
        cfg.validate().unwrap();
        cfg.id = NodeId::new("n1~2").unwrap();
        assert!(cfg
            .validate()
            .unwrap_err()
            .contains("reserved for actor epochs"));
    }
}
