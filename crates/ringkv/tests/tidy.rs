//! Architecture rules, checked like any other test (rust-analyzer's `tidy`).
//!
//! - The core stays pure: nothing in its dependency closure does async IO
//!   (no tokio, mio or socket2), and its sources never touch the clock,
//!   files, sockets, threads or ambient randomness.
//! - Every Rust source file opens with a `//!` module doc.
//! - No source file grows past 600 lines (one concept per file).
//! - The node replays exactly in the simulation: every `tokio::select!` is
//!   `biased` (the default picks a branch at random, seeded from the OS),
//!   and a `HashMap` is used only where its (per-run random) order cannot
//!   matter, said with an `order-free` comment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Package name -> dependency names, from Cargo.lock.
fn lock_graph() -> BTreeMap<String, Vec<String>> {
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap();
    let mut graph = BTreeMap::new();
    for block in lock.split("[[package]]").skip(1) {
        let name = block
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_string();
        let deps = match block.split_once("dependencies = [") {
            Some((_, rest)) => rest
                .split(']')
                .next()
                .unwrap()
                .lines()
                .filter_map(|l| l.trim().strip_prefix('"'))
                .map(|d| d.split([' ', '"']).next().unwrap().to_string())
                .collect(),
            None => Vec::new(),
        };
        graph.insert(name, deps);
    }
    graph
}

#[test]
fn the_core_depends_on_nothing_that_does_io() {
    let graph = lock_graph();
    let mut seen = BTreeSet::new();
    let mut todo = vec!["ringkv-core".to_string()];
    while let Some(p) = todo.pop() {
        if seen.insert(p.clone()) {
            todo.extend(graph.get(&p).cloned().unwrap_or_default());
        }
    }
    assert!(
        seen.len() > 3,
        "the walk found the core's dependencies: {seen:?}"
    );
    for banned in [
        "tokio",
        "mio",
        "socket2",
        "ringkv-storage",
        "ringkv-node",
        "fjall",
    ] {
        assert!(
            !seen.contains(banned),
            "ringkv-core (with dev-deps) pulls in {banned}"
        );
    }
}

#[test]
fn the_core_sources_never_read_the_clock_or_touch_the_outside_world() {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/core/src"), &mut files);
    assert!(files.len() > 5);
    let banned = [
        "SystemTime",
        "Instant::now",
        "std::fs",
        "std::net",
        "std::thread",
        "std::env",
        "std::process",
        "rand::",
        "tokio::",
    ];
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for b in banned {
            assert!(
                !text.contains(b),
                "{} uses {b}: the core must stay pure",
                file.display()
            );
        }
    }
}

#[test]
fn every_source_file_has_a_module_doc_and_stays_small() {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        assert!(
            first.starts_with("//!"),
            "{} does not open with a //! module doc",
            file.display()
        );
        let lines = text.lines().count();
        assert!(
            lines <= 600,
            "{} has {lines} lines; split it by concept",
            file.display()
        );
    }
}

#[test]
fn the_node_makes_no_choice_at_random() {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/node/src"), &mut files);
    rust_files(&workspace().join("crates/core/src"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_end().ends_with("select! {") && !line.trim_start().starts_with("//") {
                assert!(
                    lines.get(i + 1).is_some_and(|l| l.trim() == "biased;"),
                    "{}:{}: a select! that is not `biased;` picks a branch at random, so a simulation seed would not replay",
                    file.display(),
                    i + 1
                );
            }
        }
        for kind in ["HashMap<", "HashSet<"] {
            for (i, line) in lines.iter().enumerate() {
                let allowed = line.contains("order-free") || line.contains("BuildHasherDefault");
                assert!(
                    !line.contains(kind) || allowed || line.trim_start().starts_with("//"),
                    "{}:{}: a {kind}...> iterates in a random order; use a BTree collection, or mark a map whose order never matters with `// order-free: why`",
                    file.display(),
                    i + 1
                );
            }
        }
    }
}
