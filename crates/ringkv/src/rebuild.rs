//! Starting on a damaged data directory: the refusal that explains it, and
//! `ringkv serve --rebuild`, which sets the damaged store aside and starts
//! on a fresh one that refills from the other replicas.
//!
//! **Refusal.** A store whose files do not check out
//! (`StorageError::Damaged`) or that opened without this node's own state
//! although it existed on disk (fjall dropped the journal from a damaged
//! batch on: see `ringkv_storage::damage`) stops the start with a message
//! naming the directory, the kind of file and the exact command to run. So
//! does a store that lost the seal of its last clean stop
//! ([`crate::seal`]): its journal dropped batches.
//!
//! **Rebuild.** Everything in the data directory except earlier
//! `damaged-*` directories is moved (renamed, never copied or deleted)
//! into `<data-dir>/damaged-<unix-secs>/`, the node opens a fresh store,
//! marks it as refilling (`ringkv_node::refill`) and starts with the same
//! id and configuration: it learns the cluster from its `--peer` /
//! `--seed` peers, mints dots under a fresh actor epoch, refuses reads
//! until it has pulled every partition it holds, then serves normally.
//! What is lost is said in a WARN: hints it held for other nodes, and any
//! write that only its store held.
//!
//! Boundary: file moves and messages only; what a rebuilt node does once
//! running is the node crate's.

use crate::seal::Sealed;
use anyhow::{bail, Context, Result};
use ringkv_storage::{DamageKind, FjallStorage, Storage, StorageError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Prefix of the directories a rebuild moves damaged stores into.
pub const ASIDE_PREFIX: &str = "damaged-";

/// Most suffixes tried when `damaged-<secs>` is taken (rebuilds within one second).
pub const MAX_ASIDE_SUFFIX: u32 = 1000;

/// Where a rebuild at `unix_secs` sets the store aside: `damaged-<secs>`,
/// or `damaged-<secs>-<k>` for the first free `k` if that is taken.
/// `None` if every name up to [`MAX_ASIDE_SUFFIX`] is taken.
pub fn aside_path(
    data_dir: &Path,
    unix_secs: u64,
    taken: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let base = format!("{ASIDE_PREFIX}{unix_secs}");
    std::iter::once(data_dir.join(&base))
        .chain((1..=MAX_ASIDE_SUFFIX).map(|k| data_dir.join(format!("{base}-{k}"))))
        .find(|p| !taken(p))
}

/// Whether a data directory entry is an earlier set-aside store.
pub fn is_aside(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with(ASIDE_PREFIX)
}

/// Moves the store in `data_dir` aside (see the module docs). `None` if
/// there was nothing to move.
pub fn move_aside(data_dir: &Path, unix_secs: u64) -> Result<Option<PathBuf>> {
    let entries: Vec<PathBuf> = std::fs::read_dir(data_dir)
        .with_context(|| format!("reading {}", data_dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<PathBuf>>>()
        .with_context(|| format!("reading {}", data_dir.display()))?
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| !is_aside(n)))
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }
    let aside = aside_path(data_dir, unix_secs, |p| p.exists())
        .with_context(|| format!("no free {ASIDE_PREFIX}{unix_secs}-<k> name"))?;
    std::fs::create_dir(&aside).with_context(|| format!("creating {}", aside.display()))?;
    for entry in entries {
        let name = entry.file_name().unwrap_or_default();
        std::fs::rename(&entry, aside.join(name))
            .with_context(|| format!("moving {} into {}", entry.display(), aside.display()))?;
    }
    Ok(Some(aside))
}

/// The command that rebuilds: this one, with `--rebuild` added.
pub fn rebuild_command(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .filter(|a| *a != "--rebuild")
        .map(|a| shell_quote(a))
        .collect();
    format!("{} --rebuild", quoted.join(" "))
}

fn shell_quote(arg: &str) -> String {
    let plain = arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c));
    if plain && !arg.is_empty() {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The refusal for a damaged store in `dir`: what was found, and how to
/// rebuild.
pub fn refusal(dir: &Path, found: &str, command: &str) -> String {
    format!(
        "the data directory {} is damaged and this node will not start on it: {found}. \
         Other replicas hold this node's data: to set the damaged store aside (into {}/{ASIDE_PREFIX}<unix-secs>/, never deleted) \
         and refill this node from its peers, run: {command}",
        dir.display(),
        dir.display(),
    )
}

/// The WARN a rebuild starts with.
pub fn loss_warning(aside: Option<&Path>) -> String {
    let moved = match aside {
        Some(p) => format!("the old store was moved to {}", p.display()),
        None => "the data directory held no store".to_string(),
    };
    format!(
        "rebuilding this node on a fresh store ({moved}). Lost with the old store: the hints it held for other nodes \
         (anti-entropy repairs those replicas) and any write that only it held (acknowledged with W=1 and not yet \
         replicated). Until every partition it holds has been pulled from the other replicas, it refuses reads"
    )
}

/// Opens the node's store in `dir`: a fresh, refilling one when
/// `rebuild` (after moving the old one aside), otherwise the existing one,
/// refused with [`refusal`] if it is damaged. `command` is the rebuild
/// command to name. Blocking: run it off the async workers.
pub fn open_store(dir: &Path, rebuild: bool, command: &str) -> Result<Arc<dyn Storage>> {
    if rebuild {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = move_aside(dir, secs)?;
        tracing::warn!("{}", loss_warning(aside.as_deref()));
        let fresh = FjallStorage::open(dir)
            .with_context(|| format!("opening a fresh store in {}", dir.display()))?;
        ringkv_node::refill::mark_pending(&fresh).with_context(|| {
            format!("marking the fresh store in {} as refilling", dir.display())
        })?;
        return Ok(Arc::new(fresh));
    }
    let existed = dir.join(FJALL_VERSION_FILE).exists();
    let engine = match FjallStorage::open(dir) {
        Ok(engine) => engine,
        Err(e @ StorageError::Damaged { .. }) => bail!("{}", refusal(dir, &e.to_string(), command)),
        Err(e) => return Err(e).with_context(|| format!("opening storage in {}", dir.display())),
    };
    let lived = ringkv_node::actor::has_lived(&engine)
        .with_context(|| format!("reading this node's state in {}", dir.display()))?;
    if existed && !lived {
        let found = format!(
            "the store opened but this node's own state is gone: {} dropped every batch from a damaged one on",
            DamageKind::Journal.files()
        );
        bail!("{}", refusal(dir, &found, command));
    }
    if let Sealed::Broken { file, store } = crate::seal::check(&engine, dir)? {
        let found = format!(
            "the store opened without the seal of its last clean stop (seal {file}, found {}): {} dropped every batch from a damaged one on",
            store.map_or("none".to_string(), |s| s.to_string()),
            DamageKind::Journal.files()
        );
        bail!("{}", refusal(dir, &found, command));
    }
    Ok(Arc::new(engine))
}

/// The file fjall writes first in a database directory; its presence means
/// a store existed before this start.
const FJALL_VERSION_FILE: &str = "version";

#[cfg(test)]
mod tests;
