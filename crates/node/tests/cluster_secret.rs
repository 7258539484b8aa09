//! Only its own get in (N4): a node started with a cluster secret refuses
//! every request, join and gossip from a peer that cannot prove that secret,
//! says why (a typed refusal on the peer's side) and counts each refusal.

use bytes::Bytes;
use ringkv_core::auth::{ClusterKey, ClusterSecret};
use ringkv_core::key::ObjectKey;
use ringkv_core::membership::NodeRecord;
use ringkv_core::protocol::{
    ClientRequest, ClientResponse, HandshakeRefusal, JoinRequest, Request, Response,
};
use ringkv_core::replication::{Replication, RequestQuorum};
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use ringkv_node::net::TcpNetwork;
use ringkv_node::node::NodeState;
use ringkv_node::rpc::{Greeting, PeerClient, RpcError};
use ringkv_node::{Edges, NodeConfig};
use ringkv_storage::MemStorage;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn secret(text: &str) -> ClusterSecret {
    ClusterSecret::new(text.as_bytes()).unwrap()
}

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn config(addr: &str) -> NodeConfig {
    let mut config = NodeConfig::new(
        id("n1"),
        "127.0.0.1:0".parse().unwrap(),
        addr.to_string(),
        "/unused".into(),
    );
    config.replication = Replication { n: 1, r: 1, w: 1 };
    config
}

/// Starts node n1 with the secret `ours` on a free port.
async fn start_node(ours: &str) -> (String, Arc<NodeState>, CancellationToken) {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut config = config(&addr);
    config.secret = Some(secret(ours));
    let edges = Edges {
        network: Arc::new(TcpNetwork),
        storage: Arc::new(MemStorage::new()),
        wall_clock: ringkv_node::system_clock(),
        serve_http: false,
        boot_id: None,
    };
    let (shutdown, ready) = (CancellationToken::new(), CancellationToken::new());
    let state = Arc::new(Mutex::new(None));
    let on_start: ringkv_node::OnStart = Box::new({
        let state = state.clone();
        move |s: &Arc<NodeState>| *state.lock().unwrap() = Some(s.clone())
    });
    let (stop, up) = (shutdown.clone(), ready.clone());
    tokio::spawn(async move {
        ringkv_node::run_with(config, edges, stop, Some(up), Some(on_start)).await
    });
    ready.cancelled().await;
    let state = state.lock().unwrap().clone().expect("on_start ran");
    (addr, state, shutdown)
}

/// A fresh connection (no backoff carried over) from node `n2`, with the
/// node's settings, proving `key`.
fn peer_with(addr: &str, key: ClusterKey) -> PeerClient {
    let mut hello = ringkv_node::bootstrap::hello(&config(addr), 0, &[]).hello;
    hello.from = Some(id("n2"));
    PeerClient::new(
        id("n1"),
        addr.to_string(),
        Greeting::new(hello, key),
        Arc::new(TcpNetwork),
        Duration::from_secs(5),
    )
}

fn key() -> ObjectKey {
    ObjectKey::new("b", Bytes::from_static(b"k"), 64).unwrap()
}

fn requests() -> Vec<(&'static str, Request)> {
    let quorum = RequestQuorum::default();
    let put = ClientRequest::Put {
        key: key(),
        context: VersionVector::new(),
        value: Some(Bytes::from_static(b"v")),
        quorum,
        ttl_secs: None,
    };
    let record = NodeRecord {
        id: id("n2"),
        rpc: "127.0.0.1:1".into(),
        http: None,
        capacity: 1,
        zone: None,
        synced: None,
        acked: None,
        read: None,
        transfer: None,
    };
    vec![
        (
            "write",
            Request::Coordinate {
                request: put,
                forwarded: false,
            },
        ),
        (
            "read",
            Request::Coordinate {
                request: ClientRequest::Get { key: key(), quorum },
                forwarded: false,
            },
        ),
        (
            "replica read",
            Request::ReplicaRead {
                key: key(),
                hint_for: None,
            },
        ),
        ("join", Request::Join(JoinRequest { record })),
    ]
}

#[tokio::test]
async fn a_peer_with_another_secret_cannot_read_write_or_join_and_is_counted() {
    let (addr, state, stop) = start_node("the cluster's own secret").await;
    let theirs = ClusterKey::from_secret(&secret("somebody else's secret"));
    for (what, request) in requests() {
        let refused = peer_with(&addr, theirs.clone())
            .call(request, Duration::from_secs(5))
            .await;
        assert!(
            matches!(
                refused,
                Err(RpcError::HandshakeRefused {
                    reason: HandshakeRefusal::WrongSecret,
                    ..
                })
            ),
            "{what}: {refused:?}"
        );
    }
    let open = peer_with(&addr, ClusterKey::open())
        .call(Request::Ping, Duration::from_secs(5))
        .await;
    assert!(
        matches!(
            open,
            Err(RpcError::HandshakeRefused {
                reason: HandshakeRefusal::SecretMode {
                    ours: true,
                    theirs: false
                },
                ..
            })
        ),
        "{open:?}"
    );
    let metrics = state.metrics.encode();
    assert!(
        metrics.contains("ringkv_rpc_handshakes_refused_total{reason=\"wrong_secret\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ringkv_rpc_handshakes_refused_total{reason=\"secret_mode\"} 1"),
        "{metrics}"
    );

    // The same node lets in a peer with the secret: the refusals were the secret's doing.
    let ours = ClusterKey::from_secret(&secret("the cluster's own secret"));
    let client = peer_with(&addr, ours);
    for (what, request) in requests().into_iter().take(2) {
        let answer = client.call(request, Duration::from_secs(5)).await;
        assert!(
            matches!(
                answer,
                Ok(Response::Coordinate(
                    ClientResponse::Put(Ok(_)) | ClientResponse::Get(Ok(Some(_)))
                ))
            ),
            "{what}: {answer:?}"
        );
    }
    stop.cancel();
}
