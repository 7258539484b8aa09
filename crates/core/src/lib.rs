//! # ringkv-core: the pure heart of ringkv
//!
//! Everything here is deterministic: no sockets, no files, no clock reads, no
//! tokio. Time, randomness and incoming messages arrive as arguments; decisions
//! and messages leave as return values. That is what lets a whole cluster run
//! in one thread under a seeded simulation (see `crates/node/tests/`), and a
//! CI check (`cargo tree -p ringkv-core -i tokio` must find nothing) keeps it so.
//!
//! How the types fit together, following one write:
//!
//! - A client names a [`key::ObjectKey`] (bucket + key bytes). [`ring::key_position`]
//!   hashes it onto the 64-bit circle, which is cut into Q equal partitions
//!   ([`layout::partition_of`]). A [`layout::Layout`], computed by the pure
//!   [`layout::compute_layout`] from the members, their capacities and zones,
//!   gives each partition a versioned preference list: its N replicas on
//!   distinct nodes (and zones), then fallbacks (P1–P3). Every node must
//!   share the same [`settings::ClusterSettings`].
//! - [`liveness::Liveness`] judges each peer `Up`, `Suspect` or `Down`: a
//!   phi-accrual [`failure_detector::PhiDetector`] fed by gossip heartbeats,
//!   combined with [`health::PeerHealth`], the typed outcomes of this node's
//!   own calls, with hysteresis so a flapping peer does not flap the status.
//!   Coordination asks known-down peers last; placement never changes (M2).
//! - The value lives as a [`siblings::Siblings`]: every concurrent version
//!   with its [`version_vector::Dot`], plus a [`version_vector::VersionVector`]
//!   summarising everything seen. A put carries a [`context::CausalContext`]
//!   (what the writer read); [`siblings::Siblings::update`] supersedes exactly
//!   those versions and [`siblings::Siblings::merge`] reconciles replicas (V1–V4).
//! - [`coordinate::plan`] decides whether this node coordinates the request
//!   or forwards it; [`coordinate::ReadMachine`], [`coordinate::WriteMachine`]
//!   and [`coordinate::ForwardMachine`] make every coordination decision
//!   (whom to ask, replacing failed replicas, speculative reads, when to
//!   stop) as sans-IO state machines driven by the node. They count replica
//!   answers in a [`quorum::QuorumTally`] and answer once R or W of them
//!   agree (F1), with [`replication::Replication`] saying what N, R and W
//!   are (A5). Why a replica did not count is a [`failure::ReplicaFailure`].
//! - Replicas that drifted apart converge through [`anti_entropy`]: each
//!   keeps a [`anti_entropy::PartitionTree`] per partition (per-key hashes
//!   XOR-folded into 4096 segments), and an [`anti_entropy::ExchangeMachine`]
//!   walks two replicas' trees down to the differing keys, re-checks before
//!   repairing, and hands those keys to the node to merge (F5).
//! - Who is in the cluster, at which addresses, and how far each node's
//!   data has caught up with the layout, spreads by gossip: each node owns
//!   its [`membership::NodeRecord`], and [`membership::Membership`] merges
//!   what peers say in SYN / ACK / ACK2 exchanges so every table converges
//!   in O(log n) rounds (M1).
//! - A node that gains partitions in a new layout version pulls them from
//!   their sources through [`streaming`]: resumable chunk requests by
//!   cursor, decided by a [`streaming::StreamMachine`] (P4).
//! - Nodes speak the [`protocol`] messages, encoded with [`codec`].
//! - Every size limit has a name in [`limits`].

pub mod anti_entropy;
pub mod auth;
pub mod client_auth;
pub mod codec;
pub mod context;
pub mod coordinate;
pub mod failure;
pub mod failure_detector;
pub mod health;
pub mod hints;
pub mod key;
pub mod layout;
pub mod layout_history;
pub mod limits;
pub mod liveness;
pub mod membership;
pub mod node_id;
pub mod protocol;
pub mod quorum;
pub mod replication;
pub mod ring;
pub mod settings;
pub mod siblings;
pub mod streaming;
pub mod tombstones;
pub mod version_vector;

pub use node_id::NodeId;
