//! How a node learns its cluster at start: from what it persisted, by
//! founding it from `--peer`, or by joining through `--seed`.
//!
//! 1. **Persisted** (any restart): the layout history and membership table
//!    it kept win over flags. A `--peer` list that disagrees is logged, not
//!    obeyed: membership changes only through `ringkv admin`.
//! 2. **Founding** (`--peer`, empty data directory): every founding node
//!    computes the same first layout from the same flags; its digest is the
//!    cluster's *genesis*, checked in every handshake, so nodes started
//!    with different peer lists refuse each other instead of forking.
//! 3. **Joining** (`--seed` and no `--peer`, empty data directory): the node
//!    asks a seed to add it ([`Request::Join`]). The seed applies the join
//!    as the next layout version and answers with the genesis and the
//!    history; the node starts *joining*, and becomes *normal* once the
//!    partitions it gained have streamed in. It retries the seeds, one
//!    after another, until one accepts or the node is stopped.

use crate::cluster_state::{self, Persisted};
use crate::config::NodeConfig;
use crate::net::Network;
use crate::rpc::{Greeting, PeerClient, RpcError};
use ringkv_core::auth::NONCE_BYTES;
use ringkv_core::layout::{Layout, Member};
use ringkv_core::layout_history::LayoutHistory;
use ringkv_core::membership::{MembershipSnapshot, NodeRecord};
use ringkv_core::protocol::{Hello, JoinRefusal, JoinRequest, Request, Response, PROTOCOL_VERSION};
use ringkv_core::NodeId;
use ringkv_storage::Storage;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pause between two join attempts.
pub const JOIN_RETRY_MS: u64 = 1000;

/// What the node starts with.
pub struct Begun {
    pub history: LayoutHistory,
    pub genesis: u64,
    pub founders: Vec<Member>,
    pub membership: Option<MembershipSnapshot>,
}

/// This node's own gossip record, from its config.
pub fn own_record(config: &NodeConfig) -> NodeRecord {
    NodeRecord {
        id: config.id.clone(),
        rpc: config
            .advertise_rpc
            .clone()
            .unwrap_or_else(|| config.rpc.clone()),
        http: Some(config.http.to_string()),
        capacity: config.capacity,
        zone: config.zone.clone(),
        synced: None,
        acked: None,
        read: None,
        transfer: None,
    }
}

/// The greeting this node opens connections with.
pub fn hello(config: &NodeConfig, genesis: u64, founders: &[Member]) -> Greeting {
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster: config.cluster.clone(),
        from: Some(config.id.clone()),
        layout_digest: genesis,
        settings: config.settings(),
        members: founders.to_vec(),
        secured: false,
        nonce: [0; NONCE_BYTES],
    };
    Greeting::new(hello, config.cluster_key())
}

/// Learns the cluster (see the module docs). `None`: stopped while joining.
pub async fn begin(
    config: &NodeConfig,
    storage: &dyn Storage,
    network: Arc<dyn Network>,
    stop: &CancellationToken,
) -> Result<Option<Begun>, String> {
    if let Some(persisted) = cluster_state::load(storage)? {
        return restore(config, persisted).map(Some);
    }
    if config.joins_by_seed() {
        return join(config, network, stop).await;
    }
    let first = Arc::new(config.layout()?);
    Ok(Some(Begun {
        genesis: first.digest(),
        founders: first.members().to_vec(),
        history: LayoutHistory::new(first),
        membership: None,
    }))
}

fn restore(config: &NodeConfig, p: Persisted) -> Result<Begun, String> {
    let history = p
        .history
        .restore(config.layout_params())
        .map_err(|e| format!("the persisted layout history: {e}"))?
        .ok_or("the persisted layout history is empty")?;
    let newest = &history.newest().layout;
    let configured: Vec<NodeId> = config.members().into_iter().map(|m| m.id).collect();
    if !config.peers.is_empty() && !same_members(newest, &configured) {
        tracing::warn!(
            configured = ?configured.iter().map(NodeId::as_str).collect::<Vec<_>>(),
            layout_version = newest.version(),
            "--peer names other members than the persisted layout; the persisted layout wins (change membership with `ringkv admin`)"
        );
    }
    Ok(Begun {
        history,
        genesis: p.genesis,
        founders: p.founders,
        membership: Some(p.membership),
    })
}

fn same_members(layout: &Layout, ids: &[NodeId]) -> bool {
    layout.members().len() == ids.len() && ids.iter().all(|id| layout.member(id).is_some())
}

/// Asks the seeds, in turn, to add this node, until one accepts.
async fn join(
    config: &NodeConfig,
    network: Arc<dyn Network>,
    stop: &CancellationToken,
) -> Result<Option<Begun>, String> {
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let request = Request::Join(JoinRequest {
        record: own_record(config),
    });
    for attempt in 0u64.. {
        let seed = &config.seeds[attempt as usize % config.seeds.len()];
        let client = PeerClient::contact(
            seed.clone(),
            hello(config, 0, &[]),
            network.clone(),
            Duration::from_millis(config.connect_timeout_ms),
        );
        let answer = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(None),
            a = client.call(request.clone(), timeout) => a,
        };
        match answer {
            Ok(Response::Join(Ok(accepted))) => {
                let history = accepted
                    .history
                    .restore(config.layout_params())
                    .map_err(|e| format!("seed {seed} sent a bad layout history: {e}"))?
                    .ok_or_else(|| format!("seed {seed} sent an empty layout history"))?;
                tracing::info!(%seed, layout_version = history.newest().layout.version(), "joined the cluster; streaming this node's partitions in");
                return Ok(Some(Begun {
                    history,
                    genesis: accepted.genesis,
                    founders: accepted.founders,
                    membership: None,
                }));
            }
            Ok(Response::Join(Err(JoinRefusal::Busy { active }))) => {
                tracing::warn!(%seed, active, "the cluster is still moving data for earlier changes; asking again");
            }
            Ok(Response::Join(Err(refusal))) => {
                return Err(format!("seed {seed} refused to add this node: {refusal}"));
            }
            Ok(other) => tracing::warn!(%seed, ?other, "unexpected answer to a join request"),
            // Another cluster name, secret or settings: retrying cannot help.
            Err(RpcError::HandshakeRefused { reason, .. }) => {
                return Err(format!(
                    "seed {seed} refused this node: {reason} (start it with the cluster's name, secret and settings: --cluster, --secret-file, --n/--r/--w, --partitions)"
                ));
            }
            Err(e) => {
                tracing::warn!(%seed, error = %e, "could not join through this seed; trying the next")
            }
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_millis(JOIN_RETRY_MS)) => {}
        }
    }
    Ok(None)
}
