//! Facts about fjall 3 and damaged files, kept checked: a byte flipped in
//! each kind of file fjall writes either fails `FjallStorage::open` with
//! `StorageError::Damaged` (never a panic, never an `Engine` error), or, in
//! the journal, loses the batches from the damaged one on (fjall keeps the
//! prefix before it). What opens never serves a record that fails its check.

use ringkv_storage::{FjallStorage, Keyspace, Storage, StorageError, WriteBatch};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out)
        } else {
            out.push(path)
        }
    }
}

/// A stopped store with three batches of data and a `Meta` key.
fn filled(dir: &Path) {
    let s = FjallStorage::open(dir).expect("open");
    let mut b = WriteBatch::new();
    b.put(Keyspace::Meta, "epoch", "1");
    s.write(b).expect("write");
    for round in 0..3u32 {
        let mut b = WriteBatch::new();
        for i in 0u32..2000 {
            b.put(
                Keyspace::Data,
                (round * 10_000 + i).to_be_bytes(),
                [7u8; 200],
            );
        }
        s.write(b).expect("write");
    }
    s.sync().expect("sync");
}

/// A copy of `src` with the byte at `at` in `file` flipped.
fn flipped(src: &Path, dst: &Path, file: &Path, at: usize) {
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(src)
        .arg(dst)
        .status()
        .expect("cp");
    assert!(status.success());
    let target = dst.join(file);
    let mut bytes = std::fs::read(&target).expect("read");
    bytes[at] ^= 0xff;
    std::fs::write(&target, bytes).expect("write");
}

fn kind_of(file: &Path) -> &'static str {
    let name = file.to_string_lossy();
    if name.ends_with(".jnl") {
        "journal"
    } else if name.contains("/tables/") {
        "table"
    } else if name == "version" || name.ends_with("/current") || name.contains("/v") {
        "manifest"
    } else {
        "other"
    }
}

#[test]
fn a_flipped_byte_in_each_kind_of_file_is_refused_as_damage_or_loses_only_a_journal_suffix() {
    let base = tempfile::tempdir().expect("tempdir");
    let src = base.path().join("store");
    filled(&src);
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut refused = std::collections::BTreeMap::<&str, usize>::new();
    for (n, file) in all.iter().enumerate() {
        let rel = file.strip_prefix(&src).expect("prefix").to_path_buf();
        let len = std::fs::metadata(file).expect("meta").len() as usize;
        let kind = kind_of(&rel);
        // The journal is preallocated: flip inside its first batches.
        let spots = if kind == "journal" {
            vec![0, 40, 5_000]
        } else if len == 0 {
            vec![]
        } else {
            vec![0, len / 2, len - 1]
        };
        for (m, at) in spots.into_iter().enumerate() {
            let copy = base.path().join(format!("c{n}-{m}"));
            flipped(&src, &copy, &rel, at);
            match FjallStorage::open(&copy) {
                Err(StorageError::Damaged { .. }) => *refused.entry(kind).or_default() += 1,
                Err(other) => panic!("{}@{at}: not classified as damage: {other}", rel.display()),
                Ok(s) => {
                    // Opened: whatever it serves checks out.
                    let scan = s
                        .scan_skipping_corrupt(Keyspace::Data, b"", None, 100_000)
                        .expect("scan");
                    assert!(scan.corrupt.is_empty(), "{}@{at}", rel.display());
                    if kind == "journal" && at < 5_000 {
                        assert_eq!(
                            s.get(Keyspace::Meta, b"epoch").expect("get"),
                            None,
                            "a flip in the first batch loses everything after it"
                        );
                    }
                }
            }
        }
    }
    for kind in ["table", "manifest"] {
        assert!(
            refused.get(kind).copied().unwrap_or(0) > 0,
            "{kind}: {refused:?}"
        );
    }
}

#[test]
fn a_locked_directory_is_not_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = FjallStorage::open(dir.path()).expect("open");
    match FjallStorage::open(dir.path()) {
        Err(StorageError::Engine(_)) => {}
        Err(other) => panic!("a lock is not damage: {other}"),
        Ok(_) => panic!("a second open must fail"),
    }
}
