//! End-to-end fault tests on real processes: quorum loss, W = 1 availability,
//! graceful shutdown and restart, and SIGKILL in the middle of acknowledged
//! writes.

mod common;

use common::{actor_of, http, wait_healthy, Cluster};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn losing_two_of_three_nodes_fails_w2_fast_but_w1_and_r1_still_work() {
    let mut c = Cluster::start(3, &[]);
    let p1 = c.nodes[0].http;
    assert_eq!(
        http(p1, "PUT", "/v1/kv/b/k", &[], b"v1").unwrap().status,
        204
    );
    c.nodes[1].kill();
    c.nodes[2].kill();
    let started = Instant::now();
    let r = http(p1, "PUT", "/v1/kv/b/k", &[], b"v2").unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "quorum_not_met");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("needed 2 of 3 replicas"), // the local fsync runs in parallel: 0 or 1 acked
        "{msg}"
    );
    assert!(msg.contains("n2") && msg.contains("n3"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused connections fail at once, took {:?}",
        started.elapsed()
    );
    // Always writeable: W = 1 succeeds while any replica is reachable.
    assert_eq!(
        http(p1, "PUT", "/v1/kv/b/k?w=1", &[], b"v3")
            .unwrap()
            .status,
        204
    );
    let read = http(p1, "GET", "/v1/kv/b/k?r=1", &[], b"").unwrap();
    assert_eq!(
        read.status, 300,
        "v2 was written locally before the quorum failed, so it is a sibling of v3"
    );
    assert!(read.text().contains("v3"));
    assert_eq!(http(p1, "GET", "/v1/kv/b/k", &[], b"").unwrap().status, 503);
}

#[test]
fn sigterm_exits_cleanly_and_a_restart_resumes_on_the_same_data() {
    let mut c = Cluster::start(1, &["--n=1", "--r=1", "--w=1", "--fsync=periodic:1000"]);
    let p = c.nodes[0].http;
    for i in 0..50 {
        assert_eq!(
            http(
                p,
                "PUT",
                &format!("/v1/kv/b/k{i}"),
                &[],
                format!("v{i}").as_bytes()
            )
            .unwrap()
            .status,
            204
        );
    }
    let actor_before = actor_of(p, "before");
    let status = c.nodes[0].terminate();
    assert!(status.success(), "exit status {status}");
    c.nodes[0].start();
    wait_healthy(p);
    for i in 0..50 {
        let r = http(p, "GET", &format!("/v1/kv/b/k{i}"), &[], b"").unwrap();
        assert_eq!(
            (r.status, r.text()),
            (200, format!("v{i}")),
            "shutdown synced even the periodic-fsync writes"
        );
    }
    assert_eq!(
        actor_of(p, "after"),
        actor_before,
        "a clean shutdown keeps the actor"
    );
}

#[test]
fn every_write_acknowledged_under_fsync_always_survives_sigkill() {
    let mut c = Cluster::start(1, &["--n=1", "--r=1", "--w=1", "--fsync=always"]);
    let p = c.nodes[0].http;
    let actor_before = actor_of(p, "before");
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let key = format!("w{w}-{i}");
                    match http(
                        p,
                        "PUT",
                        &format!("/v1/kv/crash/{key}"),
                        &[],
                        key.as_bytes(),
                    ) {
                        Ok(r) if r.status == 204 => acked.lock().unwrap().push(key),
                        _ => return, // the node is gone: this write is unknown, not acknowledged
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 400 {
        assert!(
            Instant::now() < deadline,
            "writes too slow to reach 400 acks in 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    c.nodes[0].kill(); // SIGKILL while the writers are still going
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    c.nodes[0].start();
    wait_healthy(p);
    for key in &acked {
        let r = http(p, "GET", &format!("/v1/kv/crash/{key}"), &[], b"").unwrap();
        assert_eq!(
            (r.status, r.text()),
            (200, key.clone()),
            "acknowledged write {key} lost"
        );
    }
    // SIGKILL is a process crash: every acknowledged write was in the OS
    // (fjall commits with PersistMode::Buffer) and the machine did not
    // reboot, so no dot can be minted twice and the node keeps its actor
    // (a power loss, a new boot id, would move it to a new epoch; see
    // `actor.rs` and `sim_restarts.rs`).
    let actor_after = actor_of(p, "after");
    assert_eq!(
        actor_after, actor_before,
        "a process crash on the same boot keeps the actor epoch"
    );
    assert!(actor_after.starts_with("n1~"), "{actor_after}");
}
