//! **register**: a causally later put replaces earlier ones on every
//! replica, whatever the clocks say. Each write of a register carries the
//! context the last acknowledged one returned, so after healing the key
//! holds the last acknowledged value (unless a later write whose outcome
//! was unknown superseded it), and no earlier acknowledged value that its
//! returned context covered. Two kinds of earlier writes may remain as
//! siblings: writes whose outcome was unknown (the writer never saw them),
//! and acknowledged writes whose returned context did not cover them (see
//! `RegisterWrite::covered`).

use crate::explorer::history::{Outcome, Register};

pub fn check(
    key: &str,
    register: &Register,
    through: &str,
    found: &[String],
) -> Result<(), String> {
    let writes = &register.writes;
    let Some(last) = writes.iter().rposition(|w| w.outcome == Outcome::Acked) else {
        return Ok(());
    };
    let newest = &writes[last].value;
    let superseded: Vec<&String> = writes[..last]
        .iter()
        .filter(|w| w.outcome == Outcome::Acked && w.covered)
        .map(|w| &w.value)
        .collect();
    if let Some(old) = found.iter().find(|v| superseded.contains(v)) {
        return Err(format!(
            "register {key}: {old} came back via {through} after the later acknowledged {newest}"
        ));
    }
    let later_unknown = writes[last + 1..].iter().any(|w| found.contains(&w.value));
    if !found.contains(newest) && !later_unknown {
        return Err(format!(
            "register {key}: acknowledged {newest} gone via {through} (found {found:?})"
        ));
    }
    Ok(())
}
