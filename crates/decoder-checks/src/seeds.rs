//! A small fixed world (three nodes, two layout versions, a membership
//! table, an object) and one valid encoding per fuzz target, in that
//! target's input format (selector byte first where the target has one).
//!
//! The checks feed decoded values into this world, and the fuzz corpus and
//! the mutation property tests start from these encodings, so mutations
//! reach past the format byte into the fields that matter.

use bytes::Bytes;
use ringkv_core::anti_entropy::{
    ExchangeReply, ExchangeRequest, KeySummaries, KeySummary, SummaryQuery, TreeQuery,
};
use ringkv_core::codec::{encode_message, encode_object};
use ringkv_core::context::encode_context;
use ringkv_core::key::ObjectKey;
use ringkv_core::layout::{compute_layout, Layout, LayoutParams, Member};
use ringkv_core::layout_history::{HistoryWire, LayoutChange, LayoutHistory};
use ringkv_core::membership::{Entry, Membership, MembershipSnapshot, NodeRecord, Stamp};
use ringkv_core::protocol::{
    GossipClose, GossipOpen, GossipReply, Hello, HelloReply, Message, Request, Response,
};
use ringkv_core::siblings::Siblings;
use ringkv_core::streaming::{Chunk, ChunkRequest, CursorRecord, PullId};
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use std::sync::Arc;

/// Every fuzz target, by name (one file each in `fuzz/fuzz_targets/`).
pub const TARGETS: [&str; 10] = [
    "rpc_frame",
    "handshake",
    "gossip",
    "layout_history",
    "context_token",
    "http_path",
    "http_headers",
    "storage_record",
    "stream",
    "anti_entropy",
];

/// The one client token the `http_headers` check configures.
pub const CLIENT_TOKEN: &str = "fuzz-client-token-0123456789";

/// The key position context tokens are decoded against.
pub const KEY_POSITION: u64 = 0x0123_4567_89ab_cdef;

/// The cluster's shape: Q = 16, N = 2.
pub fn params() -> LayoutParams {
    LayoutParams {
        partitions: 16,
        replication: 2,
    }
}

pub fn node(id: &str) -> NodeId {
    NodeId::new(id).expect("a valid node id")
}

fn member(id: &str) -> Member {
    Member {
        id: node(id),
        capacity: 1,
        zone: None,
    }
}

/// Layout version 1 (n1..n3), and version 2 with n4 added.
pub fn layouts() -> (Layout, Layout) {
    let three: Vec<Member> = ["n1", "n2", "n3"].map(member).to_vec();
    let v1 = compute_layout(&three, params(), None).expect("a valid layout");
    let mut four = three;
    four.push(member("n4"));
    let v2 = compute_layout(&four, params(), Some(&v1)).expect("a valid layout");
    (v1, v2)
}

/// A history in transition: versions 1 and 2 active.
pub fn history() -> LayoutHistory {
    let (v1, v2) = layouts();
    let mut history = LayoutHistory::new(Arc::new(v1));
    history.push(Arc::new(v2));
    history
}

pub fn record(id: &str) -> NodeRecord {
    NodeRecord {
        id: node(id),
        rpc: format!("{id}.local:7000"),
        http: Some(format!("{id}.local:8000")),
        capacity: 1,
        zone: None,
        synced: None,
        acked: None,
        read: None,
        transfer: None,
    }
}

/// The membership of n1, which also knows n2 and n3.
pub fn membership() -> Membership {
    let entries = ["n1", "n2", "n3"]
        .iter()
        .map(|id| Entry {
            record: record(id),
            stamp: Stamp {
                generation: 10,
                version: 1,
                heartbeat: 5,
            },
        })
        .collect();
    let snapshot = MembershipSnapshot {
        entries,
        forgotten: Vec::new(),
    };
    Membership::restore(record("n1"), 20, snapshot).expect("a valid membership")
}

pub fn key() -> ObjectKey {
    ObjectKey::new("carts", Bytes::from("alice"), 1024).expect("a valid key")
}

/// An object with two concurrent versions.
pub fn object() -> Siblings {
    let mut object = Siblings::new();
    let empty = VersionVector::new();
    object.update(&empty, &node("n1"), Some(Bytes::from("milk")), 7);
    object.update(&empty, &node("n2"), None, 8);
    object
}

/// One message of each kind a peer sends.
pub fn messages() -> Vec<Message> {
    let hello = Hello {
        members: layouts().0.members().to_vec(),
        from: Some(node("n2")),
        ..Hello::client("c")
    };
    let request = |body| Message::Request { id: 300, body };
    vec![
        Message::Hello(hello),
        Message::HelloReply(HelloReply::Welcome { node: node("n1") }),
        request(Request::ReplicaWrite {
            key: key(),
            object: object(),
            hint_for: Some(node("n3")),
        }),
        request(Request::Gossip(gossip_open())),
        request(Request::StreamChunk(chunk_request())),
        request(Request::AntiEntropy(ExchangeRequest::Keys(summary_query()))),
        Message::Response {
            id: 7,
            body: Response::StreamChunk(Ok(chunk())),
        },
        Message::Response {
            id: 8,
            body: Response::ReplicaRead(Ok(Some(object()))),
        },
    ]
}

/// Protocol 5's challenge and proof, with genuine open-mode proofs (so a
/// mutation that keeps them valid is explored too).
pub fn handshake_messages() -> Vec<Message> {
    let key = ringkv_core::auth::ClusterKey::open();
    let (client_nonce, server_nonce) = ([9; 16], [7; 16]);
    vec![
        Message::HelloReply(HelloReply::Challenge {
            node: node("n1"),
            nonce: server_nonce,
            proof: key.server_proof("ringkv", &node("n1"), &client_nonce, &server_nonce),
        }),
        Message::HelloProof {
            proof: key.client_proof("ringkv", None, &server_nonce, &client_nonce),
        },
    ]
}

pub fn gossip_open() -> GossipOpen {
    let history = history();
    GossipOpen {
        syn: membership().syn(),
        layouts: history.stamps(),
        oldest: 1,
        removed: vec![node("n9")],
    }
}

fn whole_history() -> HistoryWire {
    HistoryWire::of(&history(), |_| true)
}

pub fn gossip_reply() -> GossipReply {
    let mut other = Membership::new(record("n4"), 30).expect("valid");
    let (ack, _) = other.on_syn(&membership().syn()).expect("valid syn");
    GossipReply {
        ack,
        history: whole_history(),
        want: Vec::new(),
    }
}

pub fn gossip_close() -> GossipClose {
    let mut other = Membership::new(record("n4"), 30).expect("valid");
    let (ack, _) = membership().on_syn(&other.syn()).expect("valid syn");
    let (ack2, _) = other.on_ack(ack).expect("valid ack");
    GossipClose {
        ack2,
        history: whole_history(),
    }
}

pub fn chunk_request() -> ChunkRequest {
    ChunkRequest {
        partition: ringkv_core::layout::partition_of(key().position(), params().partitions),
        after: None,
        max_keys: 100,
        max_bytes: 1 << 20,
    }
}

pub fn chunk() -> Chunk {
    Chunk {
        entries: vec![(key(), object())],
        next: Some(Bytes::from(key().storage_key())),
        done: false,
    }
}

pub fn summary_query() -> SummaryQuery {
    SummaryQuery {
        partition: chunk_request().partition,
        segments: vec![0, 5, 1023],
        max_entries: 10,
        max_bytes: 4096,
    }
}

fn with_selector(selector: u8, body: Vec<u8>) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend(body);
    out
}

fn framed(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn postcard<T: serde::Serialize>(value: &T) -> Vec<u8> {
    crate::postcard_bytes(value)
}

/// Valid inputs for the fuzz target `target` (empty for an unknown name).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let encoded: Vec<Vec<u8>> = messages()
        .iter()
        .map(|m| encode_message(m).expect("encodes"))
        .collect();
    match target {
        "rpc_frame" => vec![
            with_selector(1, framed(&encoded)),
            with_selector(9, framed(&encoded[..2])),
        ],
        "handshake" => encoded[..2]
            .iter()
            .cloned()
            .chain(
                handshake_messages()
                    .iter()
                    .map(|m| encode_message(m).expect("encodes")),
            )
            .collect(),
        "gossip" => vec![
            with_selector(0, postcard(&gossip_open())),
            with_selector(1, postcard(&gossip_reply())),
            with_selector(2, postcard(&gossip_close())),
        ],
        "layout_history" => {
            let (v1, v2) = layouts();
            vec![
                with_selector(0, v1.encode()),
                with_selector(0, v2.encode()),
                with_selector(1, postcard(&whole_history())),
                with_selector(2, postcard(&vec![LayoutChange::Join(member("n5"))])),
            ]
        }
        "context_token" => {
            let clock = object().clock().clone();
            vec![with_selector(
                0,
                encode_context(&clock, KEY_POSITION, &ringkv_core::auth::ClusterKey::open())
                    .into_bytes(),
            )]
        }
        "http_path" => vec![
            b"/v1/kv/carts/alice%2Fbob?r=1&w=2&pw=1".to_vec(),
            b"/v1/kv/b/%FF%00?local=true&ttl=30".to_vec(),
        ],
        "http_headers" => vec![
            format!("Bearer {CLIENT_TOKEN}").into_bytes(),
            format!("bearer \t {CLIENT_TOKEN}  ").into_bytes(),
        ],
        "storage_record" => {
            let stored = encode_object(&object()).expect("encodes");
            let k = key().storage_key();
            let mut record = vec![k.len() as u8];
            record.extend_from_slice(&k);
            record.extend(ringkv_storage::record::seal(&k, &stored));
            vec![
                with_selector(0, record),
                with_selector(1, stored),
                with_selector(2, crate::stored::persisted_state_seed()),
            ]
        }
        "stream" => {
            let cursor = CursorRecord {
                after: Some(Bytes::from(key().storage_key())),
                done: false,
                keys: 3,
                bytes: 300,
            };
            let pull = PullId {
                partition: 5,
                source: node("n2"),
            };
            vec![
                with_selector(0, postcard(&chunk_request())),
                with_selector(1, cursor.encode().expect("encodes")),
                with_selector(2, postcard(&(chunk_request(), chunk()))),
                with_selector(3, ringkv_core::streaming::cursor_key(2, &pull)),
            ]
        }
        "anti_entropy" => {
            let partition = summary_query().partition;
            let tree = ExchangeRequest::Tree(TreeQuery::BranchSegments {
                partition,
                branches: vec![0, 63],
            });
            let root = ExchangeReply::Root { partition, hash: 1 };
            let summaries = ExchangeReply::KeySummaries(KeySummaries {
                partition,
                segments: vec![0],
                entries: vec![KeySummary {
                    storage_key: key().storage_key(),
                    hash: 9,
                }],
                complete: true,
            });
            let mut replies = postcard(&root);
            replies.extend(postcard(&root));
            replies.extend(postcard(&summaries));
            vec![
                with_selector(0, postcard(&tree)),
                with_selector(0, postcard(&ExchangeRequest::Keys(summary_query()))),
                with_selector(1, replies),
            ]
        }
        _ => Vec::new(),
    }
}
