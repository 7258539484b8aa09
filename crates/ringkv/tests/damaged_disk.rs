//! End-to-end: a stopped node whose data directory has a flipped byte in
//! each kind of file fjall writes (journal, table, manifest) refuses to
//! start with a message naming the damage and the rebuild command; started
//! with `--rebuild` it sets the store aside, refills from its peers, never
//! answers an acknowledged key as missing (quorum reads through it work
//! throughout; its local reads say `refilling` until they have the value),
//! and converges to every acknowledged key in its local store.

mod common;

use common::{http, Cluster, Node, BIN};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEYS: usize = 40;

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let aside = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("damaged-"));
        if path.is_dir() && !aside {
            files_under(&path, out);
        } else if !aside {
            out.push(path);
        }
    }
}

fn flip(file: &Path, at: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0xff;
    std::fs::write(file, bytes).unwrap();
}

/// Flips bytes in every file of `kind` in the node's store; how many files.
fn damage(data_dir: &Path, kind: &str) -> usize {
    let mut all = Vec::new();
    files_under(data_dir, &mut all);
    let rel = |p: &Path| {
        p.strip_prefix(data_dir)
            .unwrap()
            .to_string_lossy()
            .to_string()
    };
    let mut hit = 0;
    match kind {
        // Early in the first batch: fjall drops it and everything after.
        "journal" => {
            for f in all.iter().filter(|f| rel(f).ends_with(".jnl")) {
                flip(f, 20);
                hit += 1;
            }
        }
        // In the last batch (the clean-shutdown seal): fjall drops only
        // that one, silently; the missing seal gives it away.
        "journal-tail" => {
            for f in all.iter().filter(|f| rel(f).ends_with(".jnl")) {
                // fjall preallocates its journal: the last batch ends at
                // the last byte that is not zero.
                let bytes = std::fs::read(f).unwrap();
                if let Some(end) = bytes.iter().rposition(|b| *b != 0) {
                    flip(f, end.saturating_sub(12));
                    hit += 1;
                }
            }
        }
        "table" => {
            for f in all.iter().filter(|f| rel(f).contains("/tables/")) {
                let len = std::fs::metadata(f).unwrap().len() as usize;
                flip(f, len / 2);
                hit += 1;
            }
        }
        // The newest manifest (`v<k>`) of every keyspace.
        "manifest" => {
            let mut newest = std::collections::BTreeMap::<PathBuf, (u64, PathBuf)>::new();
            for f in &all {
                let name = f.file_name().unwrap().to_string_lossy().to_string();
                let Some(k) = name.strip_prefix('v').and_then(|k| k.parse::<u64>().ok()) else {
                    continue;
                };
                let parent = f.parent().unwrap().to_path_buf();
                if newest.get(&parent).is_none_or(|(old, _)| k > *old) {
                    newest.insert(parent, (k, f.clone()));
                }
            }
            for (_, (_, f)) in newest {
                let len = std::fs::metadata(&f).unwrap().len() as usize;
                flip(&f, len / 2);
                hit += 1;
            }
        }
        other => panic!("unknown kind {other}"),
    }
    hit
}

/// Runs the node's start command to its end (it must refuse): exit status
/// and stderr.
fn refused_start(node: &Node) -> (bool, String) {
    let mut child = Command::new(BIN)
        .args(&node.args)
        .env("RINGKV_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} started on a damaged store", node.id);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn value(i: usize) -> String {
    format!("value-{i}")
}

/// Every key reads back through a quorum coordinated by `port`.
fn quorum_reads_all(port: u16, who: &str) {
    for i in 0..KEYS {
        let r = http(port, "GET", &format!("/v1/kv/b/k{i}"), &[], b"").unwrap();
        assert_eq!(
            (r.status, r.text()),
            (200, value(i)),
            "{who}: quorum read of k{i}"
        );
    }
}

/// How many keys the node's own store holds; a local read never says an
/// acknowledged key is missing: it holds the value or says `refilling`.
fn local_count(port: u16) -> usize {
    let mut held = 0;
    for i in 0..KEYS {
        let r = http(port, "GET", &format!("/v1/kv/b/k{i}?local=true"), &[], b"").unwrap();
        match r.status {
            200 => {
                assert_eq!(r.text(), value(i));
                held += 1;
            }
            503 => assert_eq!(r.json()["error"]["code"], "refilling", "{}", r.text()),
            other => panic!("local read of k{i}: {other} {}", r.text()),
        }
    }
    held
}

#[test]
fn a_damaged_node_refuses_to_start_and_rebuild_refills_it_from_its_peers() {
    let mut c = Cluster::start(3, &["--gossip-interval-ms=200"]);
    let (p1, p3) = (c.nodes[0].http, c.nodes[2].http);
    for i in 0..KEYS {
        let port = if i % 2 == 0 { p1 } else { p3 };
        let r = http(
            port,
            "PUT",
            &format!("/v1/kv/b/k{i}"),
            &[],
            value(i).as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 204, "{}", r.text());
    }
    for (round, kind) in ["journal", "journal-tail", "table", "manifest"]
        .into_iter()
        .enumerate()
    {
        let status = c.nodes[2].terminate();
        assert!(status.success(), "{kind}: clean stop");
        let data_dir = c.nodes[2].data_dir.clone();
        assert!(
            damage(&data_dir, kind) > 0,
            "{kind}: no such file in the store"
        );

        let (ok, stderr) = refused_start(&c.nodes[2]);
        assert!(!ok, "{kind}: exit status must be non-zero");
        assert!(
            stderr.contains("is damaged")
                && stderr.contains("--rebuild")
                && stderr.contains(&data_dir.display().to_string()),
            "{kind}: {stderr}"
        );
        quorum_reads_all(p1, "n1 while n3 is down");

        c.nodes[2].args.push("--rebuild".into());
        c.nodes[2].start();
        assert!(
            c.nodes[2].wait_started(),
            "{kind}: rebuilt node did not start"
        );
        c.nodes[2].args.pop();
        let asides = std::fs::read_dir(&data_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("damaged-")
            })
            .count();
        assert_eq!(asides, round + 1, "{kind}: the damaged store is kept");
        // Throughout the refill: quorum reads through the rebuilt node
        // see every key, and its local reads never say "missing".
        quorum_reads_all(p3, "n3 while refilling");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // `/v1/cluster` says refilling until a complete pass: once it
            // says done, every key is local (read in this order, no race).
            let refilling = http(p3, "GET", "/v1/cluster", &[], b"").unwrap().json()["refilling"]
                .as_bool()
                .expect("/v1/cluster says whether the node is refilling");
            let local = local_count(p3);
            assert!(
                refilling || local == KEYS,
                "{kind}: done refilling with {local} of {KEYS} keys"
            );
            if local == KEYS && !refilling {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{kind}: n3 did not refill within 60 s"
            );
            quorum_reads_all(p3, "n3 while refilling");
            std::thread::sleep(Duration::from_millis(200));
        }
        quorum_reads_all(p3, "n3 after the refill");
    }
}
