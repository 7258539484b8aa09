//! The cluster secret and what is proven with it (N4): only the cluster's own
//! nodes and clients get in, and only the cluster's own context tokens count.
//!
//! A [`ClusterSecret`] is operator-supplied bytes (at least
//! [`MIN_SECRET_BYTES`] after trimming surrounding whitespace, at most
//! [`MAX_SECRET_BYTES`]). It is never used directly: [`ClusterKey`] derives
//! two independent keys from it with HMAC-SHA256 under fixed labels, one for
//! the RPC handshake and one for context-token MACs, so a proof from one
//! use is never valid in the other.
//!
//! **Handshake proofs.** Each side picks a fresh random nonce (passed in:
//! this module draws no randomness). The answering side proves the secret
//! with `HMAC(k, "server" | cluster | server id | client nonce | server
//! nonce)`, the connecting side with `HMAC(k, "client" | cluster | client id
//! | server nonce | client nonce)`. Every field is length-prefixed, so no
//! two different inputs share an encoding. Because each proof covers the
//! other side's fresh nonce, a recorded handshake cannot be replayed; the
//! role label keeps one side's proof from being reflected back as the
//! other's; the ids bind the proof to who claims to speak. Verification
//! compares in constant time.
//!
//! **Open mode.** A node started without a secret uses [`ClusterKey::open`]:
//! the same exchange under a key derived from no secret, which any other
//! open node can compute. It only keeps open and secured nodes apart (the
//! handshake also states the mode, for a clear refusal); it secures nothing.
//!
//! Boundary: pure functions of bytes. No IO, no clock, no randomness.

use crate::NodeId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Fewest bytes a cluster secret may have (after trimming whitespace).
pub const MIN_SECRET_BYTES: usize = 16;
/// Most bytes a cluster secret may have (a larger file is a mistake).
pub const MAX_SECRET_BYTES: usize = 4096;
/// Bytes of each side's handshake nonce.
pub const NONCE_BYTES: usize = 16;
/// Bytes of a handshake proof (an HMAC-SHA256 output).
pub const PROOF_BYTES: usize = 32;
/// Bytes of a context token's MAC (HMAC-SHA256, truncated).
pub const CONTEXT_MAC_BYTES: usize = 16;

/// A handshake nonce: fresh random bytes per connection and side.
pub type Nonce = [u8; NONCE_BYTES];
/// A handshake proof.
pub type Proof = [u8; PROOF_BYTES];

type HmacSha256 = Hmac<Sha256>;

/// Why a configured secret is refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the cluster secret has {bytes} bytes after trimming whitespace; it needs at least {min} (e.g. `head -c 32 /dev/urandom | base64`)")]
    TooShort { bytes: usize, min: usize },
    #[error("the cluster secret has {bytes} bytes, more than the limit of {max}")]
    TooLong { bytes: usize, max: usize },
}

/// Why a handshake proof was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the proof was not made with this cluster's secret for this exchange")]
pub struct ProofMismatch;

/// The operator's shared secret. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl ClusterSecret {
    /// Checks and keeps `bytes` with surrounding whitespace trimmed (a file
    /// written by `echo` ends in a newline that must not matter).
    pub fn new(bytes: &[u8]) -> Result<Self, SecretError> {
        if bytes.len() > MAX_SECRET_BYTES {
            return Err(SecretError::TooLong {
                bytes: bytes.len(),
                max: MAX_SECRET_BYTES,
            });
        }
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort {
                bytes: trimmed.len(),
                min: MIN_SECRET_BYTES,
            });
        }
        Ok(ClusterSecret(trimmed.to_vec()))
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterSecret(<{} bytes>)", self.0.len())
    }
}

/// The keys derived from a cluster secret (or from none, in open mode).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey {
    secured: bool,
    handshake: [u8; 32],
    context: [u8; 32],
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterKey(secured: {})", self.secured)
    }
}

/// HMAC-SHA256 of the length-prefixed `parts` under `key`.
fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

fn derive(secret: &[u8], label: &str) -> [u8; 32] {
    mac(secret, &[label.as_bytes()])
        .finalize()
        .into_bytes()
        .into()
}

impl ClusterKey {
    /// The keys of a cluster that has `secret`.
    pub fn from_secret(secret: &ClusterSecret) -> Self {
        Self::derived(&secret.0, true)
    }

    /// The keys of a node without a secret (open mode; see the module docs).
    pub fn open() -> Self {
        Self::derived(&[], false)
    }

    fn derived(secret: &[u8], secured: bool) -> Self {
        ClusterKey {
            secured,
            handshake: derive(secret, "ringkv handshake v1"),
            context: derive(secret, "ringkv context v1"),
        }
    }

    /// Whether this key comes from a configured secret.
    pub fn is_secured(&self) -> bool {
        self.secured
    }

    fn handshake_mac(
        &self,
        role: &str,
        cluster: &str,
        id: &[u8],
        first: &Nonce,
        second: &Nonce,
    ) -> HmacSha256 {
        mac(
            &self.handshake,
            &[role.as_bytes(), cluster.as_bytes(), id, first, second],
        )
    }

    /// The MAC of the answering node's proof: over the connecting side's
    /// nonce first.
    fn server_mac(
        &self,
        cluster: &str,
        server: &NodeId,
        client_nonce: &Nonce,
        server_nonce: &Nonce,
    ) -> HmacSha256 {
        let id = server.as_str().as_bytes();
        self.handshake_mac("server", cluster, id, client_nonce, server_nonce)
    }

    /// The MAC of the connecting side's proof (`client` is `None` for a
    /// client that is not a node): over the answering node's nonce first.
    fn client_mac(
        &self,
        cluster: &str,
        client: Option<&NodeId>,
        server_nonce: &Nonce,
        client_nonce: &Nonce,
    ) -> HmacSha256 {
        let id = client_id(client);
        self.handshake_mac("client", cluster, id, server_nonce, client_nonce)
    }

    /// The answering node's proof.
    pub fn server_proof(
        &self,
        cluster: &str,
        server: &NodeId,
        client_nonce: &Nonce,
        server_nonce: &Nonce,
    ) -> Proof {
        let m = self.server_mac(cluster, server, client_nonce, server_nonce);
        m.finalize().into_bytes().into()
    }

    /// Checks the answering node's proof in constant time.
    pub fn verify_server(
        &self,
        cluster: &str,
        server: &NodeId,
        client_nonce: &Nonce,
        server_nonce: &Nonce,
        proof: &Proof,
    ) -> Result<(), ProofMismatch> {
        let m = self.server_mac(cluster, server, client_nonce, server_nonce);
        m.verify_slice(proof).map_err(|_| ProofMismatch)
    }

    /// The connecting side's proof.
    pub fn client_proof(
        &self,
        cluster: &str,
        client: Option<&NodeId>,
        server_nonce: &Nonce,
        client_nonce: &Nonce,
    ) -> Proof {
        let m = self.client_mac(cluster, client, server_nonce, client_nonce);
        m.finalize().into_bytes().into()
    }

    /// Checks the connecting side's proof in constant time.
    pub fn verify_client(
        &self,
        cluster: &str,
        client: Option<&NodeId>,
        server_nonce: &Nonce,
        client_nonce: &Nonce,
        proof: &Proof,
    ) -> Result<(), ProofMismatch> {
        let m = self.client_mac(cluster, client, server_nonce, client_nonce);
        m.verify_slice(proof).map_err(|_| ProofMismatch)
    }

    /// The MAC of a context token's `body` (see [`crate::context`]).
    pub fn context_mac(&self, body: &[u8]) -> [u8; CONTEXT_MAC_BYTES] {
        let full = mac(&self.context, &[body]).finalize().into_bytes();
        let mut out = [0u8; CONTEXT_MAC_BYTES];
        out.copy_from_slice(&full[..CONTEXT_MAC_BYTES]);
        out
    }

    /// Checks a context token's MAC in constant time.
    pub fn verify_context_mac(&self, body: &[u8], tag: &[u8]) -> Result<(), ProofMismatch> {
        mac(&self.context, &[body])
            .verify_truncated_left(tag)
            .map_err(|_| ProofMismatch)
    }
}

/// The id bytes of a connecting side: empty for a client.
fn client_id(client: Option<&NodeId>) -> &[u8] {
    client.map(|c| c.as_str().as_bytes()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
