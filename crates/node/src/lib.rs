//! # ringkv-node: the IO shell around the pure core
//!
//! A node is a [`coordinator::Coordinator`] and a [`replica::LocalReplica`]
//! reachable two ways: clients speak HTTP ([`http`]), nodes speak framed,
//! multiplexed RPC ([`rpc`]). Writes reach disk through group commit
//! ([`commit`]), which is what makes fsync-per-acknowledged-write affordable.
//! Every call into a blocking engine runs on a [`storage_lanes`] thread,
//! never on an async worker. As a stand-in for an unreachable replica a
//! node keeps hints ([`hint_store`]) and hands them back when it answers
//! again ([`handoff`]); [`probe`] pings the peers it judges down; and it
//! compares its partitions with their other replicas ([`anti_entropy`],
//! over the trees of [`partition_trees`]); [`tombstone_gc`] reaps deletes
//! every replica holds. Membership spreads by [`gossip`] into
//! [`cluster_state`] (the layout history and member table, persisted, turned
//! into the [`view`] requests use); a node learns its cluster at start in
//! [`bootstrap`], operators change it through [`changes`], and
//! [`rebalance`] pulls the partitions a layout change gave this node
//! ([`streaming`]).
//! [`node::run`] assembles all of it from a [`config::NodeConfig`] and three
//! edges — network, storage and wall clock — so tests swap in turmoil's
//! simulated network and the in-memory engine and run a whole cluster on
//! virtual time in one thread.
//!
//! Decisions (placement, versioning, quorum tallies) are made by
//! `ringkv-core`; this crate only moves bytes, waits and keeps time. Time is
//! read only through tokio's clock and the injected wall clock, never
//! `std::time::Instant`, so simulated time stays in charge.

pub mod actor;
pub mod anti_entropy;
pub mod bootstrap;
pub mod changes;
pub mod cluster_state;
pub mod commit;
pub mod config;
pub mod coordinator;
pub mod gossip;
pub mod handler;
pub mod handoff;
pub mod hint_store;
pub mod http;
pub mod in_flight;
pub mod metrics;
pub mod net;
pub mod node;
pub mod partition_trees;
pub mod probe;
pub mod read_gate;
pub mod rebalance;
pub mod refill;
pub mod replica;
pub mod rpc;
pub mod storage_lanes;
pub mod streaming;
pub mod tombstone_gc;
pub mod view;

/// The header types the HTTP layer's parsers take, for checks outside the node.
pub use axum::http::header as http_header;
pub use config::{NodeConfig, PeerConfig};
pub use node::{run, run_with, system_clock, Edges, OnStart, StartError};
