//! **monotonic reads** (R + W > N, so read repair blocks, and R + R > N, so
//! two reads meet): an element a quorum read returned is never missing from
//! a quorum read that started after it ended, even if the write that added
//! it failed. Elements are only ever added, so hiding one is a lost update
//! in the making.

use crate::explorer::history::SetKey;

pub fn check(key: &str, set: &SetKey) -> Result<(), String> {
    for earlier in &set.reads {
        for later in set.reads.iter().filter(|r| r.started > earlier.ended) {
            if let Some(hidden) = earlier
                .elements
                .iter()
                .find(|e| !later.elements.contains(*e))
            {
                return Err(format!(
                    "set {key}: {hidden} was read (ended at {}) and hidden from a later read (started at {})",
                    earlier.ended, later.started
                ));
            }
        }
    }
    Ok(())
}
