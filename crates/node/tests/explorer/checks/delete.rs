//! **delete**: a key whose delete was acknowledged never shows its value
//! again after healing, whatever crashed, moved or was partitioned.

use crate::explorer::history::{Deleted, Outcome};

pub fn check(key: &str, deleted: &Deleted, through: &str, found: &[String]) -> Result<(), String> {
    if deleted.delete == Some(Outcome::Acked) && !found.is_empty() {
        return Err(format!(
            "delete {key}: {found:?} reappeared via {through} after {} was deleted",
            deleted.value
        ));
    }
    Ok(())
}
