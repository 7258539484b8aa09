//! The node-to-node message set: one enum for everything that crosses a wire.
//!
//! A connection starts with a versioned handshake ([`Hello`] answered by
//! [`HelloReply`]), then carries [`Message::Request`]s and
//! [`Message::Response`]s tagged with a request id, so many calls share one
//! connection. Replica messages read or merge one key's [`Siblings`];
//! `Coordinate` asks a node to coordinate a client request (used to forward a
//! request to a node of the key's preference list, and by simulated clients).
//! Gossip, joins and partition streaming ride the same connections.
//! Framing and size limits live in the node's transport; encoding in
//! [`crate::codec`].
//!
//! Failures on the wire are typed ([`ReplicaError`], [`HandshakeRefusal`],
//! [`OpError`], [`crate::failure::ReplicaFailure`]): never a free-form
//! string, so a coordinator can decide on them and a client can read them.
//! Never: put operator-only detail (storage error texts, OS errors) in a
//! message; log it where it happens.

use crate::anti_entropy::{ExchangeReply, ExchangeRequest};
use crate::auth::{Nonce, Proof, NONCE_BYTES};
use crate::failure::ReplicaFailure;
use crate::key::ObjectKey;
use crate::layout::Member;
use crate::layout_history::{
    ChangeError, HistoryWire, LayoutChange, LayoutStamp, MAX_ACTIVE_VERSIONS, MAX_REMOVED,
};
use crate::membership::{GossipAck, GossipAck2, GossipError, GossipSyn, NodeRecord};
use crate::quorum::QuorumError;
use crate::replication::RequestQuorum;
use crate::settings::ClusterSettings;
use crate::siblings::Siblings;
use crate::streaming::{Chunk, ChunkRequest, ChunkRequestError};
use crate::version_vector::VersionVector;
use crate::NodeId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Version of this message set; a handshake with another version is refused.
/// Version 2: typed failures, and the layout and settings digests in [`Hello`].
/// Version 4: gossip, joins and partition streaming; the hello's layout
/// digest is the cluster's first layout (its genesis), 0 while joining.
/// Version 5: the handshake proves the cluster secret
/// ([`crate::auth`]): hello nonce, [`HelloReply::Challenge`],
/// [`Message::HelloProof`].
/// Version 6: [`ReplicaError::Refilling`] (a rebuilt replica refuses reads
/// until it has refilled its partitions).
pub const PROTOCOL_VERSION: u16 = 6;

/// First frame on every connection, sent by the connecting side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u16,
    /// Cluster name: nodes of different clusters refuse each other.
    pub cluster: String,
    /// The connecting node, or `None` for a client.
    pub from: Option<NodeId>,
    /// Digest of the cluster's first layout (its *genesis*: members,
    /// capacities, zones, Q, N), which names this cluster instance; 0 while
    /// a joining node does not know it yet. Founding nodes started with
    /// different peers disagree here and refuse each other.
    pub layout_digest: u64,
    /// The settings the connecting node runs with (partitions, default
    /// N/R/W, bucket overrides): nodes that disagree would place keys or
    /// count quorums differently. Sent whole, not as a digest, so the
    /// refusing node can log exactly what differs.
    pub settings: ClusterSettings,
    /// The members of the connecting node's first layout (the founders), so
    /// a refusal can name the node whose capacity or zone differs. Bounded
    /// by the handshake frame limit.
    pub members: Vec<Member>,
    /// Whether the connecting side runs with a cluster secret (false: open
    /// mode). Sides of different modes refuse each other with a clear reason.
    pub secured: bool,
    /// The connecting side's fresh nonce for this connection, which the
    /// answering node's proof must cover.
    pub nonce: Nonce,
}

impl Hello {
    /// The hello of a client (not a node) of `cluster`: only the protocol
    /// version and cluster name are checked, so the rest is left empty.
    pub fn client(cluster: impl Into<String>) -> Hello {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster: cluster.into(),
            from: None,
            layout_digest: 0,
            settings: ClusterSettings::default(),
            members: Vec::new(),
            secured: false,
            nonce: [0; NONCE_BYTES],
        }
    }
}

/// The answers to a [`Hello`]: a [`HelloReply::Challenge`] (or a refusal),
/// and after the connecting side's [`Message::HelloProof`], a welcome (or a
/// refusal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The hello is acceptable: the answering node proves the secret over
    /// the hello's nonce and its own fresh `nonce`, and asks for the
    /// connecting side's proof over both.
    Challenge {
        node: NodeId,
        nonce: Nonce,
        proof: Proof,
    },
    Welcome {
        node: NodeId,
    },
    Refused {
        reason: HandshakeRefusal,
    },
}

/// Why a node refused a [`Hello`]. `ours` is the refusing node's value,
/// `theirs` the one the connecting node sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum HandshakeRefusal {
    #[error("protocol version {theirs} is not supported (the peer speaks {ours})")]
    ProtocolVersion { ours: u16, theirs: u16 },
    #[error("cluster {theirs:?} is not the peer's cluster {ours:?}")]
    ClusterName { ours: String, theirs: String },
    #[error("the layouts differ (digest {theirs:016x}, the peer's is {ours:016x})")]
    LayoutDigest { ours: u64, theirs: u64 },
    #[error("the replication settings (N/R/W, buckets, partitions) differ (digest {theirs:016x}, the peer's is {ours:016x})")]
    SettingsDigest { ours: u64, theirs: u64 },
    #[error("the connecting node is not a member of the peer's cluster (it was removed)")]
    NotAMember,
    #[error("{}", secret_mode(*ours, *theirs))]
    SecretMode { ours: bool, theirs: bool },
    #[error("the connecting side did not prove the cluster secret: it runs with another secret")]
    WrongSecret,
}

fn secret_mode(ours: bool, theirs: bool) -> String {
    let mode = |secured: bool| {
        if secured {
            "with a cluster secret"
        } else {
            "without a cluster secret (open mode)"
        }
    };
    format!(
        "the peer runs {} and the connecting side {}: every node and client must be given the same secret",
        mode(ours),
        mode(theirs)
    )
}

impl HandshakeRefusal {
    /// A short stable name of the reason, for metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            HandshakeRefusal::ProtocolVersion { .. } => "protocol_version",
            HandshakeRefusal::ClusterName { .. } => "cluster_name",
            HandshakeRefusal::LayoutDigest { .. } => "layout",
            HandshakeRefusal::SettingsDigest { .. } => "settings",
            HandshakeRefusal::NotAMember => "not_a_member",
            HandshakeRefusal::SecretMode { .. } => "secret_mode",
            HandshakeRefusal::WrongSecret => "wrong_secret",
        }
    }
}

/// Every frame on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Hello(Hello),
    HelloReply(HelloReply),
    Request {
        id: u64,
        body: Request,
    },
    Response {
        id: u64,
        body: Response,
    },
    /// The connecting side's answer to [`HelloReply::Challenge`] (last, so
    /// the request variant's tag stays `codec::REQUEST_VARIANT`).
    HelloProof {
        proof: Proof,
    },
}

/// What one node asks another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Ping,
    /// Read the replica's local object for a key. With `hint_for`, the
    /// receiver is a stand-in for that node (sloppy quorum): it answers with
    /// its own copy merged with the hint it holds for that node.
    ReplicaRead {
        key: ObjectKey,
        hint_for: Option<NodeId>,
    },
    /// Merge `object` into the replica's local copy; acknowledged once
    /// durable. With `hint_for`, the receiver is a stand-in: it keeps the
    /// object as a hint for that node (hinted handoff) instead.
    ReplicaWrite {
        key: ObjectKey,
        object: Siblings,
        hint_for: Option<NodeId>,
    },
    /// An anti-entropy question about this node's tree or keys of a
    /// partition ([`crate::anti_entropy`]).
    AntiEntropy(ExchangeRequest),
    /// Delete this key's copy if it is exactly `object`, a delete every home
    /// holds ([`crate::tombstones`]); answers whether it did.
    Reap {
        key: ObjectKey,
        object: Siblings,
    },
    /// Coordinate a client request. `forwarded` requests are never forwarded again.
    Coordinate {
        request: ClientRequest,
        forwarded: bool,
    },
    /// Open a gossip exchange ([`crate::membership`], M1).
    Gossip(GossipOpen),
    /// Close a gossip exchange with what the receiver asked for.
    GossipClose(GossipClose),
    /// Add the sending node to the cluster (P4): answered with the genesis
    /// and layout history once the join is applied.
    Join(JoinRequest),
    /// An operator's layout change, applied by the receiving node as the
    /// next version (the same as `POST /v1/admin/...`).
    ChangeLayout(LayoutChange),
    /// The next keys of a partition after a cursor, for a node streaming
    /// the partition in ([`crate::streaming`]).
    StreamChunk(ChunkRequest),
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Pong,
    ReplicaRead(Result<Option<Siblings>, ReplicaError>),
    ReplicaWrite(Result<(), ReplicaError>),
    AntiEntropy(Result<ExchangeReply, ReplicaError>),
    Reap(Result<bool, ReplicaError>),
    Coordinate(ClientResponse),
    Gossip(Result<GossipReply, ReplicaError>),
    GossipClose(Result<(), ReplicaError>),
    Join(Result<JoinAccepted, JoinRefusal>),
    ChangeLayout(Result<LayoutStamp, ChangeError>),
    StreamChunk(Result<Chunk, ReplicaError>),
}

/// The first message of a gossip exchange: the initiator's membership
/// digests and the stamps of its active layout versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipOpen {
    pub syn: GossipSyn,
    pub layouts: Vec<LayoutStamp>,
    /// The initiator's oldest active layout version.
    pub oldest: u64,
    pub removed: Vec<NodeId>,
}

impl GossipOpen {
    /// Bounds what a peer controls before anything is merged: the SYN
    /// ([`GossipSyn::validate`]), at most [`MAX_REMOVED`] removed nodes (as
    /// in a [`HistoryWire`]) and at most twice [`MAX_ACTIVE_VERSIONS`]
    /// layout stamps.
    pub fn validate(&self) -> Result<(), GossipError> {
        self.syn.validate()?;
        let too_many = |list, count, limit| GossipError::TooMany { list, count, limit };
        if self.removed.len() > MAX_REMOVED {
            return Err(too_many("removed", self.removed.len(), MAX_REMOVED));
        }
        let layouts_limit = MAX_ACTIVE_VERSIONS * 2;
        if self.layouts.len() > layouts_limit {
            return Err(too_many("layouts", self.layouts.len(), layouts_limit));
        }
        Ok(())
    }
}

/// The receiver's answer: newer membership entries, the layouts the
/// initiator lacks (whole), and the stamps of those it wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipReply {
    pub ack: GossipAck,
    pub history: HistoryWire,
    pub want: Vec<LayoutStamp>,
}

/// The initiator's close: the entries and layouts the receiver wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipClose {
    pub ack2: GossipAck2,
    pub history: HistoryWire,
}

/// A node asking to join: what it says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub record: NodeRecord,
}

/// A join applied: what the new node needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinAccepted {
    /// The digest of the cluster's first layout (checked in handshakes).
    pub genesis: u64,
    /// The members of that first layout.
    pub founders: Vec<Member>,
    pub history: HistoryWire,
}

/// Why a seed would not add a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum JoinRefusal {
    #[error("the node's id was removed from the cluster; start it with a new id and an empty data directory")]
    WasRemoved,
    #[error("{active} layout versions are still moving data; the join is retried")]
    Busy { active: usize },
    #[error("the node's record is invalid: {0}")]
    BadRecord(String),
    #[error("the layout cannot take the node: {0}")]
    Layout(String),
}

/// Why a replica could not serve a read or write. The details (the storage
/// error's text, the key) are logged on the replica, not sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReplicaError {
    #[error("storage failed on the replica")]
    StorageFailed,
    #[error("the replica's stored record is corrupt")]
    CorruptRecord,
    #[error("the merged clock would exceed {limit} entries")]
    ClockFull { limit: usize },
    #[error("the key has {count} siblings, more than the limit of {limit}")]
    TooManySiblings { count: usize, limit: usize },
    #[error("the object is {bytes} bytes, more than the limit of {limit}")]
    ObjectTooLarge { bytes: usize, limit: usize },
    #[error("the replica refused the key as invalid")]
    BadKey,
    /// Refused before doing anything: the replica is shutting down.
    #[error("the replica is shutting down")]
    ShuttingDown,
    /// Refused before doing anything: the replica's storage queue is full.
    #[error("the replica is overloaded (its storage queue is full)")]
    Overloaded,
    /// An anti-entropy question the replica cannot answer as asked.
    #[error("the replica refused the anti-entropy question as malformed")]
    BadExchange,
    /// A stand-in holds as many hints for the node as its limits allow.
    #[error("the stand-in holds as many hints for {target} as its limits allow")]
    HintsFull { target: NodeId },
    /// A gossip message that does not decode or breaks a limit.
    #[error("the node refused a malformed gossip message")]
    BadGossip,
    /// A chunk request the replica cannot answer as asked.
    #[error("the replica refused the chunk request: {0}")]
    BadChunkRequest(ChunkRequestError),
    /// Refused before doing anything: the replica was rebuilt on a fresh
    /// store and is still refilling its partitions from its peers, so its
    /// copy does not count toward a read quorum (`ringkv serve --rebuild`).
    #[error("the replica is refilling after a rebuild and does not answer reads yet")]
    Refilling,
}

/// A client operation, as coordinated by a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientRequest {
    Get {
        key: ObjectKey,
        quorum: RequestQuorum,
    },
    /// A put (`value` Some) or delete (`value` None) with the client's context.
    Put {
        key: ObjectKey,
        context: VersionVector,
        value: Option<Bytes>,
        quorum: RequestQuorum,
        /// Seconds until the value expires (D5); None: never.
        ttl_secs: Option<u64>,
    },
}

/// The outcome of a [`ClientRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientResponse {
    /// The merged object (None: no replica has ever seen the key).
    Get(Result<Option<Siblings>, OpError>),
    /// The clock of the new object: the context for the next write.
    Put(Result<VersionVector, OpError>),
}

/// Why a client operation failed. The HTTP layer maps these to statuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    Quorum(QuorumError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("key has {count} siblings, more than the limit of {limit}: read it and write back a reconciled value")]
    TooManySiblings { count: usize, limit: usize },
    #[error("node is overloaded: more than {limit} requests in flight")]
    Overloaded { limit: usize },
    /// This node holds no replica of the key and no node of the preference
    /// list coordinated the request. `outcome_unknown`: a write reached a
    /// node and then failed, so it may have been applied.
    #[error("{}", ForwardFailedText { attempts, outcome_unknown: *outcome_unknown })]
    ForwardFailed {
        attempts: Vec<(NodeId, ReplicaFailure)>,
        outcome_unknown: bool,
    },
    /// A forwarded request reached `node`, which holds no replica of the key.
    #[error("{node} was forwarded a request for a key it holds no replica of; do the nodes agree on membership?")]
    NotCoordinator { node: NodeId },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Display text of [`OpError::ForwardFailed`].
struct ForwardFailedText<'a> {
    attempts: &'a [(NodeId, ReplicaFailure)],
    outcome_unknown: bool,
}

impl fmt::Display for ForwardFailedText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no replica could coordinate the request")?;
        if self.attempts.is_empty() {
            f.write_str(": no node to forward it to")?;
        }
        for (i, (node, why)) in self.attempts.iter().enumerate() {
            write!(f, "{}{node}: {why}", if i == 0 { ": " } else { "; " })?;
        }
        if self.outcome_unknown {
            f.write_str("; the write may have been applied; read before retrying")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn forward_failures_say_who_failed_why_and_whether_a_write_may_have_landed() {
        let err = OpError::ForwardFailed {
            attempts: vec![
                (n("n2"), ReplicaFailure::ConnectRefused),
                (n("n3"), ReplicaFailure::Timeout { ms: 3000 }),
            ],
            outcome_unknown: true,
        };
        assert_eq!(
            err.to_string(),
            "no replica could coordinate the request: n2: connection refused; \
             n3: no answer within 3000 ms; the write may have been applied; read before retrying"
        );
        let none = OpError::ForwardFailed {
            attempts: vec![],
            outcome_unknown: false,
        };
        assert_eq!(
            none.to_string(),
            "no replica could coordinate the request: no node to forward it to"
        );
    }

    #[test]
    fn a_gossip_open_is_bounded_in_removed_nodes_and_layout_stamps() {
        let open = |removed: usize, layouts: usize| GossipOpen {
            syn: GossipSyn::default(),
            layouts: (1..=layouts as u64)
                .map(|version| LayoutStamp { version, digest: 0 })
                .collect(),
            oldest: 1,
            removed: (0..removed).map(|i| n(&format!("r{i}"))).collect(),
        };
        assert_eq!(
            open(MAX_REMOVED, 2 * MAX_ACTIVE_VERSIONS).validate(),
            Ok(())
        );
        assert_eq!(
            open(MAX_REMOVED + 1, 0).validate(),
            Err(GossipError::TooMany {
                list: "removed",
                count: MAX_REMOVED + 1,
                limit: MAX_REMOVED
            })
        );
        assert!(matches!(
            open(0, 2 * MAX_ACTIVE_VERSIONS + 1).validate(),
            Err(GossipError::TooMany {
                list: "layouts",
                ..
            })
        ));
    }
}
