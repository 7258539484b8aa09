//! Coordination as pure state machines: every decision a coordinator makes
//! about a client request, with time and replies as inputs (A4, F1).
//!
//! [`plan`] decides what this node does with a request: coordinate a read
//! ([`ReadMachine`]), coordinate a write ([`WriteMachine`]), forward it to a
//! node that holds a replica ([`ForwardMachine`]), or refuse it (a forwarded
//! request for a key this node holds no replica of). Each machine is shaped
//! like quinn-proto's `Connection`: events in, commands out, and the next
//! instant it needs to be woken at.
//!
//! The driver (the node's async coordinator) runs every machine the same way:
//!
//! ```text
//! let mut m = Machine::new(plan, now());
//! loop {
//!     while let Some(c) = m.poll_command() {
//!         match c {
//!             Answer(a) => reply to the client with a (keep the machine
//!                          if late replies matter, e.g. read repair),
//!             other     => perform it; its outcome comes back as a reply,
//!         }
//!     }
//!     let Some(at) = m.poll_timeout() else { break };   // None: answered
//!     select! {
//!         (from, reply) = replies.recv() => m.on_reply(&from, reply, now()),
//!         _ = sleep_until(at)             => m.on_timeout(now()),
//!     }
//! }
//! ```
//!
//! `on_reply` takes `now_ms` for symmetry (and later latency bookkeeping) but
//! never fires a timer: only `on_timeout` does, so a reply that arrives
//! after the deadline but before the driver's wake-up still counts.
//!
//! The driver maps transport outcomes to [`ReplicaFailure`]s (a refused
//! connection is `ConnectRefused`, a call failing fast because the peer is
//! in connect backoff is `KnownDown`, ...) and feeds a `ReadLocal` or
//! `AwaitLocal` outcome back as a reply from the plan's `local` node.
//!
//! Never: read a clock, do IO, draw randomness, or know about sockets and
//! tasks. The preference list arrives as a slice, whoever computed it.

pub mod forward;
pub mod read;
pub mod sloppy;
pub mod write;

pub use forward::{ForwardCommand, ForwardMachine, ForwardPlan};
pub use read::{ReadCommand, ReadMachine, ReadPlan, ReplicaReply};
pub use sloppy::{sloppy_targets, SloppyTargets};
pub use write::{WriteCommand, WriteMachine, WritePlan, WriteReply};

use crate::protocol::OpError;
use crate::replication::Replication;
use crate::NodeId;

/// The timers a coordinator works with, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a coordinated read or write waits for its quorum.
    pub request_timeout_ms: u64,
    /// How long a read waits on its first R replicas before asking the rest.
    pub read_speculation_ms: u64,
    /// How long a write waits on a silent target before also sending the
    /// write to a spare fallback, as a hint (sloppy quorum through a silent
    /// failure, not only a refused connection).
    pub write_stand_in_after_ms: u64,
    /// Extra time a forwarding node waits beyond the request timeout, so the
    /// target's own answer (even a quorum error) arrives.
    pub forward_margin_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request_timeout_ms: 3000,
            read_speculation_ms: 100,
            write_stand_in_after_ms: 500,
            forward_margin_ms: 500,
        }
    }
}

/// Whether a client request reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
}

/// What this node does with a client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Coordinate a get here.
    Read(ReadPlan),
    /// Coordinate a put here: apply it locally first, then start the machine.
    Write(WritePlan),
    /// Hand it to a node that holds a replica.
    Forward(ForwardPlan),
    /// Answer with this error without doing anything.
    Refuse(OpError),
}

/// What a request asks for, as [`plan`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanRequest {
    pub operation: Operation,
    /// N, R and W, resolved for the key's bucket and the request.
    pub replication: Replication,
    /// Acknowledgements a write needs from home replicas (PW); 0 for reads.
    pub pw: usize,
    /// The request was forwarded here by another node, so it must not be
    /// forwarded again.
    pub forwarded: bool,
}

/// Decides what node `me` does with a request for a key whose preference
/// list is `preference_list` (its first `replication.n` nodes are the
/// key's home replicas, the rest fallbacks). `known_down`: peers the driver
/// judges down.
///
/// Only a home replica coordinates: it mints the new version's dot from the
/// key's history, which only homes hold. Its reads and writes go to the
/// sloppy targets ([`sloppy_targets`]); a node that is not a home forwards
/// to the homes, those judged down last.
pub fn plan(
    me: &NodeId,
    preference_list: &[NodeId],
    request: &PlanRequest,
    timeouts: &Timeouts,
    known_down: &[NodeId],
) -> Plan {
    let replication = request.replication;
    let homes = &preference_list[..replication.n.min(preference_list.len())];
    let local = homes.contains(me).then(|| me.clone());
    let Some(local) = local else {
        if request.forwarded {
            return Plan::Refuse(OpError::NotCoordinator { node: me.clone() });
        }
        return Plan::Forward(ForwardPlan {
            targets: try_order(homes, known_down),
            write: request.operation == Operation::Write,
            timeout_ms: timeouts
                .request_timeout_ms
                .saturating_add(timeouts.forward_margin_ms),
        });
    };
    let targets = sloppy_targets(preference_list, replication.n, known_down);
    let replicas = local_first(&targets.nodes, Some(&local));
    match request.operation {
        Operation::Read => {
            let monotonic = replication.r + replication.w > replication.n;
            // A monotonic read counts homes only, so the homes a stand-in
            // replaced are still asked, last: being judged down is a guess.
            let replicas = if monotonic {
                let replaced = targets.stand_ins.iter().map(|(_, home)| home.clone());
                local_first(
                    &replicas.into_iter().chain(replaced).collect::<Vec<_>>(),
                    None,
                )
            } else {
                replicas
            };
            Plan::Read(ReadPlan {
                replicas,
                local: Some(local),
                stand_ins: targets.stand_ins,
                r: replication.r,
                monotonic,
                speculate_after_ms: timeouts.read_speculation_ms,
                timeout_ms: timeouts.request_timeout_ms,
            })
        }
        Operation::Write => Plan::Write(WritePlan {
            replicas,
            local: Some(local),
            stand_ins: targets.stand_ins,
            spares: targets.spares,
            w: replication.w,
            pw: request.pw,
            stand_in_after_ms: timeouts.write_stand_in_after_ms,
            newer_homes: Vec::new(),
            timeout_ms: timeouts.request_timeout_ms,
        }),
    }
}

/// `nodes` in order, those in `known_down` moved last (each group keeps its
/// order).
pub fn try_order(nodes: &[NodeId], known_down: &[NodeId]) -> Vec<NodeId> {
    let (up, down): (Vec<NodeId>, Vec<NodeId>) =
        nodes.iter().cloned().partition(|n| !known_down.contains(n));
    up.into_iter().chain(down).collect()
}

/// `nodes` without duplicates (first occurrence kept), with `local` moved to
/// the front when it is one of them.
pub(crate) fn local_first(nodes: &[NodeId], local: Option<&NodeId>) -> Vec<NodeId> {
    let mut out: Vec<NodeId> = Vec::with_capacity(nodes.len());
    if let Some(local) = local.filter(|l| nodes.contains(l)) {
        out.push(local.clone());
    }
    for node in nodes {
        if !out.contains(node) {
            out.push(node.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(|s| NodeId::new(s).unwrap()).collect()
    }

    fn request(operation: Operation, forwarded: bool) -> PlanRequest {
        PlanRequest {
            operation,
            replication: Replication { n: 3, r: 2, w: 2 },
            pw: 1,
            forwarded,
        }
    }

    #[test]
    fn plan_coordinates_on_a_home_forwards_elsewhere_and_refuses_a_second_hop() {
        let prefs = ids(&["n1", "n2", "n3", "n4", "n5"]);
        let t = Timeouts::default();
        let me = &ids(&["n2"])[0];
        let down = ids(&["n1"]);
        let read_req = request(Operation::Read, false);
        let Plan::Read(read) = plan(me, &prefs, &read_req, &t, &down) else {
            panic!("a home coordinates its reads");
        };
        assert_eq!(
            read.replicas,
            ids(&["n2", "n3", "n4", "n1"]),
            "n4 stands in; a monotonic read asks the home it replaced last"
        );
        assert_eq!(
            read.stand_ins,
            vec![(ids(&["n4"])[0].clone(), ids(&["n1"])[0].clone())]
        );
        assert_eq!((read.local, read.r), (Some(me.clone()), 2));
        assert!(read.monotonic, "R + W > N");
        let Plan::Write(write) = plan(me, &prefs, &request(Operation::Write, true), &t, &down)
        else {
            panic!("a home coordinates forwarded writes");
        };
        assert_eq!((write.replicas.len(), write.w, write.pw), (3, 2, 1));
        assert_eq!(write.spares, ids(&["n5"]));

        let outsider = &ids(&["n4"])[0];
        let Plan::Forward(fwd) = plan(
            outsider,
            &prefs,
            &request(Operation::Write, false),
            &t,
            &down,
        ) else {
            panic!("a non-home forwards");
        };
        assert_eq!(fwd.targets, ids(&["n2", "n3", "n1"]), "to homes, down last");
        assert!(fwd.write);
        assert_eq!(fwd.timeout_ms, 3500);
        assert_eq!(
            plan(outsider, &prefs, &request(Operation::Read, true), &t, &[]),
            Plan::Refuse(OpError::NotCoordinator {
                node: outsider.clone()
            })
        );
    }

    #[test]
    fn local_first_dedupes_and_keeps_order() {
        let nodes = ids(&["a", "b", "a", "c"]);
        let b = &ids(&["b"])[0];
        assert_eq!(local_first(&nodes, Some(b)), ids(&["b", "a", "c"]));
        let z = &ids(&["z"])[0];
        assert_eq!(local_first(&nodes, Some(z)), ids(&["a", "b", "c"]));
    }
}
