//! The nemesis: a fault schedule drawn from the seed alone, and the code
//! that inflicts and heals it on real processes.
//!
//! The schedule is a list of episodes. Each episode starts one or two
//! faults, holds them for a while, heals them all and leaves the cluster
//! quiet for a moment:
//!
//! - `Kill`: SIGKILL a node; healing restarts it on the same data directory
//!   (a process crash: acknowledged writes were fsynced, F6);
//! - `Pause`: SIGSTOP a node, so its sockets stay open and nothing answers;
//!   healing sends SIGCONT;
//! - `Partition`: cut the nodes of one side from the rest (see
//!   [`super::netns`]); healing drops the rules.
//!
//! Two faults of one episode never hit the same node, and an episode holds
//! at most one partition. The same seed gives the same schedule (the times
//! are real, so what each fault catches in flight differs from run to run;
//! the schedule printed on failure says what was done).
//!
//! *Boundary:* only the schedule is pure; [`Nemesis::run`] does IO and
//! sleeps, on the calling thread, which must be the one that started the
//! nodes (they die with it, see `common::enter_netns_on_exec`).

use super::cluster::ChaosCluster;
use std::fmt;
use std::time::{Duration, Instant};

/// Longest a fault is held, and shortest.
const HOLD_MS: std::ops::Range<u64> = 1_000..5_000;
/// Quiet time between episodes.
const QUIET_MS: std::ops::Range<u64> = 500..2_000;

/// One fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Kill(usize),
    Pause(usize),
    /// These nodes on one side, the others on the other.
    Partition(Vec<usize>),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |i: &usize| format!("n{}", i + 1);
        match self {
            Fault::Kill(i) => write!(f, "kill -9 {}", name(i)),
            Fault::Pause(i) => write!(f, "SIGSTOP {}", name(i)),
            Fault::Partition(side) => {
                let side: Vec<String> = side.iter().map(name).collect();
                write!(f, "partition {{{}}} from the rest", side.join(","))
            }
        }
    }
}

/// Faults started together, how long they are held, and the quiet after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Episode {
    pub faults: Vec<Fault>,
    pub hold_ms: u64,
    pub quiet_ms: u64,
}

/// Episodes for `nodes` nodes, drawn from `seed`, enough to fill `run_ms`.
pub fn schedule(seed: u64, nodes: usize, run_ms: u64) -> Vec<Episode> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut episodes = Vec::new();
    let mut total_ms = 0;
    while total_ms < run_ms {
        let mut faults: Vec<Fault> = Vec::new();
        for _ in 0..rng.usize(1..=2) {
            let hit: Vec<usize> = faults.iter().flat_map(nodes_of).collect();
            let free: Vec<usize> = (0..nodes).filter(|i| !hit.contains(i)).collect();
            let has_partition = faults.iter().any(|f| matches!(f, Fault::Partition(_)));
            let fault = match rng.u8(0..3) {
                0 if !free.is_empty() => Fault::Kill(free[rng.usize(..free.len())]),
                1 if !free.is_empty() => Fault::Pause(free[rng.usize(..free.len())]),
                _ if !has_partition => {
                    let mut all: Vec<usize> = (0..nodes).collect();
                    rng.shuffle(&mut all);
                    let mut side = all[..rng.usize(1..=nodes / 2)].to_vec();
                    side.sort();
                    Fault::Partition(side)
                }
                _ => continue,
            };
            faults.push(fault);
        }
        let episode = Episode {
            faults,
            hold_ms: rng.u64(HOLD_MS),
            quiet_ms: rng.u64(QUIET_MS),
        };
        total_ms += episode.hold_ms + episode.quiet_ms;
        episodes.push(episode);
    }
    episodes
}

/// The nodes a fault stops or restarts (a partition stops none).
fn nodes_of(fault: &Fault) -> Vec<usize> {
    match fault {
        Fault::Kill(i) | Fault::Pause(i) => vec![*i],
        Fault::Partition(_) => Vec::new(),
    }
}

/// What the nemesis did: the episodes it ran, in order.
#[derive(Default)]
pub struct Log {
    pub done: Vec<(Duration, Episode)>,
}

impl Log {
    pub fn faults(&self) -> usize {
        self.done.iter().map(|(_, e)| e.faults.len()).sum()
    }
}

impl fmt::Display for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, episode) in &self.done {
            let faults: Vec<String> = episode.faults.iter().map(|x| x.to_string()).collect();
            writeln!(
                f,
                "  at {:>6.1}s: {} for {} ms, then {} ms quiet",
                at.as_secs_f64(),
                faults.join(" + "),
                episode.hold_ms,
                episode.quiet_ms
            )?;
        }
        Ok(())
    }
}

/// Runs episodes against the cluster until the schedule or `until` ends.
pub struct Nemesis<'a> {
    pub cluster: &'a mut ChaosCluster,
    pub log: Log,
}

impl Nemesis<'_> {
    pub fn run(&mut self, episodes: &[Episode], started: Instant, until: Instant) {
        for episode in episodes {
            if Instant::now() + Duration::from_millis(episode.hold_ms) > until {
                break;
            }
            self.log.done.push((started.elapsed(), episode.clone()));
            for fault in &episode.faults {
                self.inflict(fault);
            }
            std::thread::sleep(Duration::from_millis(episode.hold_ms));
            self.cluster.heal_all();
            let quiet = Duration::from_millis(episode.quiet_ms);
            std::thread::sleep(quiet.min(until.saturating_duration_since(Instant::now())));
        }
    }

    fn inflict(&mut self, fault: &Fault) {
        match fault {
            Fault::Kill(i) => self.cluster.kill(*i),
            Fault::Pause(i) => self.cluster.pause(*i),
            Fault::Partition(side) => self.cluster.partition(side),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule_that_fills_the_run_and_never_hits_a_node_twice() {
        let a = schedule(7, 5, 60_000);
        assert_eq!(a, schedule(7, 5, 60_000));
        assert_ne!(a, schedule(8, 5, 60_000));
        let total: u64 = a.iter().map(|e| e.hold_ms + e.quiet_ms).sum();
        assert!(total >= 60_000, "{total}");
        for episode in &a {
            let hit: Vec<usize> = episode.faults.iter().flat_map(nodes_of).collect();
            let mut unique = hit.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(hit.len(), unique.len(), "{episode:?}");
            let partitions = episode
                .faults
                .iter()
                .filter(|f| matches!(f, Fault::Partition(_)))
                .count();
            assert!(partitions <= 1 && !episode.faults.is_empty(), "{episode:?}");
        }
        let kinds = |f: fn(&Fault) -> bool| a.iter().flat_map(|e| &e.faults).any(f);
        assert!(kinds(|f| matches!(f, Fault::Kill(_))));
        assert!(kinds(|f| matches!(f, Fault::Pause(_))));
        assert!(kinds(|f| matches!(f, Fault::Partition(_))));
    }
}
