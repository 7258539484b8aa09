//! One seed's run: clients doing read-modify-write on set keys through the
//! core's coordination machines ([`ReadMachine`], [`WriteMachine`], planned
//! by [`plan`]), every request and answer a message through the faulty
//! network, until the clients are done; then the network heals, hints go
//! home, and a final anti-entropy merges every key's homes.
//!
//! The driver does what the node's coordinator does, without sockets: it
//! drains each machine's commands after every event, answers `ReadLocal`
//! and `AwaitLocal` from the coordinator's own store, and wakes the machine
//! at `poll_timeout`. Failure detection is a guess, as in the node: a peer
//! cut off from the coordinator is judged down most of the time, and a
//! healthy one now and then.

use super::checks::{History, SetRead};
use super::draw::Draw;
use super::scenario::Scenario;
use super::world::{answer, names, Body, Event, Msg, Network, Queue, Store, WriteKind};
use bytes::Bytes;
use ringkv_core::coordinate::*;
use ringkv_core::replication::Replication;
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::Dot;
use ringkv_core::NodeId;
use std::collections::BTreeSet;

enum Machine {
    Read(ReadMachine),
    Write(WriteMachine, Siblings, Dot),
}

struct Op {
    client: usize,
    coord: usize,
    key: String,
    started_ms: u64,
    machine: Machine,
}

struct Run<'a> {
    s: &'a Scenario,
    d: Draw,
    q: Queue,
    net: Network,
    ids: Vec<NodeId>,
    stores: Vec<Store>,
    ops: Vec<Op>,
    done_ops: Vec<usize>,
    history: History,
}

/// The elements of a set value: the union of its siblings.
pub fn elements(found: Option<&Siblings>) -> BTreeSet<String> {
    found
        .into_iter()
        .flat_map(|f| f.values())
        .flat_map(|v| std::str::from_utf8(v).unwrap_or("").split(','))
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

/// Runs `s` to the end; returns what happened.
pub fn run(s: &Scenario) -> History {
    let mut run = Run {
        s,
        d: Draw::new(s.seed.wrapping_mul(31).wrapping_add(7)),
        q: Queue::default(),
        net: Network::new(),
        ids: names(s.nodes),
        stores: (0..s.nodes).map(|_| Store::default()).collect(),
        ops: Vec::new(),
        done_ops: vec![0; s.clients],
        history: History::default(),
    };
    for c in 0..s.clients {
        run.q.at(c as u64, Event::Client(c));
    }
    run.q.at(200, Event::Handoff);
    let mut now = 0;
    while let Some((at, event)) = run.q.pop() {
        now = at;
        let clients_done = run.done_ops.iter().all(|&n| n >= s.ops_per_client);
        if clients_done && !run.net.healed {
            run.net.healed = true;
            run.history.healed_at_ms = now;
        }
        match event {
            Event::Client(c) => run.start_read(c, now),
            Event::Timer(op) => run.on_timer(op, now),
            Event::Deliver(msg) => run.deliver(msg, now),
            Event::Handoff => {
                run.handoff(now);
                // Hints go home until a while after healing.
                if !clients_done || now < run.history.healed_at_ms + 5_000 {
                    run.q.at(now + 200, Event::Handoff);
                }
            }
        }
    }
    run.history.sent = run.net.sent;
    run.history.dropped = run.net.dropped;
    run.history.duplicated = run.net.duplicated;
    run.anti_entropy();
    run.history.ended_ms = now;
    run.history
}

impl Run<'_> {
    fn replication(&self) -> Replication {
        Replication {
            n: self.s.n,
            r: self.s.r,
            w: self.s.w,
        }
    }

    /// A key's preference list: every node, rotated by the key.
    fn preference_list(&self, key: &str) -> Vec<usize> {
        let start = key.bytes().map(usize::from).sum::<usize>() % self.s.nodes;
        (0..self.s.nodes)
            .map(|i| (start + i) % self.s.nodes)
            .collect()
    }

    fn index(&self, id: &NodeId) -> usize {
        self.ids
            .iter()
            .position(|i| i == id)
            .expect("a node of the run")
    }

    /// Whom coordinator `c` judges down now: most peers cut off from it,
    /// and a healthy one now and then.
    fn judged_down(&mut self, c: usize, now: u64) -> Vec<NodeId> {
        let mut down = Vec::new();
        for x in 0..self.s.nodes {
            let cut = !self.net.healed && self.s.cut(c, x, now);
            if x != c && ((cut && self.d.chance(80)) || self.d.chance(3)) {
                down.push(self.ids[x].clone());
            }
        }
        down
    }

    fn plan_for(&mut self, c: usize, key: &str, operation: Operation, now: u64) -> Plan {
        let prefs: Vec<NodeId> = self
            .preference_list(key)
            .into_iter()
            .map(|i| self.ids[i].clone())
            .collect();
        let down = self.judged_down(c, now);
        let request = PlanRequest {
            operation,
            replication: self.replication(),
            pw: 0,
            forwarded: false,
        };
        plan(&self.ids[c], &prefs, &request, &Timeouts::default(), &down)
    }

    fn start_read(&mut self, client: usize, now: u64) {
        let key = format!("set-{}", self.d.below(self.s.keys as u64));
        let homes = &self.preference_list(&key)[..self.s.n];
        let coord = homes[self.d.below(homes.len() as u64) as usize];
        let Plan::Read(p) = self.plan_for(coord, &key, Operation::Read, now) else {
            panic!("a home coordinates its reads");
        };
        self.ops.push(Op {
            client,
            coord,
            key,
            started_ms: now,
            machine: Machine::Read(ReadMachine::new(p, now)),
        });
        self.drive(self.ops.len() - 1, now);
    }

    /// The client's write after its read: the elements it read plus a new
    /// one, with the context it read, applied locally by the coordinator
    /// (minting the dot) and then replicated by a [`WriteMachine`].
    fn start_write(&mut self, read_op: usize, found: Option<Siblings>, now: u64) {
        let (client, coord, key) = {
            let op = &self.ops[read_op];
            (op.client, op.coord, op.key.clone())
        };
        let mut have = elements(found.as_ref());
        let element = format!("c{client}-{}", self.done_ops[client]);
        have.insert(element.clone());
        self.history.written.insert((key.clone(), element));
        let value = have.into_iter().collect::<Vec<_>>().join(",");
        let context = found.map(|f| f.clock().clone()).unwrap_or_default();
        let coord_id = self.ids[coord].clone();
        let local = self.stores[coord].data.entry(key.clone()).or_default();
        let dot = local.update(&context, &coord_id, Some(Bytes::from(value)), now);
        let object = local.clone();
        let Plan::Write(p) = self.plan_for(coord, &key, Operation::Write, now) else {
            panic!("a home coordinates its writes");
        };
        self.ops.push(Op {
            client,
            coord,
            key,
            started_ms: now,
            machine: Machine::Write(WriteMachine::new(p, now), object, dot),
        });
        self.drive(self.ops.len() - 1, now);
    }

    fn on_timer(&mut self, op: usize, now: u64) {
        let due = match &self.ops[op].machine {
            Machine::Read(m) => m.poll_timeout(),
            Machine::Write(m, ..) => m.poll_timeout(),
        };
        if due.is_some_and(|at| now >= at) {
            match &mut self.ops[op].machine {
                Machine::Read(m) => m.on_timeout(now),
                Machine::Write(m, ..) => m.on_timeout(now),
            }
            self.drive(op, now);
        }
    }

    fn send(&mut self, from: usize, to: usize, op: usize, body: Body, now: u64) {
        let msg = Msg { from, to, op, body };
        self.net.send(self.s, &mut self.d, &mut self.q, now, msg);
    }

    fn deliver(&mut self, msg: Msg, now: u64) {
        if let Some(reply) = answer(&mut self.stores[msg.to], &msg.body) {
            self.send(msg.to, msg.from, msg.op, reply, now);
            return;
        }
        let from = self.ids[msg.from].clone();
        match (
            msg.body,
            &mut self.ops.get_mut(msg.op).map(|o| &mut o.machine),
        ) {
            (Body::ReadResp(reply), Some(Machine::Read(m))) => m.on_reply(&from, reply, now),
            (
                Body::WriteResp {
                    kind: WriteKind::Repair,
                    result,
                },
                Some(Machine::Read(m)),
            ) => m.on_repair(&from, result, now),
            (
                Body::WriteResp {
                    kind: WriteKind::Write,
                    result,
                },
                Some(Machine::Write(m, ..)),
            ) => m.on_reply(&from, result, now),
            (Body::HandoffAck { key, object }, _) => {
                let hint = (msg.from, key);
                if self.stores[msg.to].hints.get(&hint) == Some(&object) {
                    self.stores[msg.to].hints.remove(&hint);
                }
                return;
            }
            (body, _) => panic!("a message reached the wrong machine: {body:?}"),
        }
        self.drive(msg.op, now);
    }

    /// Every node offers each hint it holds to its home.
    fn handoff(&mut self, now: u64) {
        for node in 0..self.s.nodes {
            let hints: Vec<_> = self.stores[node].hints.clone().into_iter().collect();
            for ((home, key), object) in hints {
                self.send(node, home, usize::MAX, Body::Handoff { key, object }, now);
            }
        }
    }

    /// Carries out op `i`'s commands; schedules its timer.
    fn drive(&mut self, i: usize, now: u64) {
        loop {
            match &mut self.ops[i].machine {
                Machine::Read(m) => match m.poll_command() {
                    Some(command) => self.read_command(i, command, now),
                    None => break,
                },
                Machine::Write(m, ..) => match m.poll_command() {
                    Some(command) => self.write_command(i, command, now),
                    None => break,
                },
            }
        }
        let due = match &self.ops[i].machine {
            Machine::Read(m) => m.poll_timeout(),
            Machine::Write(m, ..) => m.poll_timeout(),
        };
        if let Some(at) = due {
            self.q.at(at.max(now), Event::Timer(i));
        }
    }

    fn read_machine(&mut self, i: usize) -> &mut ReadMachine {
        match &mut self.ops[i].machine {
            Machine::Read(m) => m,
            Machine::Write(..) => unreachable!("op {i} is a read"),
        }
    }

    fn read_command(&mut self, i: usize, command: ReadCommand, now: u64) {
        let (coord, key) = (self.ops[i].coord, self.ops[i].key.clone());
        let coord_id = self.ids[coord].clone();
        match command {
            ReadCommand::ReadLocal => {
                let found = self.stores[coord].read(&key, None);
                self.read_machine(i).on_reply(&coord_id, Ok(found), now);
            }
            ReadCommand::Send { to, hint_for } => {
                let hint_for = hint_for.map(|h| self.index(&h));
                let to = self.index(&to);
                self.send(coord, to, i, Body::ReadReq { key, hint_for }, now);
            }
            ReadCommand::Repair {
                to,
                hint_for,
                object,
            } => {
                let to = self.index(&to);
                let hint_for = hint_for.map(|h| self.index(&h));
                if to == coord {
                    self.stores[coord].write(&key, hint_for, &object);
                    self.read_machine(i).on_repair(&coord_id, Ok(()), now);
                } else {
                    let body = Body::WriteReq {
                        key,
                        hint_for,
                        object,
                        kind: WriteKind::Repair,
                    };
                    self.send(coord, to, i, body, now);
                }
            }
            ReadCommand::Answer(answer) => self.read_answered(i, answer, now),
        }
    }

    fn write_command(&mut self, i: usize, command: WriteCommand, now: u64) {
        let (coord, key) = (self.ops[i].coord, self.ops[i].key.clone());
        let coord_id = self.ids[coord].clone();
        let Machine::Write(m, object, _) = &mut self.ops[i].machine else {
            unreachable!("op {i} is a write")
        };
        match command {
            WriteCommand::AwaitLocal => m.on_reply(&coord_id, Ok(()), now),
            WriteCommand::Send { to, hint_for } => {
                let object = object.clone();
                let body = Body::WriteReq {
                    key,
                    hint_for: hint_for.map(|h| self.index(&h)),
                    object,
                    kind: WriteKind::Write,
                };
                let to = self.index(&to);
                self.send(coord, to, i, body, now);
            }
            WriteCommand::Answer(answer) => self.write_answered(i, answer.is_ok(), now),
        }
    }

    fn read_answered(
        &mut self,
        i: usize,
        answer: Result<Option<Siblings>, ringkv_core::quorum::QuorumError>,
        now: u64,
    ) {
        let (client, key, started_ms) = {
            let op = &self.ops[i];
            (op.client, op.key.clone(), op.started_ms)
        };
        match answer {
            Ok(found) => {
                let me = format!("c{client}");
                let mine = |e: &String| e.split_once('-').is_some_and(|(w, _)| w == me);
                let els = elements(found.as_ref());
                let stale = self
                    .history
                    .acked
                    .iter()
                    .any(|(k, e)| *k == key && mine(e) && !els.contains(e));
                self.history.reads.push(SetRead {
                    key,
                    started_ms,
                    ended_ms: now,
                    siblings: found.as_ref().map_or(0, |f| f.values().count()),
                    stale,
                    elements: els,
                });
                self.start_write(i, found, now);
            }
            Err(_) => {
                self.history.failed_reads += 1;
                self.next_op(client, now);
            }
        }
    }

    fn write_answered(&mut self, i: usize, ok: bool, now: u64) {
        let Machine::Write(_, _, dot) = &self.ops[i].machine else {
            unreachable!("a write's answer")
        };
        let element = format!(
            "c{}-{}",
            self.ops[i].client, self.done_ops[self.ops[i].client]
        );
        if ok {
            // Acknowledged: W nodes must hold it (as data or as a hint) now.
            let key = &self.ops[i].key;
            let holders = self
                .stores
                .iter()
                .filter(|st| {
                    st.data.get(key).is_some_and(|o| o.clock().covers(dot))
                        || st
                            .hints
                            .iter()
                            .any(|((_, k), o)| k == key && o.clock().covers(dot))
                })
                .count();
            if holders < self.s.w {
                self.history.violations.push(format!(
                    "{element} acknowledged with {holders} nodes holding it, W = {}",
                    self.s.w
                ));
            }
            self.history.acked.insert((key.clone(), element));
        } else {
            let key = self.ops[i].key.clone();
            self.history.unknown.insert((key, element));
        }
        self.next_op(self.ops[i].client, now);
    }

    fn next_op(&mut self, client: usize, now: u64) {
        self.done_ops[client] += 1;
        if self.done_ops[client] < self.s.ops_per_client {
            let think = self.d.range(1, 300);
            self.q.at(now + think, Event::Client(client));
        }
    }

    /// After healing: every home of each key ends with the merge of all
    /// homes' copies and every hint for it (what anti-entropy converges to).
    fn anti_entropy(&mut self) {
        for k in 0..self.s.keys {
            let key = format!("set-{k}");
            let mut merged = Siblings::new();
            for st in &self.stores {
                if let Some(o) = st.data.get(&key) {
                    merged.merge(o);
                }
                for ((_, hk), o) in &st.hints {
                    if *hk == key {
                        merged.merge(o);
                    }
                }
            }
            self.history
                .final_elements
                .insert(key, elements(Some(&merged)));
        }
    }
}
