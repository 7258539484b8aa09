//! Simulation: a node in a crash loop keeps its hot keys writable.
//!
//! One real `ringkv_node::run` node on turmoil's network and a `MemStorage`
//! disk is killed and restarted 1,000 times between writes to one hot key
//! (a *process* kill: the disk keeps everything written, as the OS page
//! cache does), and every 200th restart is a power loss instead
//! (`MemStorage::crash`, which drops unsynced writes and so changes the
//! simulated host's boot id). Writes are acknowledged before they are
//! synced (`fsync = periodic`), so crashes do land on unsynced writes.
//!
//! It checks, after every round, that no dot ever names two different
//! values (the property actor epochs exist for), and at the end that the
//! hot key is still writable and its clock holds one entry per epoch: the
//! first life plus one per power loss, none per process kill.
//!
//! Replay a seed with `RINGKV_SIM_SEED=<seed> cargo test -p ringkv-node --test sim_restarts`.

mod sim_net;

use bytes::Bytes;
use ringkv_core::auth::{ClusterKey, ClusterSecret};
use ringkv_core::key::ObjectKey;
use ringkv_core::protocol::{ClientRequest, ClientResponse, OpError, Request, Response};
use ringkv_core::replication::{Replication, RequestQuorum};
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use ringkv_node::commit::FsyncPolicy;
use ringkv_node::rpc::Greeting;
use ringkv_node::rpc::PeerClient;
use ringkv_node::{Edges, NodeConfig};
use ringkv_storage::MemStorage;
use sim_net::SimNetwork;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const RPC_PORT: u16 = 9000;
const RESTARTS: u32 = 1_000;
/// Every this many restarts is a power loss rather than a process kill.
const POWER_LOSS_EVERY: u32 = 200;
const HOT: &str = "hot";

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn secret() -> ClusterSecret {
    ClusterSecret::new(b"the simulated node's secret").unwrap()
}

fn node_config() -> NodeConfig {
    let mut config = NodeConfig::new(
        id("n1"),
        "127.0.0.1:0".parse().unwrap(),
        format!("0.0.0.0:{RPC_PORT}"),
        "/sim".into(),
    );
    config.replication = Replication { n: 1, r: 1, w: 1 };
    config.fsync = FsyncPolicy::Periodic { interval_ms: 50 };
    config.secret = Some(secret());
    config.request_timeout_ms = 2_000;
    config
}

/// A fresh client (no reconnection backoff carried over from the last life).
fn client() -> PeerClient {
    let hello = Greeting::client("ringkv", ClusterKey::from_secret(&secret()));
    PeerClient::new(
        id("n1"),
        format!("n1:{RPC_PORT}"),
        hello,
        Arc::new(SimNetwork),
        Duration::from_secs(1),
    )
}

fn key() -> ObjectKey {
    ObjectKey::new("sim", Bytes::from_static(HOT.as_bytes()), 1024).unwrap()
}

async fn coordinate(node: &PeerClient, request: ClientRequest) -> ClientResponse {
    let request = Request::Coordinate {
        request,
        forwarded: false,
    };
    match node.call(request, Duration::from_secs(5)).await {
        Ok(Response::Coordinate(response)) => response,
        other => panic!("coordinate failed: {other:?}"),
    }
}

async fn put(
    node: &PeerClient,
    context: VersionVector,
    value: String,
) -> Result<VersionVector, OpError> {
    let request = ClientRequest::Put {
        key: key(),
        context,
        value: Some(Bytes::from(value)),
        quorum: RequestQuorum::default(),
        ttl_secs: None,
    };
    match coordinate(node, request).await {
        ClientResponse::Put(result) => result,
        other => panic!("put answered {other:?}"),
    }
}

async fn get(node: &PeerClient) -> Option<Siblings> {
    let request = ClientRequest::Get {
        key: key(),
        quorum: RequestQuorum::default(),
    };
    match coordinate(node, request).await {
        ClientResponse::Get(result) => result.expect("get"),
        other => panic!("get answered {other:?}"),
    }
}

/// A client for the restarted node, once it answers a ping.
async fn wait_until_up() -> PeerClient {
    loop {
        let node = client();
        if node
            .call(Request::Ping, Duration::from_secs(1))
            .await
            .is_ok()
        {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Every dot seen so far and the value it named.
#[derive(Default)]
struct DotOracle(HashMap<(String, u64), Option<Bytes>>);

impl DotOracle {
    fn check(&mut self, object: &Siblings, round: u32) {
        for version in object.versions() {
            let dot = (version.dot.node.as_str().to_string(), version.dot.counter);
            let seen = self
                .0
                .entry(dot.clone())
                .or_insert_with(|| version.value.clone());
            assert_eq!(
                *seen, version.value,
                "round {round}: dot {dot:?} was minted twice for different values"
            );
        }
    }
}

fn run(seed: u64) -> turmoil::Result {
    let disk = MemStorage::new();
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(2))
        .simulation_duration(Duration::from_secs(3_600))
        .build();
    let host_disk = disk.clone();
    sim.host("n1", move || {
        let storage = host_disk.clone();
        async move {
            // A new boot exactly when the test cut the power.
            let boot_id = format!("n1-boot-{}", storage.crashes());
            let edges = Edges {
                network: Arc::new(SimNetwork),
                storage: Arc::new(storage),
                wall_clock: Arc::new(|| 1_800_000_000_000),
                serve_http: false,
                boot_id: Some(boot_id),
            };
            ringkv_node::run(node_config(), edges, CancellationToken::new(), None).await?;
            Ok(())
        }
    });
    // 0: the client is writing; 1: it asks for a restart; 2: restarted.
    let phase = Arc::new(AtomicU8::new(0));
    let client_phase = phase.clone();
    sim.client("client", async move {
        let mut oracle = DotOracle::default();
        for round in 0..=RESTARTS {
            let node = wait_until_up().await;
            let context = get(&node).await.map(|o| {
                oracle.check(&o, round);
                o.clock().clone()
            });
            put(&node, context.unwrap_or_default(), format!("v{round}"))
                .await
                .unwrap_or_else(|e| panic!("round {round}: the hot key refused a write: {e}"));
            let object = get(&node).await.expect("just written");
            oracle.check(&object, round);
            assert_eq!(object.len(), 1, "read-modify-write leaves one version");
            if round == RESTARTS {
                let power_losses = (RESTARTS / POWER_LOSS_EVERY) as usize;
                let clock = object.clock();
                assert!(
                    clock.len() <= 1 + power_losses,
                    "{} clock entries after {RESTARTS} restarts with {power_losses} power losses",
                    clock.len()
                );
                break;
            }
            client_phase.store(1, Ordering::SeqCst);
            while client_phase.load(Ordering::SeqCst) != 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            client_phase.store(0, Ordering::SeqCst);
        }
        Ok(())
    });
    let mut restarts = 0u32;
    while !sim.step()? {
        if phase.load(Ordering::SeqCst) == 1 {
            restarts += 1;
            sim.crash("n1");
            if restarts.is_multiple_of(POWER_LOSS_EVERY) {
                disk.crash();
            }
            sim.bounce("n1");
            phase.store(2, Ordering::SeqCst);
        }
    }
    assert_eq!(restarts, RESTARTS);
    assert_eq!(disk.crashes(), u64::from(RESTARTS / POWER_LOSS_EVERY));
    Ok(())
}

#[test]
fn a_thousand_unclean_restarts_leave_the_hot_key_writable_with_a_small_clock() {
    let seed = std::env::var("RINGKV_SIM_SEED")
        .map(|s| s.parse().expect("RINGKV_SIM_SEED must be a number"))
        .unwrap_or(1);
    if let Err(e) = run(seed) {
        panic!("seed {seed} failed: {e}\nreplay: RINGKV_SIM_SEED={seed} cargo test -p ringkv-node --test sim_restarts");
    }
}
