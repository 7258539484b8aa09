//! Whom to gossip with this round, from caller-supplied randomness.
//!
//! Cassandra's rule, which makes news reach every node in O(log n) rounds
//! and still notices nodes coming back:
//!
//! - one **live** peer, uniformly at random among those the caller's
//!   failure detector judges live;
//! - in addition, one **unreachable** peer with probability
//!   `unreachable / (live + 1)`, so a node that recovers hears from the
//!   cluster (and is heard of) soon, while a mostly healthy cluster spends
//!   almost nothing on dead nodes;
//! - in addition, a **seed** when no peer is live (a new node knows only its
//!   seeds' addresses, not their ids), and otherwise with probability
//!   `1 / (peers + 1)`, about one seed contact per cluster per round, which
//!   reconnects parts of a cluster that lost track of each other.
//!
//! Seeds are addresses the node layer holds (`--seed host:port`); this module
//! only says when to use one. The node layer picks a seed address at random,
//! skips its own address, and runs the same exchange with it.
//!
//! One `u64` drives all three draws: each is a fresh mix of it, so callers
//! pass one random number per round and a seeded simulation replays
//! exactly.

use super::Membership;
use crate::NodeId;

/// The peers of one gossip round; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipTargets {
    /// A live peer, if any is live.
    pub live: Option<NodeId>,
    /// An unreachable peer to try as well.
    pub unreachable: Option<NodeId>,
    /// Whether to gossip with a random seed address as well.
    pub seed: bool,
}

impl Membership {
    /// This round's peers, with `choice` as the randomness and `is_live` as
    /// the failure detector's judgement of each peer.
    pub fn gossip_targets(&self, choice: u64, is_live: impl Fn(&NodeId) -> bool) -> GossipTargets {
        let peers: Vec<&NodeId> = self.entries.keys().filter(|id| **id != self.me).collect();
        let (live, down): (Vec<&NodeId>, Vec<&NodeId>) = peers.iter().partition(|id| is_live(id));
        let pick = |from: &[&NodeId], draw: u64| -> Option<NodeId> {
            (!from.is_empty()).then(|| from[(draw % from.len() as u64) as usize].clone())
        };
        let unreachable = if mix(choice, 1) % (live.len() as u64 + 1) < down.len() as u64 {
            pick(&down, mix(choice, 2))
        } else {
            None
        };
        GossipTargets {
            live: pick(&live, mix(choice, 0)),
            unreachable,
            seed: live.is_empty() || mix(choice, 3).is_multiple_of(peers.len() as u64 + 1),
        }
    }
}

/// The `k`-th draw from one random `u64` (splitmix64's output function).
fn mix(choice: u64, k: u64) -> u64 {
    let mut z = choice.wrapping_add(k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
