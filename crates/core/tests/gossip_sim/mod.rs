//! A pure gossip simulation shared by `tests/gossip_convergence.rs` and
//! `benches/gossip.rs`: n [`Membership`] tables in one thread, a seeded
//! splitmix64 for every random choice, and each message encoded with
//! postcard and decoded again, as the wire would, so sizes are real and
//! every message a node receives has passed `validate()`.
//!
//! A round: every node, in a fresh random order, ticks (time is
//! `round * 1000` ms) and runs one SYN / ACK / ACK2 exchange with the live
//! peer [`Membership::gossip_targets`] picks, plus one with the seed (node
//! 0) when the targets say so. Exchanges run one after another, so news can
//! travel on within the round it was heard, as it does between real nodes
//! whose gossip timers are out of phase. All nodes stay up: `is_live` is
//! always true. Test-only; holds no assertions a test cannot see.

#![allow(dead_code)] // each user needs part of it

use ringkv_core::membership::{GossipAck, GossipAck2, GossipSyn, Membership, NodeRecord};
use ringkv_core::NodeId;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// splitmix64: a tiny, good, seedable generator.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Generation of node `i` (a start time in ms).
const BASE_GENERATION: u64 = 1_700_000_000_000;

pub fn node_id(i: usize) -> NodeId {
    NodeId::new(&format!("node-{i:04}")).unwrap()
}

pub fn fresh_node(i: usize) -> Membership {
    let record = NodeRecord {
        http: Some(format!("10.0.{}.{}:8080", i / 250, i % 250)),
        zone: Some(format!("zone-{}", i % 3)),
        ..NodeRecord::new(node_id(i), format!("10.0.{}.{}:7000", i / 250, i % 250), 1)
    };
    Membership::new(record, BASE_GENERATION + i as u64).unwrap()
}

/// Bytes one node sent in one round, by message kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    pub syn: u64,
    pub ack: u64,
    pub ack2: u64,
}

impl Sent {
    pub fn total(&self) -> u64 {
        self.syn + self.ack + self.ack2
    }
}

pub struct Cluster {
    pub nodes: Vec<Membership>,
    pub rng: SplitMix64,
    pub round: u64,
    /// Bytes each node sent in the last round.
    pub sent: Vec<Sent>,
    /// Messages that failed `validate()` after decoding (must stay 0).
    pub invalid: u64,
    /// Whether to check that every decoded message equals the one sent
    /// (the bench turns it off to time only what a node does).
    pub check_wire: bool,
}

impl Cluster {
    /// `n` nodes that already know each other (as after a long time of
    /// gossip), with the random source seeded by `seed`.
    pub fn converged(n: usize, seed: u64) -> Cluster {
        let nodes: Vec<Membership> = (0..n).map(fresh_node).collect();
        let everyone = GossipAck2 {
            entries: nodes.iter().map(|m| m.own().clone()).collect(),
            beats: vec![],
        };
        let nodes = nodes
            .into_iter()
            .map(|mut m| {
                m.on_ack2(everyone.clone()).unwrap();
                m
            })
            .collect();
        Cluster {
            nodes,
            rng: SplitMix64(seed),
            round: 0,
            sent: vec![Sent::default(); n],
            invalid: 0,
            check_wire: true,
        }
    }

    /// Adds a node that knows nothing but a seed's address (node 0's);
    /// returns its index.
    pub fn join(&mut self) -> usize {
        let i = self.nodes.len();
        self.nodes.push(fresh_node(i));
        self.sent.push(Sent::default());
        i
    }

    /// One round; see the module doc.
    pub fn round(&mut self) {
        self.round += 1;
        let now_ms = self.round * 1000;
        self.sent.iter_mut().for_each(|s| *s = Sent::default());
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        for k in (1..order.len()).rev() {
            order.swap(k, self.rng.below(k + 1));
        }
        for i in order {
            self.nodes[i].tick(now_ms);
            let targets = self.nodes[i].gossip_targets(self.rng.next(), |_| true);
            if let Some(peer) = targets.live {
                let j = self.index_of(&peer);
                self.exchange(i, j);
            }
            if targets.seed && i != 0 {
                self.exchange(i, 0);
            }
        }
    }

    /// Runs rounds until `done` holds, at most `limit`; the rounds it took.
    pub fn rounds_until(&mut self, limit: u64, done: impl Fn(&Cluster) -> bool) -> Option<u64> {
        for r in 1..=limit {
            self.round();
            if done(self) {
                return Some(r);
            }
        }
        None
    }

    fn index_of(&self, id: &NodeId) -> usize {
        id.as_str()["node-".len()..].parse().unwrap()
    }

    /// One exchange initiated by `i` with `j`, every message through the
    /// wire encoding.
    fn exchange(&mut self, i: usize, j: usize) {
        let syn: GossipSyn = self.wire(i, |s, n| s.syn += n, &self.nodes[i].syn());
        if syn.validate().is_err() {
            self.invalid += 1;
            return;
        }
        let (ack, _) = self.nodes[j].on_syn(&syn).unwrap();
        let ack: GossipAck = self.wire(j, |s, n| s.ack += n, &ack);
        if ack.validate().is_err() {
            self.invalid += 1;
            return;
        }
        let (ack2, _) = self.nodes[i].on_ack(ack).unwrap();
        let ack2: GossipAck2 = self.wire(i, |s, n| s.ack2 += n, &ack2);
        if ack2.validate().is_err() {
            self.invalid += 1;
            return;
        }
        self.nodes[j].on_ack2(ack2).unwrap();
    }

    /// Encodes `message` as node `from` sends it, counts its bytes, and
    /// decodes it as the receiver would.
    fn wire<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
        &mut self,
        from: usize,
        count: impl Fn(&mut Sent, u64),
        message: &T,
    ) -> T {
        let bytes = postcard::to_allocvec(message).unwrap();
        count(
            &mut self.sent[from],
            bytes.len() as u64 + FRAME_OVERHEAD_BYTES,
        );
        let decoded: T = postcard::from_bytes(&bytes).unwrap();
        if self.check_wire {
            assert_eq!(&decoded, message, "the encoding round-trips");
        }
        decoded
    }

    /// Whether every node other than `i` knows node `i`.
    pub fn all_know(&self, i: usize) -> bool {
        let id = node_id(i);
        self.nodes.iter().all(|m| m.entry(&id).is_some())
    }

    /// Whether every node holds at least `version` of node `i`'s record.
    pub fn all_have_version(&self, i: usize, version: u64) -> bool {
        let id = node_id(i);
        let have = |m: &Membership| m.entry(&id).is_some_and(|e| e.stamp.version >= version);
        self.nodes.iter().all(have)
    }

    /// Whether every node holds at least `heartbeat` of node `i`.
    pub fn all_have_heartbeat(&self, i: usize, heartbeat: u64) -> bool {
        let id = node_id(i);
        let have = |m: &Membership| m.entry(&id).is_some_and(|e| e.stamp.heartbeat >= heartbeat);
        self.nodes.iter().all(have)
    }
}

/// What a frame adds around a gossip body on the wire: the 4-byte length
/// prefix, the format byte, the message variant and a request id (about 3
/// bytes as a varint).
pub const FRAME_OVERHEAD_BYTES: u64 = 4 + 1 + 1 + 3;

/// Rounds (a) until a node that knows only a seed is known by all, (b)
/// until a record change reaches all, (c) until a heartbeat reaches all,
/// in a converged cluster of `n` nodes seeded with `seed`.
pub fn measure(n: usize, seed: u64, limit: u64) -> (Cluster, [u64; 3]) {
    let mut cluster = Cluster::converged(n, seed);
    for _ in 0..3 {
        cluster.round(); // settle into steady state
    }
    let newcomer = cluster.join();
    let join = cluster
        .rounds_until(limit, |c| c.all_know(newcomer))
        .expect("the new node became known");
    let changed = cluster.rng.below(n);
    cluster.nodes[changed]
        .update_self(|r| {
            let version = r.acked.map_or(1, |s| s.version + 1);
            r.acked = Some(ringkv_core::layout_history::LayoutStamp { version, digest: 7 })
        })
        .unwrap();
    let version = cluster.nodes[changed].own().stamp.version;
    let record = cluster
        .rounds_until(limit, |c| c.all_have_version(changed, version))
        .expect("the change reached everyone");
    let beating = cluster.rng.below(n);
    let heartbeat = cluster.nodes[beating].own().stamp.heartbeat;
    let beat = cluster
        .rounds_until(limit, |c| c.all_have_heartbeat(beating, heartbeat))
        .expect("the heartbeat reached everyone");
    (cluster, [join, record, beat])
}
