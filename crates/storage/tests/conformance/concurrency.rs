//! Concurrent conformance cases: several threads sharing one engine.

use crate::common::{put, scan_all, Engine};
use ringkv_storage::{Keyspace, Storage, WriteBatch};

const D: Keyspace = Keyspace::Data;

pub fn batches_are_visible_atomically_to_concurrent_scans<E: Engine>() {
    const ROUNDS: u32 = 300;
    let e = E::fresh();
    let s = e.storage();
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            for i in 1..=ROUNDS {
                let mut b = WriteBatch::new();
                for key in ["x", "y", "z"] {
                    b.put(D, key, i.to_be_bytes());
                }
                s.write(b).expect("write");
            }
        });
        let mut seen = 0;
        while seen < ROUNDS {
            let pairs = s.scan(D, b"x", None, 10).expect("scan");
            let values: Vec<_> = pairs.iter().map(|(_, v)| v.clone()).collect();
            assert!(
                values.is_empty() || (values.len() == 3 && values.iter().all(|v| *v == values[0])),
                "saw a partial batch: {pairs:?}"
            );
            if let Some(v) = values.first() {
                seen = u32::from_be_bytes(v.as_slice().try_into().expect("4 bytes"));
            }
        }
        writer.join().expect("writer thread");
    });
}

pub fn concurrent_writers_all_land<E: Engine>() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 50;
    let e = E::fresh();
    let s = e.storage();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    put(s, D, format!("t{t}-{i:03}").as_bytes(), &[t as u8; 8]);
                    if i % 10 == 0 {
                        s.sync().expect("sync");
                    }
                }
            });
        }
    });
    let all = scan_all(s, D);
    assert_eq!(all.len(), THREADS * PER_THREAD);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "scan is sorted");
    for (k, v) in &all {
        let t = k[1] - b'0';
        assert_eq!(*v, vec![t; 8], "{}", String::from_utf8_lossy(k));
    }
}
