//! The parts of the real-process chaos test (`tests/chaos.rs`): the
//! network of namespaces, the cluster in it, the nemesis, the set workload
//! and the final checks. One concept per file; see each module's doc.

pub mod checks;
pub mod cluster;
pub mod nemesis;
pub mod netns;
pub mod workload;
