//! Node-to-node RPC over one multiplexed, framed connection per peer.
//!
//! - [`frame`]: length-delimited frames (bounded by `MAX_FRAME_BYTES`),
//!   the writer loop that batches frames into few syscalls, and [`RpcError`].
//! - [`client`]: [`client::PeerClient`], one persistent connection per peer,
//!   opened lazily with a versioned handshake; calls carry request ids, so
//!   many are in flight at once, and every call has a deadline.
//! - [`backoff`]: the pure reconnection decision, so a down peer costs one
//!   connection attempt per interval and calls to it fail fast meanwhile.
//! - [`handshake`]: both sides of the handshake, which checks versions,
//!   settings and layouts and proves the cluster secret (challenge-response).
//! - [`server`]: accepts connections (at most `max_inbound_connections`),
//!   checks the handshake (within `handshake_timeout`), and hands each
//!   request to an [`server::RpcHandler`] concurrently (bounded per connection).
//!
//! Messages themselves ([`ringkv_core::protocol`]) and their encoding
//! ([`ringkv_core::codec`]) are pure and live in the core.

pub mod backoff;
pub mod client;
pub mod frame;
pub mod handshake;
pub mod server;

pub use client::PeerClient;
pub use frame::{failure_of, RpcError};
pub use handshake::Greeting;
pub use server::RpcHandler;
