//! The liveness probe: pings the peers this node judges down, so it notices
//! when they answer again.
//!
//! With sloppy quorum a peer judged down is no longer asked for reads and
//! writes (stand-ins are), so request outcomes alone would never show that
//! it came back. Every `interval` this task sends a `Ping` to each peer
//! whose status is `Down` and records the outcome in its health
//! ([`crate::view::Peer::record`]): one answer makes it `Up` again, and
//! hinted handoff and sloppy quorum follow. A ping to a peer in connect
//! backoff fails at once without touching the network. Gossip heartbeats
//! and a phi-accrual detector replace this later (M2); the health record
//! they feed is the same.

use crate::view::ViewCell;
use ringkv_core::health::PeerStatus;
use ringkv_core::protocol::Request;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often down peers are pinged.
pub const PROBE_INTERVAL_MS: u64 = 1000;
/// How long a ping may take.
pub const PROBE_TIMEOUT_MS: u64 = 1000;

/// Pings every down peer every `interval` until `stop` is cancelled.
pub async fn run(
    view: Arc<ViewCell>,
    origin: Instant,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let view = view.load();
        let down = view.peers().filter(|p| p.status() == PeerStatus::Down);
        let pings = down.map(|peer| async move {
            let timeout = Duration::from_millis(PROBE_TIMEOUT_MS);
            let _ = peer.call(Request::Ping, timeout, origin).await;
        });
        futures_util::future::join_all(pings).await;
    }
}
