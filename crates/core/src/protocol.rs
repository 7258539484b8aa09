//! The node-to-node message set: one enum for everything that crosses a wire.
//!
//! A connection starts with a versioned handshake ([`Hello`] answered by
//! [`HelloReply`]), then carries [`Message::Request`]s and
//! [`Message::Response`]s tagged with a request id, so many calls share one
//! connection. Replica messages read or merge one key's [`Siblings`];
//! `Coordinate` asks a node to coordinate a client request (used to forward a
//! request to a node of the key's preference list, and by simulated clients).
//! Later issues (hinted handoff, anti-entropy, gossip) add variants here.
//! Framing and size limits live in the node's transport; encoding in
//! [`crate::codec`].

use crate::key::ObjectKey;
use crate::quorum::QuorumError;
use crate::replication::RequestQuorum;
use crate::siblings::Siblings;
use crate::version_vector::VersionVector;
use crate::NodeId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Version of this message set; a handshake with another version is refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// First frame on every connection, sent by the connecting side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u16,
    /// Cluster name: nodes of different clusters refuse each other.
    pub cluster: String,
    /// The connecting node, or `None` for a client.
    pub from: Option<NodeId>,
}

/// The answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    Welcome { node: NodeId },
    Refused { reason: String },
}

/// Every frame on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Hello(Hello),
    HelloReply(HelloReply),
    Request { id: u64, body: Request },
    Response { id: u64, body: Response },
}

/// What one node asks another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Ping,
    /// Read the replica's local object for a key.
    ReplicaRead {
        key: ObjectKey,
    },
    /// Merge `object` into the replica's local copy; acknowledged once durable.
    ReplicaWrite {
        key: ObjectKey,
        object: Siblings,
    },
    /// Coordinate a client request. `forwarded` requests are never forwarded again.
    Coordinate {
        request: ClientRequest,
        forwarded: bool,
    },
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Pong,
    ReplicaRead(Result<Option<Siblings>, ReplicaError>),
    ReplicaWrite(Result<(), ReplicaError>),
    Coordinate(ClientResponse),
}

/// A replica could not serve a read or write (storage error, corruption).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaError {
    pub message: String,
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
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}
