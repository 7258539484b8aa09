//! The simulated world: each node's store (data and hints), and a network
//! that delivers, loses, delays (so reorders) and duplicates messages, and
//! drops everything across a cut.
//!
//! A replica answers the way the node's replica does: a read returns its
//! copy (a stand-in read merges the hint it holds for the home), a write
//! merges the object into its copy (or into the hint for the home it
//! stands in for) and acknowledges. Merging is the core's
//! [`Siblings::merge`], so a duplicated write changes nothing.

use super::draw::Draw;
use super::scenario::Scenario;
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::siblings::Siblings;
use ringkv_core::NodeId;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// One node's storage.
#[derive(Debug, Default)]
pub struct Store {
    pub data: BTreeMap<String, Siblings>,
    /// `(home, key)` -> what this node holds for a home it stood in for.
    pub hints: BTreeMap<(usize, String), Siblings>,
}

impl Store {
    /// The copy a read of `key` sees here (merged with the hint for
    /// `hint_for`).
    pub fn read(&self, key: &str, hint_for: Option<usize>) -> Option<Siblings> {
        let own = self.data.get(key).cloned();
        let hint = hint_for.and_then(|h| self.hints.get(&(h, key.to_string())));
        match (own, hint) {
            (Some(mut o), Some(h)) => {
                o.merge(h);
                Some(o)
            }
            (o, h) => o.or_else(|| h.cloned()),
        }
    }

    /// Merges `object` into the copy of `key` (or the hint for `hint_for`).
    pub fn write(&mut self, key: &str, hint_for: Option<usize>, object: &Siblings) {
        let slot = match hint_for {
            Some(h) => self.hints.entry((h, key.to_string())).or_default(),
            None => self.data.entry(key.to_string()).or_default(),
        };
        slot.merge(object);
    }
}

/// Why a write is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Write,
    Repair,
}

#[derive(Debug, Clone)]
pub enum Body {
    ReadReq {
        key: String,
        hint_for: Option<usize>,
    },
    ReadResp(Result<Option<Siblings>, ReplicaFailure>),
    WriteReq {
        key: String,
        hint_for: Option<usize>,
        object: Siblings,
        kind: WriteKind,
    },
    WriteResp {
        kind: WriteKind,
        result: Result<(), ReplicaFailure>,
    },
    /// A stand-in hands a hint back to its home.
    Handoff {
        key: String,
        object: Siblings,
    },
    /// The home took it: the stand-in may delete the hint if unchanged.
    HandoffAck {
        key: String,
        object: Siblings,
    },
}

impl Body {
    /// The answer the sender sees when the request never arrives.
    fn failed(&self, why: ReplicaFailure) -> Option<Body> {
        match self {
            Body::ReadReq { .. } => Some(Body::ReadResp(Err(why))),
            Body::WriteReq { kind, .. } => Some(Body::WriteResp {
                kind: *kind,
                result: Err(why),
            }),
            _ => None,
        }
    }
}

/// A message in flight; `op` is the operation it belongs to.
#[derive(Debug, Clone)]
pub struct Msg {
    pub from: usize,
    pub to: usize,
    pub op: usize,
    pub body: Body,
}

#[derive(Debug, Clone)]
pub enum Event {
    Deliver(Msg),
    /// An operation's machine asked to be woken.
    Timer(usize),
    /// A client starts its next operation.
    Client(usize),
    /// Every node offers its hints to their homes.
    Handoff,
}

/// Everything that happens, in time order (ties in scheduling order).
#[derive(Default)]
pub struct Queue {
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: BTreeMap<usize, Event>,
    seq: u64,
}

impl Queue {
    pub fn at(&mut self, at_ms: u64, event: Event) {
        self.seq += 1;
        let id = self.seq as usize;
        self.events.insert(id, event);
        self.heap.push(Reverse((at_ms, self.seq, id)));
    }

    pub fn pop(&mut self) -> Option<(u64, Event)> {
        let Reverse((at, _, id)) = self.heap.pop()?;
        Some((at, self.events.remove(&id).expect("scheduled")))
    }
}

/// The network: sends through the scenario's faults.
pub struct Network {
    pub healed: bool,
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

impl Network {
    pub fn new() -> Network {
        Network {
            healed: false,
            sent: 0,
            dropped: 0,
            duplicated: 0,
        }
    }

    /// Sends `msg` at `now_ms`.
    pub fn send(&mut self, s: &Scenario, d: &mut Draw, q: &mut Queue, now_ms: u64, msg: Msg) {
        self.sent += 1;
        let cut = !self.healed && s.cut(msg.from, msg.to, now_ms);
        let lost = cut || (!self.healed && d.chance(s.drop_percent));
        if lost {
            self.dropped += 1;
            // Half the time the sender learns it (a refused or broken
            // connection); otherwise it is silence.
            if d.chance(50) {
                let why = if cut {
                    ReplicaFailure::ConnectRefused
                } else {
                    ReplicaFailure::ConnectionLost
                };
                if let Some(body) = msg.body.failed(why) {
                    let back = Msg {
                        from: msg.to,
                        to: msg.from,
                        op: msg.op,
                        body,
                    };
                    q.at(now_ms + d.range(1, s.max_delay_ms), Event::Deliver(back));
                }
            }
            return;
        }
        if !self.healed && d.chance(s.dup_percent) {
            self.duplicated += 1;
            q.at(
                now_ms + d.range(1, s.max_delay_ms),
                Event::Deliver(msg.clone()),
            );
        }
        q.at(now_ms + d.range(1, s.max_delay_ms), Event::Deliver(msg));
    }
}

/// What node `to` answers to a request, changing its store; `None` for a
/// message that is not a request.
pub fn answer(store: &mut Store, body: &Body) -> Option<Body> {
    match body {
        Body::ReadReq { key, hint_for } => Some(Body::ReadResp(Ok(store.read(key, *hint_for)))),
        Body::WriteReq {
            key,
            hint_for,
            object,
            kind,
        } => {
            store.write(key, *hint_for, object);
            Some(Body::WriteResp {
                kind: *kind,
                result: Ok(()),
            })
        }
        Body::Handoff { key, object } => {
            store.write(key, None, object);
            Some(Body::HandoffAck {
                key: key.clone(),
                object: object.clone(),
            })
        }
        _ => None,
    }
}

/// Node names n1, n2, ...
pub fn names(count: usize) -> Vec<NodeId> {
    (1..=count)
        .map(|i| NodeId::new(&format!("n{i}")).expect("a valid id"))
        .collect()
}
