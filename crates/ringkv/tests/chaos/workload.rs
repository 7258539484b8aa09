//! The set workload: concurrent clients that each read a key, union its
//! siblings, add one unique element and write the set back with the
//! context they read; and the history of what they wrote.
//!
//! A set is stored as its elements joined by `,`; an element names its
//! client and operation (`c2-17`), so no two writes add the same one.
//!
//! Outcomes, as in Jepsen and openraft's turmoil tests:
//! - `Acked`: the put answered 204. The element must survive.
//! - `Unknown`: the put failed (any other status) or the connection failed
//!   or timed out. It may or may not have landed; nothing treats it as
//!   absent, and it may show up later.
//!
//! A read that fails writes nothing (the client moves on). Each client
//! draws its keys and nodes from its own seeded generator.
//!
//! *Boundary:* clients talk HTTP only, from threads in the hub namespace
//! (they can reach every node at every moment: faults cut nodes from nodes,
//! not from clients).

use crate::common::{http_at, Reply};
use base64::Engine;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a client waits for a node before it counts the request failed.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The bucket every set key lives in.
pub const BUCKET: &str = "chaos";

/// Every element written to a key, by outcome.
#[derive(Clone, Debug, Default)]
pub struct KeyHistory {
    pub acked: BTreeSet<String>,
    pub unknown: BTreeSet<String>,
}

/// What all clients did, per key, and how often.
#[derive(Debug, Default)]
pub struct History {
    pub keys: BTreeMap<String, KeyHistory>,
    pub failed_reads: u64,
}

impl History {
    pub fn acked(&self) -> usize {
        self.keys.values().map(|k| k.acked.len()).sum()
    }

    pub fn unknown(&self) -> usize {
        self.keys.values().map(|k| k.unknown.len()).sum()
    }
}

/// A read: the union of the siblings' elements and the context, if any.
pub struct SetRead {
    pub elements: BTreeSet<String>,
    pub context: Option<String>,
}

/// `GET` a set key through `node` (`query`: e.g. `?r=3`, or empty); `None`
/// if the read failed.
pub fn read_set(node: SocketAddr, key: &str, query: &str) -> Option<SetRead> {
    let target = format!("/v1/kv/{BUCKET}/{key}{query}");
    let accept = [("Accept", "application/json")];
    let reply = http_at(node, CLIENT_TIMEOUT, "GET", &target, &accept, b"").ok()?;
    let context = reply.header("x-ringkv-context").map(str::to_string);
    match reply.status {
        404 => Some(SetRead {
            elements: BTreeSet::new(),
            context,
        }),
        200 => Some(SetRead {
            elements: elements_of(&reply),
            context,
        }),
        _ => None,
    }
}

/// The union of the elements of every value in a JSON read.
fn elements_of(reply: &Reply) -> BTreeSet<String> {
    let json = reply.json();
    let values = json["values"].as_array().cloned().unwrap_or_default();
    let decode = |v: &serde_json::Value| {
        let text = v.as_str().unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    };
    values
        .iter()
        .map(decode)
        .flat_map(|bytes| {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            text.split(',')
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One client's loop: runs until `stop`, recording into `history`.
pub struct Client {
    pub id: usize,
    pub seed: u64,
    /// The hub namespace the client's thread enters first.
    pub hub: PathBuf,
    pub nodes: Vec<SocketAddr>,
    pub keys: usize,
    pub stop: Arc<AtomicBool>,
    pub history: Arc<Mutex<History>>,
}

impl Client {
    pub fn run(self) {
        super::netns::enter(&self.hub);
        let mut rng = fastrand::Rng::with_seed(self.seed);
        for op in 0.. {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let key = format!("set{}", rng.usize(..self.keys));
            let node = self.nodes[rng.usize(..self.nodes.len())];
            let Some(read) = read_set(node, &key, "") else {
                self.history.lock().unwrap().failed_reads += 1;
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let element = format!("c{}-{op}", self.id);
            let mut elements = read.elements;
            elements.insert(element.clone());
            let body = elements.into_iter().collect::<Vec<_>>().join(",");
            let acked = put(node, &key, read.context.as_deref(), body.as_bytes());
            let mut history = self.history.lock().unwrap();
            let entry = history.keys.entry(key).or_default();
            if acked {
                entry.acked.insert(element);
            } else {
                entry.unknown.insert(element);
            }
        }
    }
}

/// `PUT` with the context read; true only on 204.
fn put(node: SocketAddr, key: &str, context: Option<&str>, body: &[u8]) -> bool {
    let target = format!("/v1/kv/{BUCKET}/{key}");
    let headers: Vec<(&str, &str)> = context
        .map(|c| ("X-Ringkv-Context", c))
        .into_iter()
        .collect();
    http_at(node, CLIENT_TIMEOUT, "PUT", &target, &headers, body).is_ok_and(|r| r.status == 204)
}
