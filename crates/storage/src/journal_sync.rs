//! `JournalSync`: `fdatasync` of fjall's active journal without fjall's lock.
//!
//! fjall's own `Database::persist` runs `fdatasync` while holding the journal
//! writer lock, so every commit on every thread waits for the disk during a
//! sync; under group commit that stalled a node's async workers about half
//! of the time. This module syncs the same file through a descriptor of its
//! own instead, so commits proceed while the disk works. It relies on three
//! facts of fjall 3.1.13 — pinned exactly in the workspace `Cargo.toml` and
//! checked by `tests/fjall_journal_facts.rs`, which must pass before the pin
//! moves:
//!
//! - journals are `<id>.jnl` files in the database folder, and the active one
//!   has the highest id;
//! - every batch is committed with `PersistMode::Buffer`
//!   (see `fjall_engine.rs`), so its bytes are in the OS when commit returns;
//! - rotation `fsync`s the old journal before it creates the next one, so a
//!   commit that landed in an older journal is already durable; the new
//!   journal is preallocated and `fsync`ed, and its folder `fsync`ed, before
//!   the rotation releases the journal lock, so no commit lands in it before
//!   its directory entry is durable.
//!
//! So once `sync` returns, every batch committed before it started is durable.
//! `fdatasync` on Linux persists the appended bytes and the file size, which
//! is all a journal replay needs.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Syncs the active journal of the fjall database in `dir`.
pub struct JournalSync {
    dir: PathBuf,
    /// The journal last synced and its descriptor, reused while it is active.
    open: Mutex<Option<(u64, File)>>,
}

impl JournalSync {
    pub fn new(dir: &Path) -> Self {
        JournalSync {
            dir: dir.to_path_buf(),
            open: Mutex::new(None),
        }
    }

    /// Makes every batch committed before this call durable.
    ///
    /// One `stat` per call finds out whether the journal rotated (fjall
    /// creates `<id + 1>.jnl`); only then is the folder listed again. No
    /// listing and no `open` per sync while the active journal stays.
    pub fn sync(&self) -> io::Result<()> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let current = match open.take() {
            Some((id, file)) if !self.journal_path(id + 1).try_exists()? => (id, file),
            _ => {
                let (id, path) = active_journal(&self.dir)?;
                (id, File::open(&path)?)
            }
        };
        let synced = current.1.sync_data();
        *open = Some(current);
        synced
    }

    fn journal_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.jnl"))
    }
}

/// The highest-numbered `<id>.jnl` file in `dir`.
fn active_journal(dir: &Path) -> io::Result<(u64, PathBuf)> {
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jnl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| id > *b) {
            best = Some((id, entry.path()));
        }
    }
    best.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no journal in {}", dir.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_journal_is_the_highest_id_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            active_journal(dir.path()).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        for name in ["0.jnl", "2.jnl", "10.jnl", "lock", "x.jnl", "3.jnl.tmp"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(active_journal(dir.path()).unwrap().0, 10);
        let sync = JournalSync::new(dir.path());
        sync.sync().unwrap();
        std::fs::write(dir.path().join("11.jnl"), b"").unwrap();
        sync.sync().unwrap();
        let synced = || sync.open.lock().unwrap().as_ref().map(|(id, _)| *id);
        assert_eq!(synced(), Some(11), "follows rotation");
        // Two rotations between syncs: the listing finds the newest.
        for name in ["12.jnl", "13.jnl"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        sync.sync().unwrap();
        assert_eq!(synced(), Some(13), "follows two rotations");
        sync.sync().unwrap();
        assert_eq!(synced(), Some(13), "stays while no newer journal appears");
    }
}
