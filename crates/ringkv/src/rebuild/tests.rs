//! Tests of the rebuild module: aside naming, the refusal text, moving a
//! store aside, and `open_store` refusing damage and starting fresh.

use super::*;

#[test]
fn the_aside_path_is_damaged_secs_then_the_first_free_suffix() {
    let dir = Path::new("/data/n1");
    let none_taken = |_: &Path| false;
    assert_eq!(
        aside_path(dir, 1_700_000_000, none_taken),
        Some(PathBuf::from("/data/n1/damaged-1700000000"))
    );
    let taken = |p: &Path| {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        name == "damaged-5" || name == "damaged-5-1"
    };
    assert_eq!(
        aside_path(dir, 5, taken),
        Some(PathBuf::from("/data/n1/damaged-5-2"))
    );
    assert_eq!(aside_path(dir, 5, |_| true), None, "bounded");
    assert!(is_aside(std::ffi::OsStr::new("damaged-5-2")));
    assert!(!is_aside(std::ffi::OsStr::new("keyspaces")));
}

#[test]
fn the_rebuild_command_is_the_same_command_with_rebuild_added_once() {
    let args: Vec<String> = [
        "ringkv",
        "serve",
        "--id",
        "n1",
        "--data-dir",
        "/d/my dir",
        "--rebuild",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        rebuild_command(&args),
        "ringkv serve --id n1 --data-dir '/d/my dir' --rebuild"
    );
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
}

#[test]
fn the_refusal_names_the_directory_what_was_found_and_the_command() {
    let text = refusal(
        Path::new("/d/n3"),
        "checksum mismatch",
        "ringkv serve --rebuild",
    );
    for part in [
        "/d/n3 is damaged",
        "checksum mismatch",
        "/d/n3/damaged-<unix-secs>/",
        "run: ringkv serve --rebuild",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    assert!(loss_warning(None).contains("hints"));
    assert!(loss_warning(Some(Path::new("/d/x"))).contains("/d/x"));
}

#[test]
fn moving_aside_keeps_every_file_and_earlier_asides_and_a_fresh_store_opens_beside_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1");
    assert!(
        move_aside(&dir.path().join("n0"), 1).is_err(),
        "no such directory"
    );
    std::fs::create_dir_all(data.join("damaged-1")).unwrap();
    assert_eq!(
        move_aside(&data, 2).unwrap(),
        None,
        "only earlier asides: nothing to move"
    );
    {
        let old = FjallStorage::open(&data).unwrap();
        let mut batch = ringkv_storage::WriteBatch::new();
        batch.put(ringkv_storage::Keyspace::Data, "k", "v");
        old.write(batch).unwrap();
        old.sync().unwrap();
    }
    let aside = move_aside(&data, 2).unwrap().unwrap();
    assert_eq!(aside, data.join("damaged-2"));
    assert!(aside.join("version").exists() && data.join("damaged-1").exists());
    let fresh = FjallStorage::open(&data).unwrap();
    assert_eq!(
        fresh.get(ringkv_storage::Keyspace::Data, b"k").unwrap(),
        None
    );
    drop(fresh);
    let old = FjallStorage::open(&aside).unwrap();
    assert_eq!(
        old.get(ringkv_storage::Keyspace::Data, b"k")
            .unwrap()
            .as_deref(),
        Some(&b"v"[..]),
        "the set-aside store is whole"
    );
}

#[test]
fn open_store_refuses_damage_and_a_store_that_lost_its_state_and_rebuild_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1");
    std::fs::create_dir_all(&data).unwrap();
    // A store that exists on disk but never recorded an epoch: its own state is gone.
    drop(FjallStorage::open(&data).unwrap());
    let err = open_store(&data, false, "X --rebuild")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("is damaged") && err.contains("journal") && err.contains("run: X --rebuild"),
        "{err}"
    );
    // Damage in the version marker.
    std::fs::write(data.join("version"), b"\xff\xff\xff\xff").unwrap();
    let err = open_store(&data, false, "X --rebuild")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("is damaged") && err.contains("version marker"),
        "{err}"
    );
    // Rebuild: moved aside, a fresh store marked refilling.
    let fresh = open_store(&data, true, "unused").unwrap();
    assert!(ringkv_node::refill::is_pending(&*fresh).unwrap());
    let asides: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| is_aside(&e.file_name()))
        .collect();
    assert_eq!(asides.len(), 1);
    assert_eq!(
        std::fs::read(asides[0].path().join("version")).unwrap(),
        b"\xff\xff\xff\xff"
    );
}
