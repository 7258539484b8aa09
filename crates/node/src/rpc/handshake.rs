//! The RPC handshake, both sides: only the cluster's own nodes and clients
//! get in (N4).
//!
//! ```text
//! connecting side                          answering node
//!   Hello { .., secured, nonce_c }  --->   version, cluster, secret mode
//!                                   <---   Challenge { node, nonce_s, proof_s }
//!   verify proof_s
//!   HelloProof { proof_c }          --->   verify proof_c, then membership,
//!                                          settings, layout (check_hello)
//!                                   <---   Welcome { node } | Refused { reason }
//! ```
//!
//! The proofs are computed and checked by [`ringkv_core::auth`]; this module
//! draws the nonces (fresh random bytes per connection) and moves the
//! frames. The connecting side sends its proof even when the node's proof
//! failed, so both ends see a typed refusal ([`HandshakeRefusal::WrongSecret`])
//! and the refusing node counts it; the proof covers the node's fresh nonce,
//! so it is worth nothing anywhere else. A refusal is logged at WARN once
//! per claimed peer id and reason ([`RefusalLog`]), and reported to the
//! caller's `on_refused` (the node counts it in
//! `ringkv_rpc_handshakes_refused_total{reason}`).
//!
//! Boundary: the checks that need no secret live in [`check_hello`]; neither
//! side ever sends the secret or anything derived from it other than proofs.

use super::frame::{self, FrameReader, FrameWriter, RpcError};
use super::server::Identity;
use ringkv_core::auth::{ClusterKey, Nonce, NONCE_BYTES};
use ringkv_core::protocol::{HandshakeRefusal, Hello, HelloReply, Message, PROTOCOL_VERSION};
use ringkv_core::settings::member_differences;
use ringkv_core::NodeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most (peer id, reason) pairs whose refusal was logged that are
/// remembered; past this the memory is cleared (and refusals logged again).
pub const MAX_REFUSALS_REMEMBERED: usize = 1024;

/// What a node or client says first, and the key it proves the secret with.
#[derive(Clone)]
pub struct Greeting {
    /// The hello sent on every connection (its nonce is replaced by a
    /// fresh one each time).
    pub hello: Hello,
    pub key: Arc<ClusterKey>,
}

impl Greeting {
    /// A node's or client's greeting: `hello.secured` follows `key`.
    pub fn new(mut hello: Hello, key: ClusterKey) -> Self {
        hello.secured = key.is_secured();
        Greeting {
            hello,
            key: Arc::new(key),
        }
    }

    /// The greeting of a client (not a node) of `cluster`.
    pub fn client(cluster: impl Into<String>, key: ClusterKey) -> Self {
        Greeting::new(Hello::client(cluster), key)
    }
}

/// Fresh random bytes for one side of one handshake.
fn fresh_nonce(addr: &str) -> Result<Nonce, RpcError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|e| RpcError::HandshakeFailed {
        addr: addr.to_string(),
        reason: format!("no randomness for the handshake nonce: {e}"),
    })?;
    Ok(nonce)
}

/// The connecting side: says hello, checks the node's proof (when
/// `expected` is given, also that it is that node), proves the secret and
/// waits for the welcome.
pub(super) async fn greet(
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
    greeting: &Greeting,
    expected: Option<&NodeId>,
    addr: &str,
) -> Result<(), RpcError> {
    let failed = |reason: String| RpcError::HandshakeFailed {
        addr: addr.to_string(),
        reason,
    };
    let refused = |reason| RpcError::HandshakeRefused {
        addr: addr.to_string(),
        reason,
    };
    let mut hello = greeting.hello.clone();
    hello.nonce = fresh_nonce(addr)?;
    frame::send(writer, &Message::Hello(hello.clone())).await?;
    let (node, server_nonce, server_proof) = match frame::recv(reader).await? {
        Some(Message::HelloReply(HelloReply::Challenge { node, nonce, proof })) => {
            (node, nonce, proof)
        }
        Some(Message::HelloReply(HelloReply::Refused { reason })) => return Err(refused(reason)),
        None => return Err(failed("connection closed before the answer".into())),
        Some(other) => return Err(failed(format!("unexpected answer {other:?}"))),
    };
    if let Some(peer) = expected.filter(|p| **p != node) {
        return Err(failed(format!("expected node {peer}, found {node}")));
    }
    let key = &greeting.key;
    let server_proven = key
        .verify_server(
            &hello.cluster,
            &node,
            &hello.nonce,
            &server_nonce,
            &server_proof,
        )
        .is_ok();
    let proof = key.client_proof(
        &hello.cluster,
        hello.from.as_ref(),
        &server_nonce,
        &hello.nonce,
    );
    frame::send(writer, &Message::HelloProof { proof }).await?;
    match frame::recv(reader).await? {
        Some(Message::HelloReply(HelloReply::Refused { reason })) => Err(refused(reason)),
        Some(Message::HelloReply(HelloReply::Welcome { .. })) if !server_proven => Err(failed(
            format!("node {node} did not prove the cluster secret (it runs with another one)"),
        )),
        Some(Message::HelloReply(HelloReply::Welcome { node: welcomed })) if welcomed == node => {
            Ok(())
        }
        None => Err(failed("connection closed before the welcome".into())),
        Some(other) => Err(failed(format!("unexpected answer {other:?}"))),
    }
}

/// The answering side, after `hello` arrived: checks it, challenges the
/// connecting side and checks its proof. `Ok` is a welcomed connection;
/// every refusal is sent to the peer, logged and reported to `on_refused`.
pub(super) async fn answer(
    hello: &Hello,
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
    identity: &Identity,
    on_refused: &(dyn Fn(&HandshakeRefusal) + Send + Sync),
) -> Result<(), RpcError> {
    let refuse = |reason: HandshakeRefusal, differences: Vec<String>| {
        on_refused(&reason);
        identity
            .refusals
            .log(hello.from.as_ref(), &reason, &differences);
        reason
    };
    if let Err(reason) = check_before_proof(hello, identity) {
        let reason = refuse(reason, Vec::new());
        return send_refusal(writer, reason).await;
    }
    let nonce = fresh_nonce("inbound")?;
    let key = &identity.key;
    let proof = key.server_proof(&identity.cluster, &identity.node, &hello.nonce, &nonce);
    let challenge = HelloReply::Challenge {
        node: identity.node.clone(),
        nonce,
        proof,
    };
    frame::send(writer, &Message::HelloReply(challenge)).await?;
    let client_proof = match frame::recv(reader).await? {
        Some(Message::HelloProof { proof }) => proof,
        None => return Err(RpcError::ConnectionLost),
        Some(other) => {
            return Err(RpcError::HandshakeFailed {
                addr: "inbound".into(),
                reason: format!("expected the handshake proof, got {other:?}"),
            })
        }
    };
    let from = hello.from.as_ref();
    if key
        .verify_client(&hello.cluster, from, &nonce, &hello.nonce, &client_proof)
        .is_err()
    {
        let reason = refuse(HandshakeRefusal::WrongSecret, Vec::new());
        return send_refusal(writer, reason).await;
    }
    // Only a peer that proved the secret learns whether its settings and
    // layout fit.
    if let Err((reason, differences)) = check_hello(hello, identity) {
        let reason = refuse(reason, differences);
        return send_refusal(writer, reason).await;
    }
    identity.refusals.forget(from);
    let welcome = HelloReply::Welcome {
        node: identity.node.clone(),
    };
    frame::send(writer, &Message::HelloReply(welcome)).await
}

async fn send_refusal(writer: &mut FrameWriter, reason: HandshakeRefusal) -> Result<(), RpcError> {
    let refused = HelloReply::Refused {
        reason: reason.clone(),
    };
    frame::send(writer, &Message::HelloReply(refused)).await?;
    Err(RpcError::HandshakeRefused {
        addr: "inbound".into(),
        reason,
    })
}

/// Checks a hello against this node's identity (run again, in full, once
/// the connecting side proved the secret). A refusal is typed (it is sent
/// to the peer); for a node whose settings or members differ, the returned
/// lines say exactly what differs, for this node's log. Clients (`from:
/// None`) only need the protocol version, cluster name and secret mode.
pub(super) fn check_hello(
    hello: &Hello,
    identity: &Identity,
) -> Result<(), (HandshakeRefusal, Vec<String>)> {
    check_before_proof(hello, identity).map_err(|r| (r, Vec::new()))?;
    let Some(from) = &hello.from else {
        return Ok(());
    };
    // Any node of the cluster may connect: members, and nodes about to
    // join (gossip and the join request come before membership). A removed
    // node may not come back under its id.
    if (identity.removed)(from) {
        return Err((HandshakeRefusal::NotAMember, Vec::new()));
    }
    let settings = identity.settings.differences(&hello.settings);
    if !settings.is_empty() {
        let refusal = HandshakeRefusal::SettingsDigest {
            ours: identity.settings.digest(),
            theirs: hello.settings.digest(),
        };
        return Err((refusal, settings));
    }
    let known = hello.layout_digest != 0 && identity.layout_digest != 0;
    if known && hello.layout_digest != identity.layout_digest {
        let mut why = member_differences(&identity.members, &hello.members);
        if why.is_empty() {
            why.push(
                "same founding members and settings but a different first layout: the nodes run different releases of the layout algorithm".into(),
            );
        }
        let refusal = HandshakeRefusal::LayoutDigest {
            ours: identity.layout_digest,
            theirs: hello.layout_digest,
        };
        return Err((refusal, why));
    }
    Ok(())
}

/// What is checked before the secret is: whether the two sides can speak at
/// all (protocol version, cluster name, whether both have a secret).
fn check_before_proof(hello: &Hello, identity: &Identity) -> Result<(), HandshakeRefusal> {
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(HandshakeRefusal::ProtocolVersion {
            ours: PROTOCOL_VERSION,
            theirs: hello.protocol_version,
        });
    }
    if hello.cluster != identity.cluster {
        return Err(HandshakeRefusal::ClusterName {
            ours: identity.cluster.clone(),
            theirs: hello.cluster.clone(),
        });
    }
    if hello.secured != identity.key.is_secured() {
        return Err(HandshakeRefusal::SecretMode {
            ours: identity.key.is_secured(),
            theirs: hello.secured,
        });
    }
    Ok(())
}

/// The refusals already logged, per claimed peer id (`None`: a client), so
/// a peer retrying with the same wrong secret or settings is logged once,
/// not once per attempt. Bounded by [`MAX_REFUSALS_REMEMBERED`].
#[derive(Default)]
pub struct RefusalLog {
    logged: Mutex<HashMap<Option<NodeId>, HandshakeRefusal>>, // order-free: looked up by peer
}

impl RefusalLog {
    /// Logs the refusal at WARN unless this peer's last one was the same.
    /// Returns whether it logged.
    pub fn log(
        &self,
        from: Option<&NodeId>,
        reason: &HandshakeRefusal,
        differences: &[String],
    ) -> bool {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.get(&from.cloned()) == Some(reason) {
            return false;
        }
        if logged.len() >= MAX_REFUSALS_REMEMBERED {
            logged.clear();
        }
        logged.insert(from.cloned(), reason.clone());
        tracing::warn!(
            peer = ?from,
            %reason,
            differences = %differences.join("; "),
            "refused a peer's handshake: every node must be started with the same cluster secret, peers, capacities, zones and settings"
        );
        true
    }

    /// Forgets a peer once it got in, so a later refusal is logged again.
    pub fn forget(&self, from: Option<&NodeId>) {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        logged.remove(&from.cloned());
    }
}

#[cfg(test)]
mod tests;
