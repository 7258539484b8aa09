//! The fjall internals `journal_sync.rs` relies on, checked against the
//! pinned fjall version (`fjall = "=x.y.z"` in the workspace `Cargo.toml`).
//!
//! If an upgrade breaks one of these, `FjallStorage::sync` may stop making
//! commits durable (or fail to find the journal): fix `journal_sync.rs`
//! before moving the pin. Checked here, through files only:
//!
//! 1. journals are `<id>.jnl` files directly in the database folder, a new
//!    database starts with `0.jnl`, and the active journal has the highest id;
//! 2. a batch committed with `PersistMode::Buffer` (every `write`) is in the
//!    OS when `write` returns: its bytes are readable from the active
//!    journal through another descriptor, before any sync — which is also
//!    why a process crash loses no acknowledged write (see the node's
//!    `actor.rs`);
//! 3. rotation creates the next id, later commits go only to it, and the
//!    older journal is never written again; `sync` follows the rotation.
//!
//! That rotation `fsync`s the old journal before creating the new one, and
//! `fsync`s the new file and its folder before releasing the journal lock,
//! cannot be seen from outside the process; it was read in fjall's
//! `journal/writer.rs` (`Writer::rotate`, `Writer::create_new`) for the
//! pinned version.

use ringkv_storage::{FjallStorage, Keyspace, Storage, WriteBatch};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `(id, path)` of every `<id>.jnl` in `dir`, by id.
fn journals(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| {
            let e = e.expect("dir entry");
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".jnl")?.parse().ok()?;
            Some((id, e.path()))
        })
        .collect();
    out.sort();
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn in_file(path: &Path, needle: &[u8]) -> bool {
    contains(&std::fs::read(path).expect("read journal"), needle)
}

fn put(s: &FjallStorage, key: &[u8], value: &[u8]) {
    let mut b = WriteBatch::new();
    b.put(Keyspace::Data, key, value);
    s.write(b).expect("write");
}

/// Bytes lz4 cannot shrink (xorshift64), so the journal grows by their size.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn journals_are_numbered_files_in_the_database_folder_and_a_buffered_commit_is_in_the_os() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FjallStorage::open(dir.path()).expect("open");
    let found = journals(dir.path());
    assert_eq!(
        found.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [0],
        "a new database has exactly 0.jnl in its folder"
    );
    let marker = b"journal-fact-marker-7f3a9c";
    put(&s, b"k", marker);
    // No sync: the bytes must already be in the OS, visible to another reader.
    assert!(
        in_file(&found[0].1, marker),
        "a Buffer commit left its bytes in fjall's process buffer"
    );
    s.sync().expect("sync finds and syncs the active journal");
}

#[test]
fn rotation_moves_commits_to_the_next_journal_and_sync_follows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FjallStorage::open(dir.path()).expect("open");
    // fjall rotates the journal on a memtable flush once it holds 64 MB;
    // the data memtable flushes at 64 MiB. Write past both.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0u64;
    while journals(dir.path()).last().map(|(id, _)| *id) == Some(0) {
        assert!(
            Instant::now() < deadline,
            "no journal rotation after {i} MiB"
        );
        put(&s, &i.to_be_bytes(), &noise(i, 1024 * 1024));
        i += 1;
        if i > 80 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let found = journals(dir.path());
    let (active_id, active) = found.last().cloned().expect("a journal");
    assert_eq!(active_id, 1, "rotation creates the next id");
    let old = found
        .iter()
        .find(|(id, _)| *id == 0)
        .map(|(_, p)| p.clone());
    let old_before = old.as_ref().map(|p| std::fs::read(p).expect("read old"));
    let marker = b"after-rotation-marker-51c2";
    put(&s, b"after", marker);
    assert!(
        in_file(&active, marker),
        "a commit after rotation lands in the highest journal"
    );
    if let (Some(old), Some(before)) = (old, old_before) {
        if let Ok(after) = std::fs::read(&old) {
            assert_eq!(
                after, before,
                "the older journal is never written after rotation"
            );
        }
    }
    s.sync().expect("sync follows the rotation");
    drop(s);
    let s = FjallStorage::open(dir.path()).expect("reopen");
    assert_eq!(
        s.get(Keyspace::Data, b"after").expect("get").as_deref(),
        Some(&marker[..])
    );
}
