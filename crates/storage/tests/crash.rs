//! Crash test with a real process: every acknowledged write survives SIGKILL.
//!
//! The test binary re-executes itself as a writer (selected by the
//! `RINGKV_CRASH_CHILD` environment variable, which names the data
//! directory; `RINGKV_CRASH_ROUND` prefixes its keys). The writer runs [`WRITER_THREADS`] threads; each writes a
//! batch (one key in `Data`, the same key in `Hints`), calls `sync`, and
//! only then prints `ACK <key>`. Syncs are shared: one thread's fsync also
//! covers the other threads' earlier writes. The parent collects acks, kills
//! the writer with SIGKILL (`Child::kill`) after [`ACKS_BEFORE_KILL`] of
//! them, reopens the directory and checks that every acknowledged key is
//! present, in both keyspaces, with the right value, and that nothing in the
//! recovered database is corrupt. It does this for [`ROUNDS`] rounds on the
//! same directory, so a database recovered from one crash is crashed again.

use ringkv_storage::{FjallStorage, Keyspace, Storage, WriteBatch};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "RINGKV_CRASH_CHILD";
const ROUND_ENV: &str = "RINGKV_CRASH_ROUND";
const ROUNDS: usize = 3;
const TEST_NAME: &str = "acknowledged_writes_survive_sigkill";
const ACKS_BEFORE_KILL: usize = 300;
const WRITER_THREADS: usize = 4;
/// Time budget for the whole test, all rounds included.
const DEADLINE: Duration = Duration::from_secs(60);
/// Safety net: a writer nobody kills stops on its own after this many writes
/// per thread.
const MAX_WRITES_PER_THREAD: usize = 100_000;

fn value_for(key: &str) -> Vec<u8> {
    format!("value-of-{key}-").repeat(8).into_bytes()
}

/// Kills the writer if the parent bails out early, so no process outlives the test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let round = std::env::var(ROUND_ENV).expect("writer: round");
        run_writer(Path::new(&dir), &round);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let mut acked = Vec::new();
    for round in 0..ROUNDS {
        acked.extend(crash_one_writer(dir.path(), round, started));
        verify(dir.path(), &acked);
    }
    eprintln!(
        "crash test: {} acknowledged writes survived {ROUNDS} SIGKILLs",
        acked.len()
    );
}

/// Runs one writer until it has acknowledged [`ACKS_BEFORE_KILL`] writes,
/// SIGKILLs it and returns every key it acknowledged.
fn crash_one_writer(dir: &Path, round: usize, started: Instant) -> Vec<String> {
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn writer");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("piped stdout");

    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(key) = line.strip_prefix("ACK ") {
                if tx.send(key.to_string()).is_err() {
                    break;
                }
            }
        }
    });

    let mut acked = Vec::new();
    while acked.len() < ACKS_BEFORE_KILL {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(key) => acked.push(key),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "round {round}: writer acknowledged only {} of {ACKS_BEFORE_KILL} writes \
                 within the {DEADLINE:?} budget",
                acked.len()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                "round {round}: writer exited after {} of {ACKS_BEFORE_KILL} acks \
                 (see its stderr above)",
                acked.len()
            ),
        }
    }
    child.0.kill().expect("SIGKILL the writer");
    let status = child.0.wait().expect("reap the writer");
    assert!(
        !status.success(),
        "writer should die by signal, got {status:?}"
    );
    // Acks already in the pipe were synced before they were printed: keep them too.
    reader.join().expect("reader thread");
    acked.extend(rx.try_iter());
    acked
}

/// Reopens `dir` and checks every acknowledged key, then that nothing is corrupt.
fn verify(dir: &Path, acked: &[String]) {
    let s = FjallStorage::open(dir).expect("reopen after SIGKILL");
    for key in acked {
        let want = value_for(key);
        for ks in [Keyspace::Data, Keyspace::Hints] {
            let got = s.get(ks, key.as_bytes()).expect("read acknowledged key");
            assert_eq!(
                got.as_ref(),
                Some(&want),
                "acknowledged {key} lost from {ks:?}"
            );
        }
    }
    // Unacknowledged writes may or may not be there, but nothing may be corrupt.
    for ks in [Keyspace::Data, Keyspace::Hints] {
        let all = s.scan(ks, b"", None, usize::MAX).expect("scan after crash");
        assert!(
            all.len() >= acked.len(),
            "{ks:?}: {} < {}",
            all.len(),
            acked.len()
        );
        for (k, v) in all {
            assert_eq!(v, value_for(&String::from_utf8_lossy(&k)), "value of {k:?}");
        }
    }
}

/// The child side: write, sync, acknowledge, forever (until SIGKILL).
fn run_writer(dir: &Path, round: &str) {
    let storage = FjallStorage::open(dir).expect("writer: open");
    std::thread::scope(|scope| {
        for t in 0..WRITER_THREADS {
            let storage = &storage;
            scope.spawn(move || {
                for i in 0..MAX_WRITES_PER_THREAD {
                    let key = format!("r{round}-w{t}-{i:06}");
                    let mut batch = WriteBatch::new();
                    batch.put(Keyspace::Data, key.as_str(), value_for(&key));
                    batch.put(Keyspace::Hints, key.as_str(), value_for(&key));
                    storage.write(batch).expect("writer: write");
                    storage.sync().expect("writer: sync");
                    let mut out = std::io::stdout().lock();
                    // A closed pipe means the parent is gone: stop writing.
                    if writeln!(out, "ACK {key}")
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
}
