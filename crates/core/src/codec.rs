//! Encodings of core types: RPC messages and stored objects.
//!
//! Both use postcard (compact, varint, schema in the Rust types) behind a
//! format byte, so a later release can change the layout and still read the
//! old one. Decoding takes untrusted bytes from peers and disks: it returns a
//! [`CodecError`], never panics, and validates what serde cannot (sorted,
//! covered clocks) through the types' `try_from` hooks. Frame length limits
//! are enforced before decoding, by the transport.

use crate::protocol::{Message, Request};
use crate::siblings::Siblings;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Format byte of RPC frames written by this release.
pub const MESSAGE_FORMAT_V1: u8 = 1;
/// Format byte of stored objects written before TTLs (versions without
/// `expires_ms`); still read.
pub const OBJECT_FORMAT_V1: u8 = 1;
/// Format byte of stored objects written by this release.
pub const OBJECT_FORMAT_V2: u8 = 2;

/// Bytes that do not decode as the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("empty input")]
    Empty,
    #[error("unknown format byte {0}")]
    UnknownFormat(u8),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("could not encode: {0}")]
    Encode(String),
}

/// Encodes `value` behind a format byte (shared by every versioned encoding).
pub(crate) fn encode<T: Serialize>(format: u8, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(1 + encoded_len(value)?);
    out.push(format);
    postcard::to_io(value, &mut out).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// The length of `value`'s postcard encoding, found by a pass that writes
/// nothing, so an encoding allocates its buffer once instead of growing it
/// byte by byte (about seven allocations per object before).
fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, CodecError> {
    postcard::experimental::serialized_size(value).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a value written by [`encode`] with the same format byte,
/// refusing trailing bytes.
pub(crate) fn decode<T: DeserializeOwned>(format: u8, bytes: &[u8]) -> Result<T, CodecError> {
    let (&got, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if got != format {
        return Err(CodecError::UnknownFormat(got));
    }
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

/// Encodes one RPC message (the payload of one frame).
pub fn encode_message(message: &Message) -> Result<Vec<u8>, CodecError> {
    encode(MESSAGE_FORMAT_V1, message)
}

/// Decodes one RPC message.
pub fn decode_message(bytes: &[u8]) -> Result<Message, CodecError> {
    decode(MESSAGE_FORMAT_V1, bytes)
}

/// A request body encoded once, to go to several peers under different
/// request ids (a replicated write is encoded once, not once per replica).
/// Cloning it shares the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRequest(bytes::Bytes);

impl EncodedRequest {
    /// The encoded body's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Encodes a request body for [`request_frame`].
pub fn encode_request(body: &Request) -> Result<EncodedRequest, CodecError> {
    let out = Vec::with_capacity(encoded_len(body)?);
    postcard::to_extend(body, out)
        .map(|v| EncodedRequest(v.into()))
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// The frame payload of `Message::Request { id, body }`, byte for byte what
/// [`encode_message`] writes, built from a body encoded once: the format
/// byte, postcard's varint variant index of `Message::Request`, the varint
/// id, then the body.
pub fn request_frame(id: u64, body: &EncodedRequest) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 1 + 10 + body.0.len());
    out.push(MESSAGE_FORMAT_V1);
    push_varint(&mut out, REQUEST_VARIANT);
    push_varint(&mut out, id);
    out.extend_from_slice(&body.0);
    out
}

/// Index of `Message::Request` in the `Message` enum (pinned by a test).
const REQUEST_VARIANT: u64 = 2;

/// postcard's unsigned varint: 7 bits per byte, low bits first.
fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes an object for storage.
pub fn encode_object(object: &Siblings) -> Result<Vec<u8>, CodecError> {
    encode(OBJECT_FORMAT_V2, object)
}

/// Decodes a stored object, of this release's format or the one before.
pub fn decode_object(bytes: &[u8]) -> Result<Siblings, CodecError> {
    match bytes.first() {
        Some(&OBJECT_FORMAT_V1) => decode::<legacy::SiblingsV1>(OBJECT_FORMAT_V1, bytes)?
            .into_current()
            .map_err(CodecError::Malformed),
        _ => decode(OBJECT_FORMAT_V2, bytes),
    }
}

/// Whether `bytes` are a stored object in this release's format (so
/// re-encoding its decoded object gives the same bytes).
pub fn is_current_object_format(bytes: &[u8]) -> bool {
    bytes.first() == Some(&OBJECT_FORMAT_V2)
}

/// Stored shapes of earlier releases.
mod legacy {
    use crate::siblings::{Siblings, Version};
    use crate::version_vector::{Dot, VersionVector};
    use bytes::Bytes;
    use serde::Deserialize;

    /// An object of format 1: versions had no `expires_ms`.
    #[derive(Deserialize)]
    pub(super) struct SiblingsV1 {
        clock: VersionVector,
        versions: Vec<VersionV1>,
    }

    #[derive(Deserialize)]
    struct VersionV1 {
        dot: Dot,
        value: Option<Bytes>,
        timestamp_ms: u64,
    }

    impl SiblingsV1 {
        pub(super) fn into_current(self) -> Result<Siblings, String> {
            let versions = self.versions.into_iter().map(|v| Version {
                dot: v.dot,
                value: v.value,
                timestamp_ms: v.timestamp_ms,
                expires_ms: None,
            });
            Siblings::from_parts(self.clock, versions.collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_frame_from_a_body_encoded_once_equals_the_whole_message() {
        let key = crate::key::ObjectKey::new("b", bytes::Bytes::from("k"), 64).unwrap();
        for body in [
            Request::Ping,
            Request::ReplicaRead {
                key,
                hint_for: NodeId::new("n3").ok(),
            },
        ] {
            let once = encode_request(&body).unwrap();
            for id in [0u64, 1, 127, 128, 300, u64::MAX] {
                let whole = encode_message(&Message::Request {
                    id,
                    body: body.clone(),
                })
                .unwrap();
                assert_eq!(request_frame(id, &once), whole, "id {id}");
            }
        }
    }
    use crate::key::ObjectKey;
    use crate::protocol::{ClientRequest, Request};
    use crate::replication::RequestQuorum;
    use crate::version_vector::VersionVector;
    use crate::NodeId;
    use bytes::Bytes;

    fn sample() -> Message {
        let mut obj = Siblings::new();
        obj.update(
            &VersionVector::new(),
            &NodeId::new("n1").unwrap(),
            Some(Bytes::from("v")),
            7,
        );
        Message::Request {
            id: 42,
            body: Request::Coordinate {
                request: ClientRequest::Put {
                    key: ObjectKey::new("b", Bytes::from("k"), 16).unwrap(),
                    context: obj.clock().clone(),
                    value: Some(Bytes::from(vec![0u8, 255])),
                    quorum: RequestQuorum {
                        r: None,
                        w: Some(2),
                        pw: Some(1),
                    },
                    ttl_secs: Some(60),
                },
                forwarded: false,
            },
        }
    }

    #[test]
    fn messages_and_objects_round_trip() {
        let bytes = encode_message(&sample()).unwrap();
        assert_eq!(decode_message(&bytes), Ok(sample()));
        let mut obj = Siblings::new();
        obj.update(&VersionVector::new(), &NodeId::new("a").unwrap(), None, 1);
        assert_eq!(decode_object(&encode_object(&obj).unwrap()), Ok(obj));
    }

    #[test]
    fn every_truncation_and_bad_format_is_an_error_not_a_panic() {
        let bytes = encode_message(&sample()).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                decode_message(&bytes[..cut]).is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
        let mut wrong = bytes.clone();
        wrong[0] = 200;
        assert_eq!(decode_message(&wrong), Err(CodecError::UnknownFormat(200)));
        let mut extra = bytes;
        extra.push(0);
        assert!(matches!(
            decode_message(&extra),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn typed_failures_and_handshakes_round_trip_and_keep_their_wire_indices() {
        use crate::failure::ReplicaFailure;
        use crate::protocol::{
            ClientResponse, HandshakeRefusal, Hello, HelloReply, OpError, ReplicaError, Response,
        };
        use crate::quorum::QuorumError;
        let n = |s: &str| NodeId::new(s).unwrap();
        let refusal = HandshakeRefusal::LayoutDigest { ours: 1, theirs: 2 };
        let failures = vec![
            (n("a"), ReplicaFailure::Timeout { ms: 3000 }),
            (n("b"), ReplicaFailure::HandshakeRefused(refusal.clone())),
            (
                n("c"),
                ReplicaFailure::Replica(ReplicaError::ClockFull { limit: 9 }),
            ),
        ];
        let messages = [
            Message::Hello(Hello {
                protocol_version: crate::protocol::PROTOCOL_VERSION,
                cluster: "c".into(),
                from: Some(n("a")),
                layout_digest: u64::MAX,
                settings: crate::settings::ClusterSettings {
                    partitions: 256,
                    replication: Default::default(),
                    buckets: Default::default(),
                },
                members: vec![],
                secured: true,
                nonce: [7; crate::auth::NONCE_BYTES],
            }),
            Message::HelloReply(HelloReply::Challenge {
                node: n("b"),
                nonce: [8; crate::auth::NONCE_BYTES],
                proof: [9; crate::auth::PROOF_BYTES],
            }),
            Message::HelloProof {
                proof: [10; crate::auth::PROOF_BYTES],
            },
            Message::HelloReply(HelloReply::Refused { reason: refusal }),
            Message::Response {
                id: 1,
                body: Response::ReplicaRead(Err(ReplicaError::CorruptRecord)),
            },
            Message::Response {
                id: 2,
                body: Response::Coordinate(ClientResponse::Get(Err(OpError::Quorum(
                    QuorumError {
                        needed: 2,
                        asked: 3,
                        acks: 0,
                        failures: failures.clone(),
                    },
                )))),
            },
            Message::Response {
                id: 3,
                body: Response::Coordinate(ClientResponse::Put(Err(OpError::ForwardFailed {
                    attempts: failures,
                    outcome_unknown: true,
                }))),
            },
        ];
        for m in messages {
            assert_eq!(decode_message(&encode_message(&m).unwrap()), Ok(m));
        }
        // docs/formats.md lists these indices; a reordering breaks old peers.
        let index = |bytes: Vec<u8>| bytes[1];
        assert_eq!(
            index(encode(1, &ReplicaFailure::NotCoordinator).unwrap()),
            14
        );
        assert_eq!(index(encode(1, &ReplicaFailure::KnownDown).unwrap()), 8);
        assert_eq!(index(encode(1, &ReplicaError::ShuttingDown).unwrap()), 6);
        assert_eq!(index(encode(1, &HandshakeRefusal::NotAMember).unwrap()), 4);
        let not_coordinator = OpError::NotCoordinator { node: n("a") };
        assert_eq!(index(encode(1, &not_coordinator).unwrap()), 5);
    }
}
