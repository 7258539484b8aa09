//! A simulated cluster of real `ringkv_node::run` nodes on turmoil, shared
//! by the simulation tests (`sim.rs`, `sim_handoff.rs`): node configs, the
//! cluster builder, clients speaking the node-to-node RPC, and the seed loop
//! that names the command replaying a failed seed. Test support only.

use crate::sim_net::SimNetwork;
use bytes::Bytes;
use ringkv_core::anti_entropy::{ExchangeReply, ExchangeRequest, TreeQuery};
use ringkv_core::auth::{ClusterKey, ClusterSecret};
use ringkv_core::key::ObjectKey;
use ringkv_core::protocol::{ClientRequest, ClientResponse, OpError, Request, Response};
use ringkv_core::replication::{Replication, RequestQuorum};
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use ringkv_node::rpc::Greeting;
use ringkv_node::rpc::PeerClient;
use ringkv_node::{Edges, NodeConfig, PeerConfig};
use ringkv_storage::MemStorage;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const RPC_PORT: u16 = 9000;
/// Seeds each test runs with unless RINGKV_SIM_SEED picks one.
pub const DEFAULT_SEEDS: std::ops::Range<u64> = 1..6;

pub fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

/// The cluster secret every simulated node and client is given.
pub fn sim_secret() -> ClusterSecret {
    ClusterSecret::new(b"the simulated cluster's secret").unwrap()
}

/// The config of node `me` in a cluster of `nodes`: N = 3, R = W = 2.
pub fn node_config(me: &str, nodes: &[&'static str]) -> NodeConfig {
    let mut config = NodeConfig::new(
        id(me),
        "127.0.0.1:0".parse().unwrap(),
        format!("0.0.0.0:{RPC_PORT}"),
        "/sim".into(),
    );
    config.advertise_rpc = Some(format!("{me}:{RPC_PORT}"));
    config.secret = Some(sim_secret());
    config.peers = nodes
        .iter()
        .filter(|n| **n != me)
        .map(|n| PeerConfig {
            id: id(n),
            rpc: format!("{n}:{RPC_PORT}"),
            capacity: 1,
            zone: None,
        })
        .collect();
    config.replication = Replication { n: 3, r: 2, w: 2 };
    config.request_timeout_ms = 2_000;
    config.handoff_interval_ms = 200;
    config.anti_entropy_interval_ms = 200;
    config.anti_entropy.recheck_after_ms = 300;
    config
}

/// Builds a simulation with `seed` and registers one host per node, each on
/// its disk from `disks` (so a test can crash them), configured by
/// `configure` after [`node_config`].
pub fn cluster_on(
    seed: u64,
    nodes: &[&'static str],
    disks: Vec<MemStorage>,
    configure: fn(&mut NodeConfig),
) -> turmoil::Sim<'static> {
    cluster_with(seed, nodes, disks, configure, Arc::new(|_| None))
}

/// What a test starts on a node each time it (re)starts, by name: called
/// once per life, its answer is handed to `ringkv_node::run_with`.
pub type OnStartOf = Arc<dyn Fn(&'static str) -> Option<ringkv_node::OnStart>>;

/// [`cluster_on`], with `on_start` called as each node (re)starts.
pub fn cluster_with(
    seed: u64,
    nodes: &[&'static str],
    disks: Vec<MemStorage>,
    configure: fn(&mut NodeConfig),
    on_start: OnStartOf,
) -> turmoil::Sim<'static> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(25))
        .simulation_duration(Duration::from_secs(120))
        .build();
    let all: Vec<&'static str> = nodes.to_vec();
    for (name, storage) in nodes.iter().copied().zip(disks) {
        host(&mut sim, name, &all, storage, configure, on_start.clone());
    }
    sim
}

/// Registers node `name` (its peers: the other `founders`; a node not among
/// them has no peers, for `configure` to give it seeds), on `storage`.
/// Called while the simulation runs, it starts a node later.
pub fn host(
    sim: &mut turmoil::Sim<'_>,
    name: &'static str,
    founders: &[&'static str],
    storage: MemStorage,
    configure: fn(&mut NodeConfig),
    on_start: OnStartOf,
) {
    host_with(
        sim,
        name,
        founders,
        storage,
        Arc::new(configure),
        on_start,
        Arc::new(AtomicI64::new(0)),
    );
}

/// [`host`], with any `configure` and the node's wall clock off the
/// simulation's by `skew` ms (clock skew), which the test may change while
/// the node runs (a clock jump).
pub fn host_with(
    sim: &mut turmoil::Sim<'_>,
    name: &'static str,
    founders: &[&'static str],
    storage: MemStorage,
    configure: Arc<dyn Fn(&mut NodeConfig)>,
    on_start: OnStartOf,
    skew: Arc<AtomicI64>,
) {
    let all: Vec<&'static str> = if founders.contains(&name) {
        founders.to_vec()
    } else {
        vec![name]
    };
    sim.host(name, move || {
        let storage = storage.clone();
        let all = all.clone();
        let on_start = on_start(name);
        let configure = configure.clone();
        let skew = skew.clone();
        async move {
            let started = tokio::time::Instant::now();
            // A new boot exactly when the test cut the power.
            let boot_id = format!("{name}-boot-{}", storage.crashes());
            let base = 1_800_000_000_000i64;
            let edges = Edges {
                network: Arc::new(SimNetwork),
                storage: Arc::new(storage),
                wall_clock: Arc::new(move || {
                    let skew_ms = skew.load(Ordering::Relaxed);
                    (base + skew_ms + started.elapsed().as_millis() as i64).max(0) as u64
                }),
                serve_http: false,
                boot_id: Some(boot_id),
            };
            let mut config = node_config(name, &all);
            configure(&mut config);
            let shutdown = CancellationToken::new();
            ringkv_node::run_with(config, edges, shutdown, None, on_start).await?;
            Ok(())
        }
    });
}

/// A simulated client's connection to one node.
pub fn client_of(node: &str) -> PeerClient {
    let hello = Greeting::client("ringkv", ClusterKey::from_secret(&sim_secret()));
    PeerClient::new(
        id(node),
        format!("{node}:{RPC_PORT}"),
        hello,
        Arc::new(SimNetwork),
        Duration::from_secs(1),
    )
}

pub fn key(k: &str) -> ObjectKey {
    ObjectKey::new("sim", Bytes::copy_from_slice(k.as_bytes()), 1024).unwrap()
}

pub async fn call(node: &PeerClient, request: Request) -> Response {
    match node.call(request, Duration::from_secs(10)).await {
        Ok(response) => response,
        Err(e) => panic!("call to {} failed: {e}", node.peer()),
    }
}

pub async fn coordinate(node: &PeerClient, request: ClientRequest) -> ClientResponse {
    let request = Request::Coordinate {
        request,
        forwarded: false,
    };
    match call(node, request).await {
        Response::Coordinate(response) => response,
        other => panic!("coordinate answered {other:?}"),
    }
}

/// A put through `node` with the cluster's quorums.
pub async fn put(
    node: &PeerClient,
    k: &str,
    context: VersionVector,
    value: &str,
) -> Result<VersionVector, OpError> {
    put_with(node, k, context, value, RequestQuorum::default()).await
}

pub async fn put_with(
    node: &PeerClient,
    k: &str,
    context: VersionVector,
    value: &str,
    quorum: RequestQuorum,
) -> Result<VersionVector, OpError> {
    let request = ClientRequest::Put {
        key: key(k),
        context,
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        quorum,
        ttl_secs: None,
    };
    match coordinate(node, request).await {
        ClientResponse::Put(result) => result,
        other => panic!("put answered {other:?}"),
    }
}

/// A get through `node` with the cluster's quorums.
pub async fn get(node: &PeerClient, k: &str) -> Result<Option<Siblings>, OpError> {
    get_with(node, k, RequestQuorum::default()).await
}

pub async fn get_with(
    node: &PeerClient,
    k: &str,
    quorum: RequestQuorum,
) -> Result<Option<Siblings>, OpError> {
    let request = ClientRequest::Get {
        key: key(k),
        quorum,
    };
    match coordinate(node, request).await {
        ClientResponse::Get(result) => result,
        other => panic!("get answered {other:?}"),
    }
}

/// `node`'s own copy of `k`, without coordination.
pub async fn local_copy(node: &PeerClient, k: &str) -> Option<Siblings> {
    let request = Request::ReplicaRead {
        key: key(k),
        hint_for: None,
    };
    match call(node, request).await {
        Response::ReplicaRead(Ok(found)) => found,
        other => panic!("replica read answered {other:?}"),
    }
}

/// `node`'s anti-entropy root of `partition`.
pub async fn root(node: &PeerClient, partition: u32) -> u64 {
    let question = ExchangeRequest::Tree(TreeQuery::Root { partition });
    match call(node, Request::AntiEntropy(question)).await {
        Response::AntiEntropy(Ok(ExchangeReply::Root { hash, .. })) => hash,
        other => panic!("root question answered {other:?}"),
    }
}

pub fn values(object: &Siblings) -> Vec<String> {
    let mut v: Vec<String> = object
        .values()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    v.sort();
    v
}

/// Runs `test` for each seed; a failure names the seed and the command
/// that replays it (`file` is the test target, `name` the test).
pub fn for_each_seed(file: &str, name: &str, test: impl Fn(u64) -> turmoil::Result) {
    let seeds: Vec<u64> = match std::env::var("RINGKV_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("RINGKV_SIM_SEED must be a number")],
        Err(_) => DEFAULT_SEEDS.collect(),
    };
    for seed in seeds {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(seed)));
        let failed = match &outcome {
            Ok(Ok(())) => false,
            Ok(Err(e)) => {
                eprintln!("simulation error: {e}");
                true
            }
            Err(_) => true,
        };
        if failed {
            eprintln!("seed {seed} failed; replay with: RINGKV_SIM_SEED={seed} cargo test -p ringkv-node --test {file} {name}");
            match outcome {
                Err(panic) => std::panic::resume_unwind(panic),
                _ => panic!("seed {seed} failed"),
            }
        }
    }
}

/// Polls `check` every 100 ms of simulated time until it holds, for at most
/// `seconds`; panics with `what` otherwise.
pub async fn eventually<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..seconds * 10 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within {seconds} s: {what}");
}

/// A test's steps that need the simulation itself (crash, bounce): the
/// client asks with [`Steps::ask`], the loop in [`Steps::run`] carries it out.
#[derive(Clone, Default)]
pub struct Steps(Arc<AtomicU8>);

impl Steps {
    /// Asks for step `n` and waits until it was carried out.
    pub async fn ask(&self, n: u8) {
        self.0.store(n, Ordering::SeqCst);
        while self.0.load(Ordering::SeqCst) == n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Steps the simulation; step 1 crashes `node`, step 2 restarts it.
    pub fn crash_then_bounce(&self, sim: &mut turmoil::Sim<'_>, node: &str) -> turmoil::Result {
        self.run(sim, |sim, step| match step {
            1 => sim.crash(node),
            _ => sim.bounce(node),
        })
    }

    /// Steps the simulation, carrying out each step the client asks for.
    pub fn run(
        &self,
        sim: &mut turmoil::Sim<'_>,
        mut step: impl FnMut(&mut turmoil::Sim<'_>, u8),
    ) -> turmoil::Result {
        while !sim.step()? {
            let asked = self.0.load(Ordering::SeqCst);
            if asked != 0 {
                step(sim, asked);
                self.0.store(0, Ordering::SeqCst);
            }
        }
        Ok(())
    }
}
