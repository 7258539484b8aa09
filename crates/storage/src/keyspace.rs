//! The separate keyspaces a node keeps, and their stable on-disk names.
//!
//! Every engine stores each [`Keyspace`] apart: a key written to `Hints` is
//! never visible through `Data`. The names returned by [`Keyspace::name`] are
//! part of the on-disk format (the fjall engine uses them as its keyspace
//! names), so this module must never rename or renumber an existing variant.

/// The separate keyspaces a node keeps.
///
/// Hints are kept apart from normal data (hinted handoff comes in a later
/// issue); `Meta` holds the node's own small bookkeeping records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyspace {
    /// Replicated user data: the values the ring serves.
    Data,
    /// Writes held on behalf of an unreachable replica (hinted handoff).
    Hints,
    /// Node-local bookkeeping (identity, ring view, counters).
    Meta,
}

impl Keyspace {
    /// Every keyspace, in a fixed order; `ALL[ks.index()] == ks`.
    pub const ALL: [Keyspace; 3] = [Keyspace::Data, Keyspace::Hints, Keyspace::Meta];

    /// The stable on-disk name: `"data"`, `"hints"` or `"meta"`.
    pub fn name(self) -> &'static str {
        match self {
            Keyspace::Data => "data",
            Keyspace::Hints => "hints",
            Keyspace::Meta => "meta",
        }
    }

    /// Position in [`Keyspace::ALL`], for engines that keep one slot per keyspace.
    pub(crate) fn index(self) -> usize {
        match self {
            Keyspace::Data => 0,
            Keyspace::Hints => 1,
            Keyspace::Meta => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_distinct() {
        let cases = [
            (Keyspace::Data, "data"),
            (Keyspace::Hints, "hints"),
            (Keyspace::Meta, "meta"),
        ];
        for (ks, name) in cases {
            assert_eq!(ks.name(), name);
        }
        let mut names: Vec<_> = Keyspace::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Keyspace::ALL.len());
    }

    #[test]
    fn index_matches_position_in_all() {
        for (i, ks) in Keyspace::ALL.iter().enumerate() {
            assert_eq!(ks.index(), i, "{ks:?}");
        }
    }
}
