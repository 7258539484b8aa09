//! What one seed explores: the cluster, its quorums, the clocks, the faults
//! and when they strike, all drawn from the seed (splitmix64), so a seed
//! names one run exactly.

use std::fmt;

/// A seeded source of choices.
pub struct Draw(u64);

impl Draw {
    pub fn new(seed: u64) -> Draw {
        Draw(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    pub fn range(&mut self, from: u64, to_inclusive: u64) -> u64 {
        from + self.below(to_inclusive - from + 1)
    }
}

/// One fault, at a time in milliseconds after the load starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Cut the cluster in two halves (nodes by index).
    Halves(Vec<usize>),
    /// Cut everyone from node `i` but one bridge node that still sees both.
    Bridge { isolated: Vec<usize>, bridge: usize },
    /// Cut node `i` from every other node.
    Isolate(usize),
    /// Heal every cut.
    Heal,
    /// Power loss of node `i` (a random subset of its unsynced batches
    /// lost, chosen by [`Scenario::power_loss_seed`]), restarted later.
    Crash(usize),
    /// Restart a crashed node.
    Restart(usize),
    /// A new node joins through a seed.
    Join,
    /// Node `i` is decommissioned.
    Decommission(usize),
    /// Node `i`'s next fsync fails (EIO): it must stop acknowledging
    /// writes; a power loss and a restart follow.
    FailSync(usize),
    /// Node `node`'s wall clock jumps by `by_ms` (either way).
    ClockJump { node: usize, by_ms: i64 },
}

/// Everything one seed decides.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub nodes: usize,
    pub n: usize,
    pub r: usize,
    pub w: usize,
    /// Per node, how far its wall clock is off (ms, may be negative).
    pub skews_ms: Vec<i64>,
    /// Per simulated link, the most latency (ms).
    pub max_latency_ms: u64,
    pub faults: Vec<(u64, Fault)>,
    /// Clients per set key, and set keys.
    pub set_clients: usize,
    pub set_keys: usize,
    /// Operations each client makes.
    pub ops_per_client: usize,
    /// Seeds which unsynced batches a power loss keeps
    /// (`MemStorage::crash_keeping`), mixed with the node and its crash count.
    pub power_loss_seed: u64,
}

impl Scenario {
    pub fn of(seed: u64) -> Scenario {
        let mut d = Draw::new(seed);
        let nodes = d.range(3, 7) as usize;
        let n = d.range(2, 3.min(nodes as u64)) as usize;
        let r = d.range(1, n as u64) as usize;
        let w = d.range(1, n as u64) as usize;
        let skews_ms = (0..nodes)
            .map(|_| d.range(0, 120_000) as i64 - 60_000)
            .collect();
        let max_latency_ms = d.range(5, 60);
        let mut faults = Vec::new();
        let mut at = 0;
        let mut crashed: Option<usize> = None;
        let mut membership_changed = false;
        for _ in 0..d.range(2, 6) {
            at += d.range(500, 3000);
            let fault = match d.below(8) {
                0 | 1 => {
                    let mut half: Vec<usize> = (0..nodes).filter(|_| d.below(2) == 0).collect();
                    if half.is_empty() || half.len() == nodes {
                        half = vec![0];
                    }
                    Fault::Halves(half)
                }
                2 => {
                    let bridge = d.below(nodes as u64) as usize;
                    let isolated = (0..nodes)
                        .filter(|i| *i != bridge && d.below(2) == 0)
                        .collect::<Vec<_>>();
                    if isolated.is_empty() {
                        Fault::Isolate((bridge + 1) % nodes)
                    } else {
                        Fault::Bridge { isolated, bridge }
                    }
                }
                3 => Fault::Isolate(d.below(nodes as u64) as usize),
                4 => Fault::Heal,
                5 if crashed.is_none() => {
                    let i = d.below(nodes as u64) as usize;
                    crashed = Some(i);
                    Fault::Crash(i)
                }
                6 if !membership_changed => {
                    membership_changed = true;
                    if nodes > n + 1 && d.below(2) == 0 {
                        Fault::Decommission(d.below(nodes as u64) as usize)
                    } else {
                        Fault::Join
                    }
                }
                _ => match crashed.take() {
                    Some(i) => Fault::Restart(i),
                    None => Fault::Heal,
                },
            };
            faults.push((at, fault));
        }
        if let Some(i) = crashed {
            faults.push((at + 500, Fault::Restart(i)));
        }
        // Drawn apart, so adding them changed no other choice.
        let mut e = Draw::new(seed ^ 0x5EED_FA17);
        let last = at.max(1000);
        if e.below(100) < 40 {
            let node = e.below(nodes as u64) as usize;
            let by_ms = e.range(1_000, 120_000) as i64 * if e.below(2) == 0 { 1 } else { -1 };
            faults.push((e.range(500, last), Fault::ClockJump { node, by_ms }));
        }
        let untouched: Vec<usize> = (0..nodes)
            .filter(|i| {
                !faults.iter().any(|(_, f)| {
                    matches!(f, Fault::Crash(j) | Fault::Restart(j) | Fault::Decommission(j) if j == i)
                })
            })
            .collect();
        if !untouched.is_empty() && e.below(100) < 30 {
            let i = untouched[e.below(untouched.len() as u64) as usize];
            let t = e.range(500, last);
            let power_loss = t + e.range(500, 2000);
            faults.push((t, Fault::FailSync(i)));
            faults.push((power_loss, Fault::Crash(i)));
            faults.push((power_loss + 500, Fault::Restart(i)));
        }
        faults.sort_by_key(|(t, _)| *t);
        Scenario {
            seed,
            nodes,
            n,
            r,
            w,
            skews_ms,
            max_latency_ms,
            faults,
            set_clients: d.range(1, 3) as usize,
            set_keys: d.range(1, 3) as usize,
            ops_per_client: d.range(8, 20) as usize,
            // A draw of its own, so adding it changed no other choice.
            power_loss_seed: Draw::new(seed ^ 0x0B1A_C0C7).next(),
        }
    }

    /// The seed of the power loss of node `i` that is its `crashes`-th.
    pub fn power_loss_seed_of(&self, i: usize, crashes: u64) -> u64 {
        self.power_loss_seed ^ (i as u64) ^ crashes.rotate_left(32)
    }

    /// Whether a value a quorum read returned can never be hidden from a
    /// later one: repair is blocking (R + W > N) and two reads overlap
    /// (R + R > N). See docs/consistency.md, "monotonic quorum reads".
    pub fn monotonic(&self) -> bool {
        self.r + self.w > self.n && 2 * self.r > self.n
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} nodes, N={} R={} W={}, skews {:?} ms, latency <= {} ms, faults {:?}",
            self.seed,
            self.nodes,
            self.n,
            self.r,
            self.w,
            self.skews_ms,
            self.max_latency_ms,
            self.faults
        )
    }
}
