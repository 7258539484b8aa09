//! `ringkv serve`: one node, from flags and/or a TOML file, until SIGTERM.
//!
//! Flags override the file. On SIGTERM or Ctrl-C the node stops accepting,
//! finishes in-flight requests, syncs storage and exits 0.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ringkv_core::auth::ClusterSecret;
use ringkv_core::replication::Replication;
use ringkv_core::NodeId;
use ringkv_node::commit::FsyncPolicy;
use ringkv_node::net::TcpNetwork;
use ringkv_node::{Edges, NodeConfig, PeerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with the same settings (flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This node's id (e.g. n1).
    #[arg(long)]
    pub id: Option<NodeId>,
    /// Client HTTP address.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Node-to-node RPC address (host:port).
    #[arg(long)]
    pub rpc: Option<String>,
    /// The RPC address other nodes reach this one at, when --rpc listens on
    /// every interface (e.g. 0.0.0.0:9000); default --rpc.
    #[arg(long)]
    pub advertise_rpc: Option<String>,
    /// Where this node keeps its data.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Set the store in --data-dir aside (into damaged-<unix-secs>/) and
    /// start on a fresh one refilled from the other replicas; for a damaged
    /// disk. A flag only, never in the config file.
    #[arg(long)]
    pub rebuild: bool,
    /// Another node: ID=HOST:PORT[,capacity=C][,zone=Z]; repeat for each peer.
    #[arg(long = "peer")]
    pub peers: Vec<String>,
    /// RPC address (HOST:PORT) of a cluster member; repeat for more. With no
    /// --peer and an empty data directory, the node joins the cluster
    /// through them; afterwards they are gossip contacts.
    #[arg(long = "seed")]
    pub seeds: Vec<String>,
    /// Pause between gossip rounds (default 1000).
    #[arg(long)]
    pub gossip_interval_ms: Option<u64>,
    /// Bytes per second this node may pull when streaming partitions it
    /// gained in a layout change (default 32 MiB).
    #[arg(long)]
    pub stream_bytes_per_sec: Option<u64>,
    /// Relative capacity weight of this node (default 1).
    #[arg(long)]
    pub capacity: Option<u32>,
    /// Zone (rack / data centre) of this node.
    #[arg(long)]
    pub zone: Option<String>,
    /// Cluster name; nodes refuse peers of another cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// File holding the cluster secret (at least 16 bytes, surrounding
    /// whitespace trimmed) that every node and client must prove; otherwise
    /// the secret itself from the environment variable `RINGKV_SECRET`.
    /// Without either the node runs in open mode (only peers without a
    /// secret get in; anyone who reaches the RPC port can).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// File of client tokens, one per line (16..=512 visible ASCII
    /// characters; `#` comments): every HTTP endpoint but /v1/health then
    /// needs `Authorization: Bearer <token>`. Off by default.
    #[arg(long)]
    pub http_tokens_file: Option<PathBuf>,
    /// PEM certificate chain: serve the HTTP API over TLS (with --http-tls-key).
    #[arg(long, requires = "http_tls_key")]
    pub http_tls_cert: Option<PathBuf>,
    /// PEM private key of --http-tls-cert.
    #[arg(long, requires = "http_tls_cert")]
    pub http_tls_key: Option<PathBuf>,
    /// `always` (default: acknowledge after fsync) or `periodic:<ms>`.
    #[arg(long)]
    pub fsync: Option<FsyncPolicy>,
    /// Cluster default replication factor N (default 3).
    #[arg(long)]
    pub n: Option<usize>,
    /// Cluster default read quorum R (default 2).
    #[arg(long)]
    pub r: Option<usize>,
    /// Cluster default write quorum W (default 2).
    #[arg(long)]
    pub w: Option<usize>,
    /// Partitions Q of the hash circle (a power of two up to 65536, default
    /// 256); fixed when the cluster is created, the same on every node.
    #[arg(long)]
    pub partitions: Option<u32>,
    /// How long a quorum may take before the request fails with 503.
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Hints kept for one unreachable node, at most (default 100000).
    #[arg(long)]
    pub max_hints_per_node: Option<u64>,
    /// Bytes of hints kept for one unreachable node, at most (default 128 MiB).
    #[arg(long)]
    pub max_hint_bytes_per_node: Option<u64>,
    /// Hints older than this are dropped, not delivered (default 3 h).
    #[arg(long)]
    pub max_hint_age_ms: Option<u64>,
    /// Hint bytes handed back per second, to all nodes together (default 4 MiB).
    #[arg(long)]
    pub hint_delivery_bytes_per_sec: Option<u64>,
    /// How often hints are delivered and down peers pinged (default 1000).
    #[arg(long)]
    pub handoff_interval_ms: Option<u64>,
    /// Pause between rounds of anti-entropy exchanges (default 1000).
    #[arg(long)]
    pub anti_entropy_interval_ms: Option<u64>,
    /// Bytes anti-entropy may move per second (default 4 MiB).
    #[arg(long)]
    pub anti_entropy_bytes_per_sec: Option<u64>,
    /// How long a delete is kept before it may be reaped (default 6 h; must
    /// exceed --max-hint-age-ms).
    #[arg(long)]
    pub tombstone_grace_ms: Option<u64>,
    /// Pause between tombstone collector rounds (default 10000).
    #[arg(long)]
    pub gc_interval_ms: Option<u64>,
    /// Largest value accepted, in bytes (default 1 MiB).
    #[arg(long)]
    pub max_value_bytes: Option<usize>,
    /// Largest key accepted, in bytes (default 1 KiB).
    #[arg(long)]
    pub max_key_bytes: Option<usize>,
    /// Most versions a key may hold before puts get 409 (default 64).
    #[arg(long)]
    pub max_siblings: Option<usize>,
    /// Most client requests coordinated at once before 503 (default 4096).
    #[arg(long)]
    pub max_in_flight_requests: Option<usize>,
    /// How long opening a connection to a peer may take (default 1000).
    #[arg(long)]
    pub connect_timeout_ms: Option<u64>,
}

/// Parses `ID=HOST:PORT[,capacity=C][,zone=Z]`.
pub fn parse_peer(spec: &str) -> Result<PeerConfig> {
    let mut parts = spec.split(',');
    let head = parts.next().unwrap_or_default();
    let (id, rpc) = head
        .split_once('=')
        .ok_or_else(|| anyhow!("peer {spec:?}: expected ID=HOST:PORT"))?;
    let mut peer = PeerConfig {
        id: id.parse().with_context(|| format!("peer {spec:?}"))?,
        rpc: rpc.to_string(),
        capacity: 1,
        zone: None,
    };
    for part in parts {
        match part.split_once('=') {
            Some(("capacity", c)) => {
                peer.capacity = c
                    .parse()
                    .with_context(|| format!("peer {spec:?}: capacity"))?
            }
            Some(("zone", z)) => peer.zone = Some(z.to_string()),
            _ => bail!("peer {spec:?}: unknown option {part:?} (expected capacity= or zone=)"),
        }
    }
    Ok(peer)
}

/// Builds the node config from the file (if any) and the flags.
pub fn build_config(args: ServeArgs) -> Result<NodeConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            NodeConfig::from_toml(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
        None => match (&args.id, args.http, &args.rpc, &args.data_dir) {
            (Some(id), Some(http), Some(rpc), Some(dir)) => {
                NodeConfig::new(id.clone(), http, rpc.clone(), dir.clone())
            }
            _ => bail!("{}", missing_required(&args)),
        },
    };
    if let Some(id) = args.id {
        config.id = id;
    }
    if let Some(http) = args.http {
        config.http = http;
    }
    if let Some(rpc) = args.rpc {
        config.rpc = rpc;
    }
    if args.advertise_rpc.is_some() {
        config.advertise_rpc = args.advertise_rpc;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if !args.peers.is_empty() {
        config.peers = args
            .peers
            .iter()
            .map(|p| parse_peer(p))
            .collect::<Result<_>>()?;
    }
    if !args.seeds.is_empty() {
        config.seeds = args.seeds;
    }
    if let Some(ms) = args.gossip_interval_ms {
        config.gossip_interval_ms = ms;
    }
    if let Some(b) = args.stream_bytes_per_sec {
        config.streaming.bytes_per_sec = b;
    }
    if let Some(c) = args.capacity {
        config.capacity = c;
    }
    if args.zone.is_some() {
        config.zone = args.zone;
    }
    if let Some(c) = args.cluster {
        config.cluster = c;
    }
    if args.secret_file.is_some() {
        config.secret_file = args.secret_file;
    }
    let env = std::env::var_os(SECRET_ENV);
    config.secret = load_secret(config.secret_file.as_deref(), env.as_deref())?;
    crate::http_access::apply(
        &mut config,
        args.http_tokens_file,
        args.http_tls_cert,
        args.http_tls_key,
    )?;
    if let Some(f) = args.fsync {
        config.fsync = f;
    }
    let Replication { n, r, w } = config.replication;
    config.replication = Replication {
        n: args.n.unwrap_or(n),
        r: args.r.unwrap_or(r),
        w: args.w.unwrap_or(w),
    };
    if let Some(q) = args.partitions {
        config.partitions = q;
    }
    if let Some(t) = args.request_timeout_ms {
        config.request_timeout_ms = t;
    }
    let hints = &mut config.hints;
    hints.max_hints_per_target = args
        .max_hints_per_node
        .unwrap_or(hints.max_hints_per_target);
    hints.max_bytes_per_target = args
        .max_hint_bytes_per_node
        .unwrap_or(hints.max_bytes_per_target);
    hints.max_age_ms = args.max_hint_age_ms.unwrap_or(hints.max_age_ms);
    hints.delivery_bytes_per_sec = args
        .hint_delivery_bytes_per_sec
        .unwrap_or(hints.delivery_bytes_per_sec);
    if let Some(i) = args.handoff_interval_ms {
        config.handoff_interval_ms = i;
    }
    if let Some(i) = args.anti_entropy_interval_ms {
        config.anti_entropy_interval_ms = i;
    }
    if let Some(b) = args.anti_entropy_bytes_per_sec {
        config.anti_entropy_bytes_per_sec = b;
    }
    if let Some(g) = args.tombstone_grace_ms {
        config.tombstone_grace_ms = g;
    }
    if let Some(i) = args.gc_interval_ms {
        config.gc_interval_ms = i;
    }
    if let Some(v) = args.max_value_bytes {
        config.limits.max_value_bytes = v;
    }
    if let Some(k) = args.max_key_bytes {
        config.limits.max_key_bytes = k;
    }
    if let Some(s) = args.max_siblings {
        config.limits.max_siblings = s;
    }
    if let Some(f) = args.max_in_flight_requests {
        config.limits.max_in_flight_requests = f;
    }
    if let Some(t) = args.connect_timeout_ms {
        config.connect_timeout_ms = t;
    }
    config
        .validate()
        .map_err(|e| anyhow!("invalid configuration: {e}"))?;
    Ok(config)
}

/// One line naming every required flag that is missing (all at once, so a
/// user fixes the command in one go).
fn missing_required(args: &ServeArgs) -> String {
    let missing: Vec<&str> = [
        ("--id", args.id.is_none()),
        ("--http", args.http.is_none()),
        ("--rpc", args.rpc.is_none()),
        ("--data-dir", args.data_dir.is_none()),
    ]
    .into_iter()
    .filter_map(|(flag, absent)| absent.then_some(flag))
    .collect();
    let verb = if missing.len() == 1 { "is" } else { "are" };
    format!(
        "{} {verb} required (or give --config FILE)",
        missing.join(", ")
    )
}

/// Waits for SIGTERM or Ctrl-C.
pub async fn terminated() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// The environment variable that may hold the cluster secret itself.
pub const SECRET_ENV: &str = "RINGKV_SECRET";

/// The cluster secret from `file` (preferred) or from the value of
/// [`SECRET_ENV`]; `None` for open mode. A file that cannot be read or a
/// secret too short or too long stops the start with the reason.
pub fn load_secret(
    file: Option<&std::path::Path>,
    env: Option<&std::ffi::OsStr>,
) -> Result<Option<ClusterSecret>> {
    let (bytes, origin) = match (file, env) {
        (Some(path), _) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the cluster secret file {}", path.display()))?;
            (bytes, path.display().to_string())
        }
        (None, Some(value)) => (value.as_encoded_bytes().to_vec(), SECRET_ENV.to_string()),
        (None, None) => return Ok(None),
    };
    let secret = ClusterSecret::new(&bytes).map_err(|e| anyhow!("{origin}: {e}"))?;
    Ok(Some(secret))
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let rebuild = args.rebuild;
    let config = build_config(args)?;
    if config.secret.is_none() {
        tracing::warn!(
            "no cluster secret (--secret-file, secret_file or {SECRET_ENV}): running in open mode, where any process that reaches the RPC port can read, write and join, and context tokens are not signed with a secret"
        );
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let dir = config.data_dir.clone();
    let command = crate::rebuild::rebuild_command(&std::env::args().collect::<Vec<_>>());
    let storage =
        tokio::task::spawn_blocking(move || crate::rebuild::open_store(&dir, rebuild, &command))
            .await??;
    let edges = Edges {
        network: Arc::new(TcpNetwork),
        storage: storage.clone(),
        wall_clock: ringkv_node::system_clock(),
        serve_http: true,
        boot_id: boot_id(),
    };
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        terminated().await;
        trigger.cancel();
    });
    let dir = config.data_dir.clone();
    ringkv_node::run(config, edges, shutdown, None).await?;
    // Stopped cleanly: seal the store, so the next start can tell a journal
    // that lost batches (crate::seal).
    let at_ms = ringkv_node::system_clock()();
    tokio::task::spawn_blocking(move || crate::seal::seal(&*storage, &dir, at_ms)).await??;
    Ok(())
}

/// Where Linux publishes the id of the running boot (a new UUID per boot).
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The running OS boot's id, or `None` if it cannot be read (then an
/// unclean restart always moves to a new actor epoch, the safe side).
fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string(BOOT_ID_PATH).ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_specs() {
        let p = parse_peer("n2=127.0.0.1:9002,capacity=2,zone=b").unwrap();
        assert_eq!(
            (p.id.as_str(), p.rpc.as_str(), p.capacity, p.zone.as_deref()),
            ("n2", "127.0.0.1:9002", 2, Some("b"))
        );
        assert!(parse_peer("n2").is_err());
        assert!(parse_peer("bad id=x:1").is_err());
        assert!(parse_peer("n2=x:1,color=red").is_err());
    }

    #[test]
    fn flags_build_a_valid_config_and_missing_ones_are_named() {
        let args = ServeArgs {
            id: Some("n1".parse().unwrap()),
            http: Some("127.0.0.1:8001".parse().unwrap()),
            rpc: Some("127.0.0.1:9001".into()),
            data_dir: Some("/tmp/d".into()),
            peers: vec!["n2=127.0.0.1:9002".into(), "n3=127.0.0.1:9003".into()],
            fsync: Some("periodic:10".parse().unwrap()),
            ..Default::default()
        };
        let cfg = build_config(args).unwrap();
        assert_eq!(cfg.peers.len(), 2);
        assert_eq!(cfg.fsync, FsyncPolicy::Periodic { interval_ms: 10 });
        let err = build_config(ServeArgs::default()).unwrap_err().to_string();
        assert_eq!(
            err,
            "--id, --http, --rpc, --data-dir are required (or give --config FILE)"
        );
        let err = build_config(ServeArgs {
            http: Some("127.0.0.1:8001".parse().unwrap()),
            rpc: Some("127.0.0.1:9001".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert_eq!(err, "--id, --data-dir are required (or give --config FILE)");
        let err = build_config(ServeArgs {
            id: Some("n1".parse().unwrap()),
            http: Some("127.0.0.1:8001".parse().unwrap()),
            rpc: Some("127.0.0.1:9001".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert_eq!(err, "--data-dir is required (or give --config FILE)");
    }

    #[test]
    fn a_config_file_gives_the_settings_and_flags_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n1.toml");
        std::fs::write(
            &path,
            r#"
            id = "n1"
            http = "127.0.0.1:8001"
            rpc = "127.0.0.1:9001"
            data_dir = "/tmp/n1"
            zone = "a"
            fsync = "periodic:5"
            [[peers]]
            id = "n2"
            rpc = "127.0.0.1:9002"
            zone = "b"
            [buckets.carts]
            n = 2
            "#,
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            n: Some(2),
            r: Some(1),
            w: Some(1),
            capacity: Some(3),
            ..Default::default()
        };
        let cfg = build_config(args).unwrap();
        assert_eq!(
            (cfg.id.as_str(), cfg.zone.as_deref(), cfg.capacity),
            ("n1", Some("a"), 3)
        );
        assert_eq!(cfg.fsync, FsyncPolicy::Periodic { interval_ms: 5 });
        assert_eq!(cfg.peers[0].zone.as_deref(), Some("b"));
        assert_eq!(cfg.buckets["carts"].n, Some(2));
        std::fs::write(&path, "id = 'n1'\nnot_a_setting = 1\n").unwrap();
        let err = build_config(ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("not_a_setting"), "{err}");
    }

    #[test]
    fn the_secret_file_comes_from_the_config_file_or_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let (toml_secret, flag_secret) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&toml_secret, "secret named in the TOML").unwrap();
        std::fs::write(&flag_secret, "secret named by the flag").unwrap();
        let path = dir.path().join("n1.toml");
        let toml = format!(
            "id = 'n1'\nhttp = '127.0.0.1:8001'\nrpc = '127.0.0.1:9001'\ndata_dir = '/tmp/n1'\nsecret_file = '{}'\n",
            toml_secret.display()
        );
        std::fs::write(&path, toml).unwrap();
        let config = |flag: Option<PathBuf>| {
            let args = ServeArgs {
                config: Some(path.clone()),
                secret_file: flag,
                n: Some(1),
                r: Some(1),
                w: Some(1),
                ..Default::default()
            };
            build_config(args).unwrap().secret
        };
        let secret = |text: &str| Some(ClusterSecret::new(text.as_bytes()).unwrap());
        assert_eq!(config(None), secret("secret named in the TOML"));
        assert_eq!(
            config(Some(flag_secret)),
            secret("secret named by the flag")
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_secret_comes_from_the_file_first_then_the_environment_and_is_checked() {
        use std::ffi::OsStr;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from the file, 16+ bytes\n").unwrap();
        let env = Some(OsStr::new("from the environment, 16+"));
        let secret = |file, env| load_secret(file, env).unwrap();
        assert_eq!(
            secret(Some(file.as_path()), env),
            Some(ClusterSecret::new(b"from the file, 16+ bytes").unwrap())
        );
        assert_eq!(
            secret(None, env),
            Some(ClusterSecret::new(b"from the environment, 16+").unwrap())
        );
        assert_eq!(secret(None, None), None, "open mode");
        let short = load_secret(None, Some(OsStr::new("short"))).unwrap_err();
        assert!(
            short.to_string().contains("RINGKV_SECRET")
                && short.to_string().contains("at least 16"),
            "{short}"
        );
        let missing = load_secret(Some(&dir.path().join("nope")), None).unwrap_err();
        assert!(format!("{missing:#}").contains("nope"), "{missing:#}");
    }

    #[test]
    fn the_boot_id_is_read_and_stable_within_a_boot() {
        let first = boot_id().expect("Linux publishes a boot id");
        assert!(!first.is_empty() && !first.contains('\n'));
        assert_eq!(boot_id().as_deref(), Some(first.as_str()));
    }
}
