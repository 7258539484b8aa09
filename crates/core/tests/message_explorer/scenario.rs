//! What one seed runs: the cluster (3–6 nodes), N/R/W, the clients, and the
//! network's faults: message drop, delay (so reordering), duplication, and
//! partitions (one node isolated, or two halves) over time windows.

use super::draw::Draw;
use std::fmt;

/// A cut of the network during `[from_ms, to_ms)`: the nodes `inside` say
/// yes to cannot exchange messages with the others.
#[derive(Debug, Clone)]
pub struct Cut {
    pub from_ms: u64,
    pub to_ms: u64,
    /// Bit i set: node i is on one side.
    pub side: u32,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub nodes: usize,
    pub n: usize,
    pub r: usize,
    pub w: usize,
    pub clients: usize,
    pub keys: usize,
    pub ops_per_client: usize,
    /// Percent of messages lost (a lost request shows as silence, or half
    /// the time as a lost connection).
    pub drop_percent: u64,
    /// Percent of messages delivered twice.
    pub dup_percent: u64,
    /// Each message takes 1..=max_delay_ms, so messages overtake each other.
    pub max_delay_ms: u64,
    pub cuts: Vec<Cut>,
}

impl Scenario {
    pub fn of(seed: u64) -> Scenario {
        let mut d = Draw::new(seed);
        let nodes = d.range(3, 6) as usize;
        let n = d.range(2, 3.min(nodes as u64)) as usize;
        let r = d.range(1, n as u64) as usize;
        let w = d.range(1, n as u64) as usize;
        let mut cuts = Vec::new();
        for _ in 0..d.below(4) {
            let from_ms = d.range(0, 6000);
            let side = if d.chance(50) {
                1 << d.below(nodes as u64)
            } else {
                (d.range(1, (1 << nodes) - 2)) as u32
            };
            cuts.push(Cut {
                from_ms,
                to_ms: from_ms + d.range(200, 4000),
                side,
            });
        }
        Scenario {
            seed,
            nodes,
            n,
            r,
            w,
            clients: d.range(1, 3) as usize,
            keys: d.range(1, 2) as usize,
            ops_per_client: d.range(15, 40) as usize,
            drop_percent: d.below(20),
            dup_percent: d.below(20),
            max_delay_ms: d.range(1, 80),
            cuts,
        }
    }

    /// Whether two quorum reads must overlap a write's quorum and each
    /// other (R + W > N and R + R > N): then an element a read returned is
    /// in every read that starts after it ended.
    pub fn monotonic(&self) -> bool {
        self.r + self.w > self.n && 2 * self.r > self.n
    }

    /// Whether nodes `a` and `b` (indexes) are cut apart at `now_ms`.
    pub fn cut(&self, a: usize, b: usize, now_ms: u64) -> bool {
        self.cuts.iter().any(|c| {
            (c.from_ms..c.to_ms).contains(&now_ms) && ((c.side >> a) & 1) != ((c.side >> b) & 1)
        })
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} nodes, N={} R={} W={}, {} clients x {} ops on {} keys, drop {}%, dup {}%, delay <= {} ms, cuts {:?}",
            self.seed,
            self.nodes,
            self.n,
            self.r,
            self.w,
            self.clients,
            self.ops_per_client,
            self.keys,
            self.drop_percent,
            self.dup_percent,
            self.max_delay_ms,
            self.cuts
        )
    }
}
