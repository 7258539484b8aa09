//! A running node: wires storage, group commit, replica, coordinator, RPC and
//! HTTP together, and takes them down again in order.
//!
//! [`run`] is the whole life of a node. It is generic over its edges — the
//! [`Network`] it speaks through, the [`Storage`] engine and the wall clock —
//! so the same code runs as a real process and inside the deterministic
//! simulation. Shutdown (SIGTERM / Ctrl-C in the binary, a token in tests):
//! stop accepting HTTP and let in-flight requests finish, stop RPC, then sync
//! storage so everything written is durable before the process exits, stop
//! the storage lanes, and record the clean shutdown (see [`crate::actor`]).

use crate::anti_entropy::AntiEntropy;
use crate::cluster_state::{ClusterState, Founding};
use crate::commit::Committer;
use crate::config::NodeConfig;
use crate::coordinator::{Coordinator, WallClock};
use crate::handoff::Handoff;
use crate::hint_store::HintStore;
use crate::metrics::Metrics;
use crate::net::Network;
use crate::partition_trees::PartitionTrees;
use crate::replica::LocalReplica;
use crate::rpc::server::{self, Identity};
use crate::rpc::PeerClient;
use crate::storage_lanes::StorageLanes;
use crate::tombstone_gc::TombstoneCollector;
use ringkv_core::coordinate::Timeouts;
use ringkv_core::membership::Membership;
use ringkv_core::NodeId;
use ringkv_storage::Storage;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot learn the cluster: {0}")]
    Cluster(String),
    #[error("cannot listen for RPC on {addr}: {source}")]
    RpcBind {
        addr: String,
        source: std::io::Error,
    },
    #[error("storage failed at start: {0}")]
    Storage(String),
    #[error("cannot listen for HTTP on {addr}: {source}")]
    HttpBind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot serve HTTP over TLS: {0}")]
    HttpTls(#[from] crate::http::tls::TlsError),
}

/// The state shared by every request a node serves.
pub struct NodeState {
    pub config: NodeConfig,
    /// Membership and layout history (the view requests use is built from it).
    pub cluster: Arc<ClusterState>,
    pub coordinator: Coordinator,
    /// Hints held for unreachable replicas (this node as a stand-in).
    pub hints: Arc<HintStore>,
    pub metrics: Arc<Metrics>,
    /// Bounds the client requests coordinated at once.
    pub in_flight: Arc<Semaphore>,
    /// Cancelled at shutdown: stops the background work started while the
    /// node runs (streams).
    pub background: CancellationToken,
    /// That work's tasks; shutdown waits for them before the final sync.
    pub tasks: TaskTracker,
    /// The key derived from the cluster secret: handshake proofs and the
    /// MACs of context tokens.
    pub cluster_key: Arc<ringkv_core::auth::ClusterKey>,
}

/// The failure detector's settings for a gossip interval: the first
/// heartbeat is expected one interval after a peer is first seen.
fn liveness_config(gossip_interval_ms: u64) -> ringkv_core::liveness::LivenessConfig {
    let mut config = ringkv_core::liveness::LivenessConfig::default();
    config.phi.first_heartbeat_estimate_ms = gossip_interval_ms;
    config.clamped()
}

/// The edges a node runs on.
pub struct Edges {
    pub network: Arc<dyn Network>,
    pub storage: Arc<dyn Storage>,
    pub wall_clock: WallClock,
    /// Serve the HTTP API (the simulation talks RPC only).
    pub serve_http: bool,
    /// The running OS boot's id (`/proc/sys/kernel/random/boot_id` on
    /// Linux); `None` if unknown. An unclean restart on the same boot keeps
    /// the actor epoch; see [`crate::actor`].
    pub boot_id: Option<String>,
}

/// The wall clock of a real process.
pub fn system_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

/// Runs a node until `shutdown` is cancelled, then stops it cleanly.
/// `ready` (if given) is cancelled once both listeners are bound.
pub async fn run(
    config: NodeConfig,
    edges: Edges,
    shutdown: CancellationToken,
    ready: Option<CancellationToken>,
) -> Result<(), StartError> {
    run_with(config, edges, shutdown, ready, None).await
}

/// Called once a node serves, with its state: how a test, a benchmark
/// or (later) the layout history starts work on a running node, such as
/// [`NodeState::start_streaming`].
pub type OnStart = Box<dyn FnOnce(&Arc<NodeState>) + Send>;

/// [`run`], calling `on_start` (if given) once RPC is bound and served.
pub async fn run_with(
    config: NodeConfig,
    edges: Edges,
    shutdown: CancellationToken,
    ready: Option<CancellationToken>,
    on_start: Option<OnStart>,
) -> Result<(), StartError> {
    config.validate().map_err(StartError::Config)?;
    let http_tls = match (&config.http_tls_cert, &config.http_tls_key) {
        (Some(cert), Some(key)) if edges.serve_http => {
            Some(crate::http::tls::server_config(cert, key)?)
        }
        _ => None,
    };
    let crate::actor::Begun { actor, start } = crate::actor::begin(
        &*edges.storage,
        &config.id,
        (edges.wall_clock)(),
        edges.boot_id.as_deref(),
    )
    .map_err(|e| StartError::Storage(e.to_string()))?;
    match start {
        crate::actor::Start::NewBoot => {
            tracing::warn!(node = %config.id, %actor, "last run did not shut down cleanly and the OS restarted since (or its boot id is unknown); minting dots under a new actor epoch")
        }
        crate::actor::Start::ProcessCrash => {
            tracing::warn!(node = %config.id, %actor, "last run did not shut down cleanly; same OS boot, so nothing written was lost and the actor epoch is kept")
        }
        crate::actor::Start::Fresh | crate::actor::Start::Clean => {}
    }
    let metrics = Arc::new(Metrics::new());
    let lanes = StorageLanes::for_engine(&*edges.storage)
        .map_err(|e| StartError::Storage(format!("cannot start the storage lanes: {e}")))?;
    let storage_stop = CancellationToken::new();
    let (committer, commit_task) = Committer::start(
        edges.storage,
        config.fsync,
        metrics.clone(),
        Arc::new(lanes),
        storage_stop.clone(),
    );
    let origin = tokio::time::Instant::now();
    let begun = crate::bootstrap::begin(
        &config,
        &**committer.storage(),
        edges.network.clone(),
        &shutdown,
    )
    .await;
    let begun = match begun {
        Ok(Some(begun)) => begun,
        Ok(None) => {
            // Stopped while still asking to join: nothing was written.
            let _ = committer.close().await;
            storage_stop.cancel();
            let _ = commit_task.await;
            committer.lanes().close().await;
            return Ok(());
        }
        Err(e) => return Err(StartError::Cluster(e)),
    };
    let settings = config.settings();
    let hello = crate::bootstrap::hello(&config, begun.genesis, &begun.founders);
    let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
    let network = edges.network.clone();
    let connect: crate::cluster_state::Connect = Arc::new({
        let hello = hello.clone();
        move |id: &NodeId, rpc: &str| {
            PeerClient::new(
                id.clone(),
                rpc.to_string(),
                hello.clone(),
                network.clone(),
                connect_timeout,
            )
        }
    });
    let record = crate::bootstrap::own_record(&config);
    let generation = (edges.wall_clock)();
    let membership = match begun.membership {
        Some(snapshot) => Membership::restore(record, generation, snapshot)
            .map_err(|e| StartError::Cluster(format!("the persisted membership: {e}")))?,
        None => Membership::new(record, generation)
            .map_err(|e| StartError::Config(format!("this node's gossip record: {e}")))?,
    };
    let newest = begun.history.newest().layout.clone();
    tracing::info!(
        node = %config.id,
        layout_version = newest.version(),
        oldest_version = begun.history.oldest().version(),
        partitions = newest.partitions(),
        digest = format!("{:016x}", newest.digest()),
        "layout history loaded"
    );
    let cluster = Arc::new(ClusterState::new(Founding {
        me: config.id.clone(),
        settings: settings.clone(),
        params: config.layout_params(),
        configured: config.addresses(),
        membership,
        history: begun.history,
        genesis: begun.genesis,
        founders: begun.founders.clone(),
        committer: committer.clone(),
        connect,
        ack_after_ms: config
            .request_timeout_ms
            .saturating_add(Timeouts::default().forward_margin_ms),
        judge: crate::view::Judge {
            origin,
            liveness: liveness_config(config.gossip_interval_ms),
        },
        wall_clock: edges.wall_clock.clone(),
    }));
    cluster
        .persist()
        .await
        .map_err(|e| StartError::Storage(format!("cannot persist the cluster state: {e}")))?;
    let rebuild_started = tokio::time::Instant::now();
    let (trees, tree_keys) = PartitionTrees::rebuild(
        &**committer.storage(),
        settings.partitions,
        settings.clone(),
    )
    .map_err(|e| StartError::Storage(format!("cannot rebuild the anti-entropy trees: {e}")))?;
    tracing::info!(
        keys = tree_keys,
        ms = rebuild_started.elapsed().as_millis() as u64,
        "anti-entropy trees rebuilt from storage"
    );
    let replica = Arc::new(LocalReplica::new(actor, committer.clone(), Arc::new(trees)));
    let refilling = crate::refill::is_pending(&**committer.storage())
        .map_err(|e| StartError::Storage(format!("cannot read the refill marker: {e}")))?;
    if refilling {
        replica.set_refilling(true);
        tracing::warn!(node = %config.id, "this node's store was rebuilt and is refilling from its peers: it refuses reads (coordinators take R from the other replicas) until every partition it holds has arrived");
    }
    let coordinator = Coordinator {
        id: config.id.clone(),
        view: cluster.view.clone(),
        replica: replica.clone(),
        limits: config.limits,
        timeouts: Timeouts {
            request_timeout_ms: config.request_timeout_ms,
            read_speculation_ms: config.read_speculation_ms,
            write_stand_in_after_ms: Timeouts::default().write_stand_in_after_ms,
            forward_margin_ms: Timeouts::default().forward_margin_ms,
        },
        wall_clock: edges.wall_clock,
        metrics: metrics.clone(),
        origin,
    };
    let hints = HintStore::open(
        committer.clone(),
        config.hints,
        config.limits.max_siblings,
        coordinator.wall_clock.clone(),
        metrics.clone(),
    )
    .map(Arc::new)
    .map_err(|e| StartError::Storage(format!("cannot read the hints: {e}")))?;
    let background_stop = CancellationToken::new();
    let interval = Duration::from_millis(config.handoff_interval_ms);
    let handoff = Handoff {
        store: hints.clone(),
        view: coordinator.view.clone(),
        metrics: metrics.clone(),
        wall_clock: coordinator.wall_clock.clone(),
        origin: coordinator.origin,
        interval,
    };
    let handoff_task = tokio::spawn(handoff.run(background_stop.clone()));
    let probe_task = tokio::spawn(crate::probe::run(
        coordinator.view.clone(),
        coordinator.origin,
        interval,
        background_stop.clone(),
    ));
    let anti_entropy = AntiEntropy {
        id: config.id.clone(),
        replica: replica.clone(),
        view: coordinator.view.clone(),
        metrics: metrics.clone(),
        limits: config.anti_entropy,
        interval: Duration::from_millis(config.anti_entropy_interval_ms),
        bytes_per_sec: config.anti_entropy_bytes_per_sec,
        max_siblings: config.limits.max_siblings,
        origin: coordinator.origin,
    };
    let anti_entropy_task = tokio::spawn(anti_entropy.run(background_stop.clone()));
    let collector = TombstoneCollector {
        id: config.id.clone(),
        replica: replica.clone(),
        view: coordinator.view.clone(),
        metrics: metrics.clone(),
        wall_clock: coordinator.wall_clock.clone(),
        grace_ms: config.tombstone_grace_ms,
        interval: Duration::from_millis(config.gc_interval_ms),
        origin: coordinator.origin,
    };
    let collector_task = tokio::spawn(collector.run(background_stop.clone()));
    let removed_view = cluster.view.clone();
    let (pulls, pulls_seen) = tokio::sync::watch::channel(crate::cluster_state::PullPlan::Idle);
    let gossip = crate::gossip::Gossip {
        state: cluster.clone(),
        // Configured peers are contacts too; this node's own address is not.
        seeds: config
            .seeds
            .iter()
            .chain(config.peers.iter().map(|p| &p.rpc))
            .filter(|a| **a != config.rpc && Some(*a) != config.advertise_rpc.as_ref())
            .cloned()
            .collect(),
        seed_client: Arc::new({
            let (hello, network) = (hello.clone(), edges.network.clone());
            move |addr: &str| {
                PeerClient::contact(
                    addr.to_string(),
                    hello.clone(),
                    network.clone(),
                    connect_timeout,
                )
            }
        }),
        interval: Duration::from_millis(config.gossip_interval_ms),
        timeout: Duration::from_millis(config.gossip_interval_ms.max(100)),
        pulls,
        rng_seed: {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (config.id.as_str(), generation).hash(&mut h);
            h.finish()
        },
    };
    let gossip_task = tokio::spawn(gossip.run(background_stop.clone()));
    let streamer = Arc::new(crate::streaming::Streamer {
        replica: replica.clone(),
        view: cluster.view.clone(),
        metrics: metrics.clone(),
        limits: config.streaming,
        max_siblings: config.limits.max_siblings,
        origin,
    });
    let rebalance = crate::rebalance::Rebalance {
        state: cluster.clone(),
        streamer: streamer.clone(),
    };
    let rebalance_task = tokio::spawn(rebalance.run(pulls_seen, background_stop.clone()));
    let refill_task = refilling.then(|| {
        let refill = crate::refill::Refill {
            state: cluster.clone(),
            streamer,
            replica: replica.clone(),
            gossip_interval: Duration::from_millis(config.gossip_interval_ms),
        };
        tokio::spawn(refill.run(background_stop.clone()))
    });
    let state = Arc::new(NodeState {
        background: background_stop.clone(),
        tasks: TaskTracker::new(),
        in_flight: Arc::new(Semaphore::new(config.limits.max_in_flight_requests)),
        cluster_key: Arc::new(config.cluster_key()),
        config: config.clone(),
        cluster,
        coordinator,
        hints,
        metrics,
    });

    let listener = edges
        .network
        .bind(&config.rpc)
        .await
        .map_err(|source| StartError::RpcBind {
            addr: config.rpc.clone(),
            source,
        })?;
    let http = if edges.serve_http {
        Some(
            tokio::net::TcpListener::bind(config.http)
                .await
                .map_err(|source| StartError::HttpBind {
                    addr: config.http.to_string(),
                    source,
                })?,
        )
    } else {
        None
    };
    let identity = Identity {
        node: config.id.clone(),
        cluster: config.cluster.clone(),
        layout_digest: begun.genesis,
        settings,
        members: begun.founders,
        removed: Arc::new(move |id: &NodeId| removed_view.load().history.is_removed(id)),
        key: state.cluster_key.clone(),
        refusals: Default::default(),
    };
    let rpc_stop = CancellationToken::new();
    let rpc_tasks = TaskTracker::new();
    let rpc_task = tokio::spawn(server::serve(
        listener,
        state.clone(),
        identity,
        config.server_limits(),
        rpc_stop.clone(),
        rpc_tasks.clone(),
    ));
    if let Some(on_start) = on_start {
        on_start(&state);
    }
    if let Some(ready) = ready {
        ready.cancel();
    }
    tracing::info!(node = %config.id, http = %config.http, rpc = %config.rpc, fsync = %config.fsync, "node started");

    match http {
        Some(listener) => {
            crate::http::serve(listener, http_tls, state.clone(), shutdown.clone()).await
        }
        None => shutdown.cancelled().await,
    }
    tracing::info!(node = %config.id, "shutting down: HTTP drained, stopping RPC and syncing storage");
    rpc_stop.cancel();
    background_stop.cancel();
    let _ = rpc_task.await;
    let _ = handoff_task.await;
    let _ = probe_task.await;
    let _ = anti_entropy_task.await;
    let _ = collector_task.await;
    let _ = gossip_task.await;
    let _ = rebalance_task.await;
    if let Some(task) = refill_task {
        let _ = task.await;
    }
    state.tasks.close();
    state.tasks.wait().await;
    // Let replica writes and coordinations already running finish (each is
    // bounded by its own deadline) before the final sync.
    rpc_tasks.close();
    let drain = Duration::from_millis(config.request_timeout_ms.saturating_mul(2));
    let drained = tokio::time::timeout(drain, rpc_tasks.wait()).await.is_ok();
    let closed = committer.close().await;
    storage_stop.cancel();
    let _ = commit_task.await;
    committer.lanes().close().await;
    match (drained, closed) {
        (true, Ok(())) => {
            if let Err(e) = crate::actor::end(&**committer.storage()) {
                tracing::error!(error = %e, "could not record the clean shutdown; the next start will use a new actor epoch");
            }
        }
        (false, _) => {
            tracing::warn!("RPC handlers still running at shutdown; not marking it clean")
        }
        (_, Err(e)) => {
            tracing::error!(error = %e, "final sync failed; not marking the shutdown clean")
        }
    }
    tracing::info!(node = %config.id, "stopped");
    Ok(())
}
