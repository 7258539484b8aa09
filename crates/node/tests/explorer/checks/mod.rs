//! The invariants the explorer checks, one file each.

pub mod convergence;
pub mod delete;
pub mod monotonic;
pub mod register;
pub mod set;
pub mod siblings;
