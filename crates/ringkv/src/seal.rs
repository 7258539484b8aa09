//! The clean-shutdown seal: how a cleanly stopped node notices, at its next
//! start, that its journal lost batches.
//!
//! fjall does not report a damaged journal batch: it keeps the batches
//! before it and silently drops the rest (see `ringkv_storage::damage`). So
//! after a clean stop, `serve` writes one last batch, the seal (`Meta` key
//! [`SEAL_KEY`], a fresh number), syncs it, and then writes the same number
//! into the file [`SEAL_FILE`] beside the store. At the next start, if the
//! file is there, the store must hold the same seal: the seal was the last
//! batch, so damage anywhere in the journal drops it, and the start is
//! refused like any other damage (with the `--rebuild` command). The file
//! is removed once checked, so a start after a crash, whose journal may
//! rightly end early (unsynced writes), is not judged by an old seal.
//!
//! Boundary: one store read and one file at start, one batch and one file
//! at a clean stop. What a refusal says is [`crate::rebuild`]'s.

use anyhow::{Context, Result};
use ringkv_storage::{Keyspace, Storage, WriteBatch};
use std::io::Write;
use std::path::Path;

/// The `Meta` key holding the seal of the last clean stop.
pub const SEAL_KEY: &[u8] = b"clean_shutdown_seal";

/// The file beside the store holding the same seal, in decimal.
pub const SEAL_FILE: &str = "clean-shutdown";

/// Seals a store that has just stopped cleanly: the seal batch, synced,
/// then the file (synced too).
pub fn seal(storage: &dyn Storage, dir: &Path, seal: u64) -> Result<()> {
    let mut batch = WriteBatch::new();
    batch.put(Keyspace::Meta, SEAL_KEY, seal.to_be_bytes().to_vec());
    storage
        .write(batch)
        .context("writing the clean-shutdown seal")?;
    storage.sync().context("syncing the clean-shutdown seal")?;
    let path = dir.join(SEAL_FILE);
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(seal.to_string().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// What the start finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    /// No seal file: the last stop was not clean (or this store is new).
    NotChecked,
    /// The store holds the seal the file names.
    Intact,
    /// The file names a seal the store does not hold: batches are lost.
    Broken { file: u64, store: Option<u64> },
}

/// Checks the seal of the store in `dir` and removes the file.
pub fn check(storage: &dyn Storage, dir: &Path) -> Result<Sealed> {
    let path = dir.join(SEAL_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Sealed::NotChecked),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    // An unreadable file is a damaged seal too: nothing can vouch for the
    // journal then.
    let file = text.trim().parse::<u64>().unwrap_or(u64::MAX);
    let store = storage
        .get(Keyspace::Meta, SEAL_KEY)
        .context("reading the clean-shutdown seal")?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_be_bytes);
    if store == Some(file) {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        return Ok(Sealed::Intact);
    }
    Ok(Sealed::Broken { file, store })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_storage::{FjallStorage, MemStorage};

    #[test]
    fn a_clean_stop_seals_and_the_next_start_finds_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemStorage::new();
        assert_eq!(check(&store, dir.path()).unwrap(), Sealed::NotChecked);
        seal(&store, dir.path(), 42).unwrap();
        assert_eq!(check(&store, dir.path()).unwrap(), Sealed::Intact);
        assert_eq!(
            check(&store, dir.path()).unwrap(),
            Sealed::NotChecked,
            "the file is gone once checked: a later crash is not judged by it"
        );
    }

    #[test]
    fn a_store_that_lost_its_last_batches_breaks_the_seal() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemStorage::new();
        seal(&store, dir.path(), 7).unwrap();
        // The journal lost the seal batch: the store is as it was before.
        let older = MemStorage::new();
        assert_eq!(
            check(&older, dir.path()).unwrap(),
            Sealed::Broken {
                file: 7,
                store: None
            }
        );
        // An older seal (the batches after an earlier clean stop are lost).
        let earlier = MemStorage::new();
        seal(&earlier, tempfile::tempdir().unwrap().path(), 6).unwrap();
        assert_eq!(
            check(&earlier, dir.path()).unwrap(),
            Sealed::Broken {
                file: 7,
                store: Some(6)
            }
        );
        std::fs::write(dir.path().join(SEAL_FILE), "not a number").unwrap();
        assert!(matches!(
            check(&store, dir.path()).unwrap(),
            Sealed::Broken { .. }
        ));
    }

    #[test]
    fn a_seal_survives_a_reopen_of_fjall() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = FjallStorage::open(dir.path()).unwrap();
            seal(&store, dir.path(), 1_800_000_000_123).unwrap();
        }
        let store = FjallStorage::open(dir.path()).unwrap();
        assert_eq!(check(&store, dir.path()).unwrap(), Sealed::Intact);
    }
}
