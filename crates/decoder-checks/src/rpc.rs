//! RPC frames and the handshake: the first bytes any TCP peer can send.
//!
//! [`rpc_frame`] runs arbitrary bytes through the node's [`FrameDecoder`]
//! (split into two reads at a point the input picks, as TCP may) and every
//! frame it yields through [`decode_message`]. [`handshake`] decodes a
//! first frame as the server does before it trusts the peer, compares a
//! decoded [`Hello`] with this node's settings and founders the way the
//! refusal is built, and runs protocol 5's challenge and proofs (a
//! [`HelloReply::Challenge`], a [`Message::HelloProof`]) through the proof
//! checks under an open and a secured cluster key: whatever the bytes
//! claim, a check answers match or mismatch.

use crate::{assert_round_trip, select};
use bytes::BytesMut;
use ringkv_core::auth::{ClusterKey, ClusterSecret, Nonce, NONCE_BYTES};
use ringkv_core::codec::{decode_message, encode_message, encode_request, request_frame};
use ringkv_core::layout::Member;
use ringkv_core::limits::MAX_FRAME_BYTES;
use ringkv_core::protocol::{Hello, HelloReply, Message};
use ringkv_core::settings::{member_differences, ClusterSettings};
use ringkv_core::NodeId;
use ringkv_node::rpc::frame::{
    encode_within, FrameDecoder, HEADER_BYTES, MAX_HANDSHAKE_FRAME_BYTES, READ_RESERVE_BYTES,
};
use tokio_util::codec::Decoder;

/// Frames then messages: every frame the decoder yields is decoded, and
/// every message decoded round-trips (also through the encode-once
/// [`request_frame`] path of replicated writes). Returns whether a message
/// decoded.
pub fn rpc_frame(data: &[u8]) -> bool {
    let (selector, wire) = select(data);
    let limit = if selector & 1 == 0 {
        MAX_HANDSHAKE_FRAME_BYTES
    } else {
        MAX_FRAME_BYTES
    };
    let cut = usize::from(selector >> 1) % (wire.len() + 1);
    let mut decoder = FrameDecoder::new(limit);
    let mut src = BytesMut::from(&wire[..cut]);
    let mut decoded = false;
    if drain(&mut decoder, &mut src, limit, &mut decoded).is_err() {
        return decoded;
    }
    src.extend_from_slice(&wire[cut..]);
    let _ = drain(&mut decoder, &mut src, limit, &mut decoded);
    decoded
}

/// Decodes frames until the buffer holds no whole frame or the decoder
/// refuses one (which ends the connection).
fn drain(
    decoder: &mut FrameDecoder,
    src: &mut BytesMut,
    limit: usize,
    decoded: &mut bool,
) -> Result<(), ()> {
    loop {
        match decoder.decode(src) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= limit, "a frame over the limit got through");
                *decoded |= message(&frame);
            }
            Ok(None) => {
                // BytesMut may double its capacity when it grows: the bound is a
                // constant factor of what arrived plus one read-ahead, never
                // the length a header claims.
                let bound = 4 * (src.len() + HEADER_BYTES + READ_RESERVE_BYTES);
                assert!(
                    src.capacity() <= bound,
                    "reserved {} bytes for {} received",
                    src.capacity(),
                    src.len()
                );
                return Ok(());
            }
            Err(_) => return Err(()),
        }
    }
}

/// One frame's payload: a message or a typed error; a message round-trips.
/// Returns whether it decoded.
pub fn message(payload: &[u8]) -> bool {
    let Ok(message) = decode_message(payload) else {
        return false;
    };
    assert_round_trip(
        &message,
        |m| encode_message(m).expect("a decoded message encodes"),
        decode_message,
    );
    if let Message::Request { id, body } = &message {
        let once = encode_request(body).expect("a decoded request encodes");
        assert_eq!(
            request_frame(*id, &once),
            encode_message(&message).expect("encodes"),
            "the encode-once request frame differs from the whole message"
        );
    }
    true
}

/// The first frame of a connection, as the server reads it: a message
/// within the handshake limit; a hello is compared with this node's
/// settings and founders, which must not panic whatever it claims.
/// Returns whether it decoded.
pub fn handshake(data: &[u8]) -> bool {
    if data.len() > MAX_HANDSHAKE_FRAME_BYTES || !message(data) {
        return false;
    }
    let Ok(message) = decode_message(data) else {
        return false;
    };
    match &message {
        Message::Hello(hello) => {
            judge(hello);
            // The answering node proves the secret over the hello's nonce.
            for key in keys() {
                let theirs = hello.from.as_ref();
                let ours = NodeId::new("n1").expect("valid");
                let proof = key.server_proof(&hello.cluster, &ours, &hello.nonce, &SERVER_NONCE);
                let _ =
                    key.verify_client(&hello.cluster, theirs, &SERVER_NONCE, &hello.nonce, &proof);
            }
        }
        Message::HelloReply(HelloReply::Welcome { node }) => {
            let _ = NodeId::new(node.as_str()).expect("a decoded node id is valid");
        }
        Message::HelloReply(HelloReply::Challenge { node, nonce, proof }) => {
            // The connecting side checks the proof over its own nonce; a
            // forged proof is a mismatch, never a panic.
            for key in keys() {
                let forged = key
                    .verify_server("ringkv", node, &CLIENT_NONCE, nonce, proof)
                    .is_ok();
                let genuine = key.server_proof("ringkv", node, &CLIENT_NONCE, nonce);
                assert!(
                    key.verify_server("ringkv", node, &CLIENT_NONCE, nonce, &genuine)
                        .is_ok(),
                    "a genuine proof verifies"
                );
                assert!(
                    !forged || *proof == genuine,
                    "only the genuine proof verifies"
                );
            }
        }
        Message::HelloProof { proof } => {
            for key in keys() {
                let ok = key
                    .verify_client("ringkv", None, &SERVER_NONCE, &CLIENT_NONCE, proof)
                    .is_ok();
                let genuine = key.client_proof("ringkv", None, &SERVER_NONCE, &CLIENT_NONCE);
                assert!(!ok || *proof == genuine, "only the genuine proof verifies");
            }
        }
        _ => {}
    }
    // A node answers a hello in one frame: re-encoding within the limit
    // either fits or is a typed error.
    let _ = encode_within(&message, MAX_HANDSHAKE_FRAME_BYTES);
    true
}

/// The nonces the checks pretend each side sent.
const SERVER_NONCE: Nonce = [7; NONCE_BYTES];
const CLIENT_NONCE: Nonce = [9; NONCE_BYTES];

/// An open key and a secured one.
fn keys() -> [ClusterKey; 2] {
    let secret = ClusterSecret::new(b"a cluster secret of enough bytes").expect("long enough");
    [ClusterKey::open(), ClusterKey::from_secret(&secret)]
}

/// What the server computes from a hello before it answers.
fn judge(hello: &Hello) {
    let ours = ClusterSettings::default();
    let _ = ours.differences(&hello.settings);
    let _ = (ours.digest(), hello.settings.digest());
    let founders = [Member {
        id: NodeId::new("n1").expect("valid"),
        capacity: 1,
        zone: None,
    }];
    let _ = member_differences(&founders, &hello.members);
    let _ = hello.to_owned().from.map(|id| id.as_str().len());
}
