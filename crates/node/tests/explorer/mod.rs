//! The seeded fault explorer: one seed picks a cluster (3–7 nodes), N, R and
//! W, skewed clocks, link latency and a fault schedule (partitions in
//! halves, through a bridge node or around one node; power losses that drop
//! a seeded random subset of the unsynced batches; restarts; a failed
//! fsync, followed by a power loss and a restart; a wall clock jumping
//! back or forward; a join or a decommission during the load);
//! clients run the set, register and delete workloads meanwhile; then
//! everything heals and the invariants in [`checks`] are checked against
//! what the clients saw ([`history`]).
//!
//! Whole nodes (`ringkv_node::run`) run on turmoil's simulated network and
//! the in-memory engine, on virtual time, in one thread: a seed replays
//! exactly, and [`run`] returns the trace a replay must reproduce.
//!
//! Faults the network here cannot make: TCP connections deliver in order
//! and exactly once, so message drop, duplication and reordering inside a
//! connection are not explored here (lost connections, retries and read
//! repairs resending objects are); the message-level explorer
//! (`crates/core/tests/message_explorer.rs`) explores them.

pub mod checks;
pub mod client;
pub mod history;
pub mod scenario;

use crate::sim_cluster::{self, host_with, id, values, OnStartOf, Steps};
use history::{elements, Deleted, History, Outcome, Register, RegisterWrite, SetRead};
use ringkv_core::layout::Layout;
use ringkv_core::layout_history::LayoutChange;
use ringkv_core::protocol::Request;
use ringkv_core::replication::Replication;
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use ringkv_node::node::NodeState;
use ringkv_node::NodeConfig;
use ringkv_storage::MemStorage;
use scenario::{Fault, Scenario};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NAMES: [&str; 8] = ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"];
const PARTITIONS: u32 = 16;
/// How long a simulated fsync takes: writes wait unsynced meanwhile, so a
/// power loss can land between a write and its sync.
const SYNC_MS: u64 = 10;

type Shared = Arc<Mutex<History>>;
type Registry = Arc<Mutex<BTreeMap<&'static str, Arc<NodeState>>>>;
/// Each node's wall clock offset from the simulation's, in ms.
type Clocks = Arc<Vec<Arc<AtomicI64>>>;

/// What one seed did: its trace, and the first invariant it broke.
pub struct Run {
    pub trace: Vec<String>,
    pub failure: Option<String>,
}

/// Runs `seed`'s scenario to the end.
pub fn run(seed: u64) -> Run {
    let scenario = Arc::new(Scenario::of(seed));
    let history: Shared = Arc::default();
    let registry: Registry = Arc::default();
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(scenario.max_latency_ms))
        .simulation_duration(Duration::from_secs(600))
        .build();
    let founders: Vec<&'static str> = NAMES[..scenario.nodes].to_vec();
    let disks: Vec<MemStorage> = (0..NAMES.len())
        .map(|_| MemStorage::new().with_simulated_sync_ms(SYNC_MS))
        .collect();
    let on_start: OnStartOf = {
        let registry = registry.clone();
        Arc::new(move |name| {
            let registry = registry.clone();
            Some(Box::new(move |state: &Arc<NodeState>| {
                registry.lock().unwrap().insert(name, state.clone());
            }))
        })
    };
    let configure = {
        let s = scenario.clone();
        Arc::new(move |config: &mut NodeConfig| {
            config.partitions = PARTITIONS;
            config.replication = Replication {
                n: s.n,
                r: s.r,
                w: s.w,
            };
            config.gossip_interval_ms = 300;
            if config.peers.is_empty() {
                config.seeds = vec![format!("n1:{}", sim_cluster::RPC_PORT)];
            }
        }) as Arc<dyn Fn(&mut NodeConfig)>
    };
    // Each node's wall clock offset: its skew, moved by clock jumps.
    let clocks: Clocks = Arc::new(
        (0..NAMES.len())
            .map(|i| {
                Arc::new(AtomicI64::new(
                    scenario.skews_ms.get(i).copied().unwrap_or(0),
                ))
            })
            .collect(),
    );
    for (i, name) in founders.iter().enumerate() {
        host_with(
            &mut sim,
            name,
            &founders,
            disks[i].clone(),
            configure.clone(),
            on_start.clone(),
            clocks[i].clone(),
        );
    }
    let done = Arc::new(AtomicUsize::new(0));
    let clients = spawn_workloads(&mut sim, &scenario, &history, &done);
    let steps = Steps::default();
    {
        let (s, h, r, f, st, c) = (
            scenario.clone(),
            history.clone(),
            registry.clone(),
            failure.clone(),
            steps.clone(),
            clocks.clone(),
        );
        sim.client("nemesis", async move {
            nemesis(&s, &st, &h, &c).await;
            while done.load(Ordering::SeqCst) < clients {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Err(e) = settle_and_check(&s, &h, &r).await {
                *f.lock().unwrap() = Some(e);
            }
            Ok(())
        });
    }
    let founders_len = founders.len();
    let outcome = steps.run(&mut sim, |sim, step| {
        let i = (step % 10) as usize;
        match step / 10 {
            1 => {
                let seed = scenario.power_loss_seed_of(i, disks[i].crashes());
                let lost = disks[i].crash_keeping(seed);
                history.lock().unwrap().log(format!(
                    "power loss {}: kept batches {:?} of {} unsynced",
                    NAMES[i], lost.kept, lost.unsynced
                ));
                sim.crash(NAMES[i]);
            }
            2 => sim.bounce(NAMES[i]),
            4 => disks[i].fail_next_syncs(1),
            _ => host_with(
                sim,
                NAMES[founders_len],
                &founders,
                disks[founders_len].clone(),
                configure.clone(),
                on_start.clone(),
                clocks[founders_len].clone(),
            ),
        }
    });
    let mut failure = failure.lock().unwrap().take();
    if let Err(e) = outcome {
        failure.get_or_insert(format!("simulation: {e}"));
    }
    let trace = std::mem::take(&mut history.lock().unwrap().trace);
    Run { trace, failure }
}

/// Starts the clients; returns how many there are.
fn spawn_workloads(
    sim: &mut turmoil::Sim<'_>,
    s: &Arc<Scenario>,
    h: &Shared,
    done: &Arc<AtomicUsize>,
) -> usize {
    let mut count = 0;
    for c in 0..s.set_clients {
        let (s, h, done) = (s.clone(), h.clone(), done.clone());
        sim.client(format!("set-{c}"), async move {
            set_client(&s, &h, c).await;
            done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        count += 1;
    }
    {
        let (s, h, done) = (s.clone(), h.clone(), done.clone());
        sim.client("register", async move {
            register_client(&s, &h).await;
            done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    {
        let (s, h, done) = (s.clone(), h.clone(), done.clone());
        sim.client("delete", async move {
            delete_client(&s, &h).await;
            done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    count + 2
}

fn node_for(s: &Scenario, k: usize) -> &'static str {
    NAMES[k % s.nodes]
}

async fn set_client(s: &Scenario, h: &Shared, c: usize) {
    let mut d = scenario::Draw::new(s.seed ^ (c as u64 + 1) << 32);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for op in 0..s.ops_per_client {
        let k = format!("set-{}", d.below(s.set_keys as u64));
        h.lock().unwrap().sets.entry(k.clone()).or_default().writers = s.set_clients;
        let via = node_for(s, d.below(s.nodes as u64) as usize);
        let started = h.lock().unwrap().tick();
        let read = client::get(via, &k, None).await;
        let ended = h.lock().unwrap().tick();
        let (context, mut have) = match read {
            Ok(found) => {
                let vals = found.as_ref().map(values).unwrap_or_default();
                let els = elements(&vals);
                let siblings = found
                    .as_ref()
                    .map_or(0, |f| vals.len().max(usize::from(!f.is_empty())));
                let mut hist = h.lock().unwrap();
                hist.log(format!("set c{c} read {k}: {els:?}"));
                let set = hist.sets.get_mut(&k).unwrap();
                let me = format!("c{c}");
                let mine = |e: &String| e.split_once('-').is_some_and(|(w, _)| w == me);
                if set.acked.iter().any(|e| mine(e) && !els.contains(e)) {
                    set.stale_reads += 1;
                }
                set.reads.push(SetRead {
                    started,
                    ended,
                    elements: els.clone(),
                    siblings,
                });
                (found.map(|f| f.clock().clone()).unwrap_or_default(), els)
            }
            Err(e) => {
                h.lock()
                    .unwrap()
                    .log(format!("set c{c} read {k}: failed: {e}"));
                continue;
            }
        };
        let element = format!("c{c}-{op}");
        have.insert(element.clone());
        let value = have.iter().cloned().collect::<Vec<_>>().join(",");
        let put = client::put(via, &k, context, Some(&value)).await;
        {
            let mut hist = h.lock().unwrap();
            let set = hist.sets.get_mut(&k).unwrap();
            let outcome = if put.is_ok() {
                Outcome::Acked
            } else {
                Outcome::Unknown
            };
            match outcome {
                Outcome::Acked => set.acked.insert(element.clone()),
                Outcome::Unknown => set.unknown.insert(element.clone()),
            };
            hist.log(format!("set c{c} add {element} to {k}: {outcome:?}"));
        }
        tokio::time::sleep(Duration::from_millis(d.range(10, 300))).await;
    }
}

async fn register_client(s: &Scenario, h: &Shared) {
    let mut d = scenario::Draw::new(s.seed ^ 0xABCD);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let k = "register".to_string();
    let mut context = VersionVector::new();
    h.lock()
        .unwrap()
        .registers
        .insert(k.clone(), Register::default());
    for op in 0..s.ops_per_client {
        let via = node_for(s, d.below(s.nodes as u64) as usize);
        let value = format!("r{op}");
        let put = client::put(via, &k, context.clone(), Some(&value)).await;
        let (outcome, covered) = match put {
            Ok(next) => {
                let covered = next != context;
                context = next;
                (Outcome::Acked, covered)
            }
            Err(_) => (Outcome::Unknown, false),
        };
        {
            let mut hist = h.lock().unwrap();
            hist.registers
                .get_mut(&k)
                .unwrap()
                .writes
                .push(RegisterWrite {
                    value: value.clone(),
                    outcome,
                    covered,
                });
            hist.log(format!("register {value}: {outcome:?}, covered {covered}"));
        }
        tokio::time::sleep(Duration::from_millis(d.range(10, 300))).await;
    }
}

async fn delete_client(s: &Scenario, h: &Shared) {
    let mut d = scenario::Draw::new(s.seed ^ 0xDE1E7E);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for op in 0..s.ops_per_client {
        let k = format!("del-{op}");
        let via = node_for(s, d.below(s.nodes as u64) as usize);
        let value = format!("d{op}");
        let put = client::put(via, &k, VersionVector::new(), Some(&value)).await;
        let mut deleted = Deleted {
            value: value.clone(),
            put: if put.is_ok() {
                Outcome::Acked
            } else {
                Outcome::Unknown
            },
            delete: None,
        };
        if let Ok(context) = put {
            let ok = client::put(via, &k, context, None).await.is_ok();
            deleted.delete = Some(if ok { Outcome::Acked } else { Outcome::Unknown });
        }
        {
            let mut hist = h.lock().unwrap();
            hist.log(format!(
                "delete {k}: put {:?}, delete {:?}",
                deleted.put, deleted.delete
            ));
            hist.deletes.insert(k, deleted);
        }
        tokio::time::sleep(Duration::from_millis(d.range(10, 300))).await;
    }
}

/// Applies the fault schedule, then heals every cut.
async fn nemesis(s: &Scenario, steps: &Steps, h: &Shared, clocks: &Clocks) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = tokio::time::Instant::now();
    let names = &NAMES[..s.nodes];
    for (at, fault) in &s.faults {
        let due = started + Duration::from_millis(*at);
        tokio::time::sleep_until(due).await;
        h.lock().unwrap().log(format!("fault {fault:?}"));
        match fault {
            Fault::Halves(half) => cut(names, |i| half.contains(&i)),
            Fault::Isolate(i) => cut(names, |j| j == *i),
            Fault::Bridge { isolated, bridge } => {
                for a in isolated {
                    for (b, other) in names.iter().enumerate() {
                        if b != *bridge && !isolated.contains(&b) {
                            turmoil::partition(names[*a], *other);
                        }
                    }
                }
            }
            Fault::Heal => heal(names),
            Fault::Crash(i) => steps.ask(10 + *i as u8).await,
            Fault::Restart(i) => steps.ask(20 + *i as u8).await,
            Fault::Join => steps.ask(30).await,
            Fault::FailSync(i) => steps.ask(40 + *i as u8).await,
            Fault::ClockJump { node, by_ms } => {
                clocks[*node].fetch_add(*by_ms, Ordering::SeqCst);
            }
            Fault::Decommission(i) => {
                let change = Request::ChangeLayout(LayoutChange::Decommission(id(names[*i])));
                let answer = client::call(names[(*i + 1) % s.nodes], change).await;
                h.lock()
                    .unwrap()
                    .log(format!("decommission {}: {answer:?}", names[*i]));
            }
        }
    }
    heal(names);
}

/// Cuts every node `inside` says yes to from every node it says no to.
fn cut(names: &[&str], inside: impl Fn(usize) -> bool) {
    for (a, x) in names.iter().enumerate() {
        for (b, y) in names.iter().enumerate() {
            if a < b && inside(a) != inside(b) {
                turmoil::partition(*x, *y);
            }
        }
    }
}

fn heal(names: &[&str]) {
    for (a, x) in names.iter().enumerate() {
        for y in &names[a + 1..] {
            turmoil::repair(*x, *y);
        }
    }
}

/// Waits for one layout version everywhere, then checks every invariant.
async fn settle_and_check(s: &Scenario, h: &Shared, registry: &Registry) -> Result<(), String> {
    let layout = settled_layout(s, registry).await?;
    let homes: Vec<String> = layout.members().iter().map(|m| m.id.to_string()).collect();
    if let Err(e) = checks::convergence::check(&layout, s.n).await {
        return Err(format!("{e}\n  nodes: {}", describe(registry)));
    }
    let sets = h.lock().unwrap().sets.clone();
    let registers = h.lock().unwrap().registers.clone();
    let deletes = h.lock().unwrap().deletes.clone();
    let all = Some(s.n);
    for node in &homes {
        for (k, set) in &sets {
            let found = read_settled(node, k, all).await?;
            let els = elements(&found);
            h.lock()
                .unwrap()
                .log(format!("final {k} via {node}: {els:?}"));
            checks::set::check(k, set, node, &els)?;
        }
        for (k, register) in &registers {
            let found = read_settled(node, k, all).await?;
            h.lock()
                .unwrap()
                .log(format!("final {k} via {node}: {found:?}"));
            checks::register::check(k, register, node, &found)?;
        }
        for (k, deleted) in &deletes {
            let found = read_settled(node, k, all).await?;
            checks::delete::check(k, deleted, node, &found)?;
        }
    }
    for (k, set) in &sets {
        checks::siblings::check(k, set)?;
        if s.monotonic() {
            checks::monotonic::check(k, set)?;
        }
    }
    Ok(())
}

/// What every running node sees: its layout versions and each node's
/// gossiped stamps (for failure messages).
fn describe(registry: &Registry) -> String {
    let nodes: Vec<(&str, Arc<NodeState>)> = registry
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    nodes
        .iter()
        .map(|(name, n)| {
            let read = n.coordinator.view.load().layout.version();
            n.cluster.read(|m, h| {
                let stamps: Vec<u64> = h.stamps().iter().map(|s| s.version).collect();
                let v = |s: Option<ringkv_core::layout_history::LayoutStamp>| {
                    s.map_or(0, |s| s.version)
                };
                let records: Vec<String> = m
                    .entries()
                    .values()
                    .map(|e| {
                        format!(
                            "{}:a{}s{}r{}",
                            e.record.id,
                            v(e.record.acked),
                            v(e.record.synced),
                            v(e.record.read)
                        )
                    })
                    .collect();
                let ae = n.metrics.repairs()["anti_entropy"]["partitions"]["0"].to_string();
                // (Peer liveness is left out: it reads the node's own
                // clock, and each simulated host has its own.)
                format!("{name} versions {stamps:?} reads v{read} {records:?} ae[0] {ae}")
            })
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The newest layout once every running node sees one active version.
async fn settled_layout(s: &Scenario, registry: &Registry) -> Result<Arc<Layout>, String> {
    // A join asked for late may still be on its way: the layout has not
    // settled until the joiner is in it (checking an older one would judge
    // the wrong homes).
    let joiner = s
        .faults
        .iter()
        .any(|(_, f)| matches!(f, Fault::Join))
        .then(|| id(NAMES[s.nodes]));
    for _ in 0..1200 {
        let nodes: Vec<Arc<NodeState>> = registry.lock().unwrap().values().cloned().collect();
        let states: Vec<_> = nodes
            .iter()
            .map(|n| {
                n.cluster
                    .read(|_, h| (h.in_transition(), h.newest().clone()))
            })
            .collect();
        let newest = states
            .iter()
            .map(|(_, l)| l.clone())
            .max_by_key(|l| l.stamp.version)
            .expect("a running node");
        let running = |m: &NodeId| nodes.iter().any(|n| n.config.id == *m);
        let settled = joiner
            .as_ref()
            .is_none_or(|j| newest.layout.member(j).is_some())
            && newest.layout.members().iter().all(|m| running(&m.id))
            && nodes.iter().zip(&states).all(|(n, (moving, layout))| {
                newest.layout.member(&n.config.id).is_none()
                    || (!moving && layout.stamp == newest.stamp)
            });
        if settled {
            return Ok(newest.layout.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the layout did not settle within 120 s of healing".into())
}

/// A read with R = `r` through `node`, retried while nodes reconnect.
async fn read_settled(node: &str, k: &str, r: Option<usize>) -> Result<Vec<String>, String> {
    let mut last = String::new();
    for _ in 0..30 {
        match client::get(node, k, r).await {
            Ok(found) => return Ok(found.as_ref().map(values).unwrap_or_default()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!("{k} unreadable via {node} after healing: {last}"))
}
