//! **siblings**: every client reads, merges and writes back with the
//! context it read, so a set key never holds more siblings than its
//! concurrent writers plus the writes whose outcome was unknown (each of
//! which may have landed without superseding anything), plus the writes
//! made from a read that missed the client's own acknowledged element (a
//! stale context: possible under sloppy quorum or R + W <= N).

use crate::explorer::history::SetKey;

pub fn check(key: &str, set: &SetKey) -> Result<(), String> {
    let bound = set.writers + set.unknown.len() + set.stale_reads;
    match set.reads.iter().find(|r| r.siblings > bound.max(1)) {
        Some(r) => Err(format!(
            "set {key}: a read returned {} siblings; at most {bound} writers could have made them",
            r.siblings
        )),
        None => Ok(()),
    }
}
