//! **set**: after healing, a read with R = N through every node holds every
//! acknowledged element; an element whose write failed may or may not be
//! there; nothing appears that was never written.

use crate::explorer::history::SetKey;
use std::collections::BTreeSet;

pub fn check(
    key: &str,
    set: &SetKey,
    through: &str,
    found: &BTreeSet<String>,
) -> Result<(), String> {
    if let Some(lost) = set.acked.iter().find(|e| !found.contains(*e)) {
        return Err(format!(
            "set {key}: acknowledged element {lost} missing via {through}"
        ));
    }
    if let Some(stranger) = found
        .iter()
        .find(|e| !set.acked.contains(*e) && !set.unknown.contains(*e))
    {
        return Err(format!(
            "set {key}: element {stranger} was never written (via {through})"
        ));
    }
    Ok(())
}
