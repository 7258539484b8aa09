//! Damage found while opening a store: which fjall failures mean the bytes
//! on disk are bad (so the node must not start on them) and which mean
//! something else (the directory is in use, no permission).
//!
//! fjall 3 checks its files when it opens a database and fails the open
//! when one does not check out; it does not say *which* file. What each
//! failure means was found by flipping bytes in every file it writes
//! (`tests/fjall_damage.rs` keeps those facts checked):
//!
//! | fjall error | what is damaged |
//! |---|---|
//! | `InvalidVersion(None)` | the database's `version` marker |
//! | `Storage(InvalidVersion(_))`, `Storage(ChecksumMismatch)` on open | a keyspace's manifest (`keyspaces/<n>/v<k>`) or a table |
//! | `Storage(InvalidHeader)`, `InvalidTrailer`, `InvalidTag`, `Decompress` | a table (`keyspaces/<n>/tables/<t>`) |
//! | `JournalRecovery(_)` | the journal (`<n>.jnl`) |
//! | `Io(NotFound)` (either level) | the `current` pointer names a manifest that is not there |
//! | `Io(InvalidInput / InvalidData / UnexpectedEof)` | a length or offset inside some file is impossible ("Invalid argument") |
//! | `Unrecoverable` | fjall gave up on required files |
//!
//! Everything else (`Locked`, permission errors, a full disk) is not
//! damage and stays an ordinary engine error. A byte flipped early in the
//! journal is *not* an open error: fjall's recovery keeps the batches before
//! the bad one and silently drops the rest (its `TolerateCorruptTail` mode).
//! The node notices that only when it loses its own state (see
//! `ringkv serve`'s start checks). Pure: no IO.

/// What kind of damage an open failure shows, as far as fjall lets us tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// The database's `version` marker file.
    VersionMarker,
    /// A keyspace manifest (`keyspaces/<n>/v<k>`) or a table it names.
    ManifestOrTable,
    /// A table file (`keyspaces/<n>/tables/<t>`).
    Table,
    /// The journal (`<n>.jnl`).
    Journal,
    /// A file the manifest names is missing.
    MissingFile,
    /// A length or offset inside some file is impossible.
    ImpossibleLength,
    /// fjall gave up without saying more.
    Unrecoverable,
    /// fjall panicked while opening the files.
    Panicked,
}

impl DamageKind {
    /// Which file(s) this kind points at, for the operator.
    pub fn files(self) -> &'static str {
        match self {
            DamageKind::VersionMarker => "the database version marker (`version`)",
            DamageKind::ManifestOrTable => {
                "a keyspace manifest (`keyspaces/<n>/v<k>`) or a table (`keyspaces/<n>/tables/<t>`)"
            }
            DamageKind::Table => "a table file (`keyspaces/<n>/tables/<t>`)",
            DamageKind::Journal => "the journal (`<n>.jnl`)",
            DamageKind::MissingFile => {
                "a file the manifest names is missing (`keyspaces/<n>/current` or a manifest or table)"
            }
            DamageKind::ImpossibleLength => "a length or offset inside a journal, manifest or table",
            DamageKind::Unrecoverable => "files fjall needs (it gave no detail)",
            DamageKind::Panicked => "a file fjall could not parse (it panicked)",
        }
    }
}

/// Whether an fjall open failure is damage, and of which kind. `None`: not
/// damage (locked, permissions, out of space, ...).
pub fn classify_open_error(err: &fjall::Error) -> Option<DamageKind> {
    use fjall::Error as F;
    use fjall::LsmError as L;
    match err {
        F::InvalidVersion(_) => Some(DamageKind::VersionMarker),
        F::JournalRecovery(_) | F::InvalidTrailer => Some(DamageKind::Journal),
        F::Decompress(_) | F::InvalidTag(_) => Some(DamageKind::Table),
        F::Unrecoverable => Some(DamageKind::Unrecoverable),
        F::Io(io) => classify_io(io),
        F::Storage(inner) => match inner {
            L::InvalidVersion(_) | L::ChecksumMismatch { .. } => Some(DamageKind::ManifestOrTable),
            L::InvalidHeader(_) | L::InvalidTrailer | L::InvalidTag(_) | L::Decompress(_) => {
                Some(DamageKind::Table)
            }
            L::Utf8(_) => Some(DamageKind::ManifestOrTable),
            L::Unrecoverable => Some(DamageKind::Unrecoverable),
            L::Io(io) => classify_io(io),
            _ => None,
        },
        _ => None,
    }
}

fn classify_io(io: &std::io::Error) -> Option<DamageKind> {
    use std::io::ErrorKind as K;
    match io.kind() {
        K::NotFound => Some(DamageKind::MissingFile),
        K::InvalidInput | K::InvalidData | K::UnexpectedEof => Some(DamageKind::ImpossibleLength),
        _ => None,
    }
}

/// The text of a panic payload, for the damage report.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}

#[cfg(test)]
mod tests;
