//! `ringkv bench`: closed-loop load against a cluster over HTTP.
//!
//! Every `--node` must first answer `GET /v1/health`, or the run stops at
//! once naming the nodes that did not. Then `--concurrency` workers each keep
//! one request in flight, round-robin over the nodes, until `--ops` are done.
//!
//! **No siblings pile up.** Each key has exactly one writer (worker `w` owns
//! every `workers`-th key), so workers never race on a key and the owner's
//! context is the key's latest version; when the run writes, the worker count
//! is capped at `--keys` for that reason. (A per-key lock would keep more
//! workers, but the extra ones would only measure waiting on the lock.) Each
//! key is read, untimed, before its first write, which carries that context,
//! so a run supersedes what earlier runs left. After a failed put (maybe
//! applied) the key is read again before its next put. This needs
//! `--r` + `--w` > N, as the cluster defaults are.
//!
//! **Only successes count** towards throughput and latency; failures are
//! counted by kind (HTTP status and code, or connection error), and the run
//! exits non-zero when their share is above `--max-error-rate` (default 0).

use anyhow::{bail, Result};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use ringkv_client::{Client, ClientError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod report;
use report::{Failures, Summary};

/// Most workers a run starts (each is a task with its own key table).
const MAX_CONCURRENCY: u64 = 10_000;
/// Largest `--value-size`: the value is held in memory once per run.
const MAX_VALUE_SIZE_BYTES: usize = 64 << 20;
/// How long each node has to answer the health check before the run.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The progress bar shows no ETA before the run has lasted this long...
const ETA_MIN_ELAPSED: Duration = Duration::from_secs(1);
/// ...and before this share of the operations is done, so the estimate
/// comes from a steady-state rate, not from the first few requests.
const ETA_MIN_DONE_FRACTION: f64 = 0.02;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Node URL; repeat to spread load over several nodes.
    #[arg(long = "node", default_value = "http://127.0.0.1:8001")]
    pub nodes: Vec<String>,
    /// Client token for a node started with --http-tokens-file (sent as
    /// `Authorization: Bearer`); not needed with `ringkv dev`.
    #[arg(long, env = "RINGKV_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Requests to send in total.
    #[arg(long, default_value_t = 100_000)]
    pub ops: u64,
    /// Requests in flight at once (capped at --keys when the run writes, so
    /// each key has one writer).
    #[arg(long, default_value_t = 50)]
    pub concurrency: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Fraction of requests that are reads (0.0 = puts only, 1.0 = gets only).
    #[arg(long, default_value_t = 0.0)]
    pub read_ratio: f64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    #[arg(long, default_value = "bench")]
    pub bucket: String,
    /// Read quorum per request (default: the cluster's).
    #[arg(long)]
    pub r: Option<usize>,
    /// Write quorum per request (default: the cluster's).
    #[arg(long)]
    pub w: Option<usize>,
    /// Largest share of failed requests (0..=1) that still exits 0; the
    /// default 0 fails the run on any failed request.
    #[arg(long, default_value_t = 0.0)]
    pub max_error_rate: f64,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print the result as one JSON object on stdout (ops/s and p50, p99,
    /// p99.9 and max in ms per operation, and failures by kind), for
    /// scripts; progress and notes stay on stderr.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.read_ratio) {
            bail!("--read-ratio must be between 0 and 1");
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            bail!("--max-error-rate must be between 0 and 1");
        }
        if self.concurrency == 0 || self.keys == 0 || self.nodes.is_empty() {
            bail!("--concurrency, --keys and --node must be non-empty");
        }
        if self.concurrency > MAX_CONCURRENCY {
            bail!("--concurrency must be at most {MAX_CONCURRENCY}");
        }
        if self.value_size > MAX_VALUE_SIZE_BYTES {
            bail!("--value-size must be at most {MAX_VALUE_SIZE_BYTES} bytes");
        }
        Ok(())
    }

    /// Whether any request of the run is a write.
    fn writes(&self) -> bool {
        self.read_ratio < 1.0
    }
}

/// How many workers run: `--concurrency`, capped at `--keys` when the run
/// writes, so every worker owns at least one key and no key has two writers.
fn worker_count(concurrency: u64, keys: u64, writes: bool) -> u64 {
    if writes {
        concurrency.min(keys)
    } else {
        concurrency
    }
}

/// The keys worker `w` of `workers` writes: every `workers`-th key, so each
/// key has exactly one writer.
fn own_keys(w: u64, workers: u64, keys: u64) -> Vec<u64> {
    (w..keys).step_by(workers.max(1) as usize).collect()
}

fn key_of(i: u64) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

/// The kind a failure is counted under.
fn kind_of(e: &ClientError) -> String {
    match e {
        ClientError::Status { status, code, .. } => format!("HTTP {status} {code}"),
        ClientError::Transport(m) => format!("connection error ({m})"),
        ClientError::BadResponse(_) => "unexpected response".to_string(),
        ClientError::BadUrl(_) => "bad node URL".to_string(),
        ClientError::BadToken => "bad client token".to_string(),
    }
}

impl Failures {
    fn record(&mut self, e: &ClientError) {
        let entry = self
            .by_kind
            .entry(kind_of(e))
            .or_insert_with(|| (0, e.to_string()));
        entry.0 += 1;
    }

    fn merge(&mut self, other: Failures) {
        for (kind, (n, first)) in other.by_kind {
            self.by_kind.entry(kind).or_insert((0, first)).0 += n;
        }
    }
}

/// One worker: its keys and what it knows of each. An entry means the key
/// was read (or written) in this run; `None` inside means it does not exist.
struct Worker {
    client: Client,
    keys: Vec<u64>,
    contexts: HashMap<u64, Option<String>>,
}

impl Worker {
    /// Reads key `i` to learn its context, so the next put supersedes it.
    async fn learn(&mut self, args: &BenchArgs, i: u64) -> Result<(), ClientError> {
        let fetched = self.client.get(&args.bucket, &key_of(i), args.r).await?;
        self.contexts.insert(i, fetched.and_then(|f| f.context));
        Ok(())
    }

    /// Writes key `i` with the context of what this run last saw of it,
    /// reading it first if this run has not.
    async fn put(&mut self, args: &BenchArgs, i: u64, value: &Bytes) -> Result<(), ClientError> {
        if !self.contexts.contains_key(&i) {
            self.learn(args, i).await?;
        }
        let context = self.contexts.get(&i).cloned().flatten();
        let key = key_of(i);
        let put = self.client.put(
            &args.bucket,
            &key,
            value.clone(),
            context.as_deref(),
            args.w,
        );
        match put.await {
            Ok(new) => {
                self.contexts.insert(i, Some(new));
                Ok(())
            }
            Err(e) => {
                // The write may have been applied: read again before the next.
                self.contexts.remove(&i);
                Err(e)
            }
        }
    }
}

/// Untimed preparation: read every owned key (and, when the run reads,
/// write it so reads find it). Returns the worker, the requests sent and
/// the failures; a key that could not be read is read again before its
/// first timed write.
async fn prepare(
    args: Arc<BenchArgs>,
    mut worker: Worker,
    value: Bytes,
) -> (Worker, u64, Failures) {
    let (mut sent, mut failures) = (0, Failures::default());
    for i in worker.keys.clone() {
        sent += 1;
        if let Err(e) = worker.learn(&args, i).await {
            failures.record(&e);
            continue;
        }
        if args.read_ratio > 0.0 {
            sent += 1;
            if let Err(e) = worker.put(&args, i, &value).await {
                failures.record(&e);
            }
        }
    }
    (worker, sent, failures)
}

struct Tally {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    failures: Failures,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits; these bounds are always valid.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

async fn measure(
    args: Arc<BenchArgs>,
    mut worker: Worker,
    next: Arc<AtomicU64>,
    value: Bytes,
    seed: u64,
    bar: ProgressBar,
) -> Tally {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally {
        reads: histogram(),
        writes: histogram(),
        failures: Failures::default(),
    };
    while next.fetch_add(1, Ordering::Relaxed) < args.ops {
        let read = worker.keys.is_empty() || rng.f64() < args.read_ratio;
        let started = Instant::now();
        let result = if read {
            let key = key_of(rng.u64(0..args.keys));
            let get = worker.client.get(&args.bucket, &key, args.r);
            get.await.map(|_| ())
        } else {
            let i = worker.keys[rng.usize(0..worker.keys.len())];
            worker.put(&args, i, &value).await
        };
        let micros = started.elapsed().as_micros().clamp(1, 60_000_000) as u64;
        match result {
            Ok(()) if read => tally.reads.saturating_record(micros),
            Ok(()) => tally.writes.saturating_record(micros),
            Err(e) => tally.failures.record(&e),
        }
        bar.inc(1);
    }
    tally
}

/// Fails at once, naming every node that does not answer `GET /v1/health`.
async fn check_health(nodes: &[String], clients: &[Client], timeout: Duration) -> Result<()> {
    let checks = nodes.iter().zip(clients).map(|(url, client)| async move {
        match tokio::time::timeout(timeout, client.health()).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("{url}: {e}")),
            Err(_) => Some(format!(
                "{url}: no answer within {} ms",
                timeout.as_millis()
            )),
        }
    });
    let bad: Vec<String> = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect();
    if !bad.is_empty() {
        bail!(
            "nothing was loaded: {} of {} nodes did not answer GET /v1/health:\n  {}\n\
             start the cluster (e.g. `ringkv dev`) or pass only --node URLs of running nodes",
            bad.len(),
            nodes.len(),
            bad.join("\n  ")
        );
    }
    Ok(())
}

/// The time left at the run's average rate so far, or None while the run
/// is too young for that rate to mean anything.
fn steady_eta(done: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    let young = elapsed < ETA_MIN_ELAPSED || (done as f64) < total as f64 * ETA_MIN_DONE_FRACTION;
    if done == 0 || young {
        return None;
    }
    let per_op = elapsed.as_secs_f64() / done as f64;
    Some(Duration::from_secs_f64(
        total.saturating_sub(done) as f64 * per_op,
    ))
}

fn progress_bar(args: &BenchArgs) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(args.ops);
    let style =
        ProgressStyle::with_template("{bar:40} {pos}/{len} ops  {avg_rate}  eta {eta_steady}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "avg_rate",
                |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let secs = s.elapsed().as_secs_f64();
                    let _ = if secs > 0.0 {
                        write!(w, "{:.0} ops/s", s.pos() as f64 / secs)
                    } else {
                        write!(w, "- ops/s")
                    };
                },
            )
            .with_key(
                "eta_steady",
                |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let eta = steady_eta(s.pos(), s.len().unwrap_or(0), s.elapsed());
                    let _ = match eta.map(|d| d.as_secs()) {
                        None => write!(w, "-"),
                        Some(s) if s >= 60 => write!(w, "{}m{:02}s", s / 60, s % 60),
                        Some(s) => write!(w, "{s}s"),
                    };
                },
            );
    bar.set_style(style);
    bar
}

pub async fn run(args: BenchArgs) -> Result<()> {
    args.validate()?;
    let clients = args
        .nodes
        .iter()
        .map(|n| Client::new(n)?.with_token(args.token.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    check_health(&args.nodes, &clients, HEALTH_CHECK_TIMEOUT).await?;
    let workers = worker_count(args.concurrency, args.keys, args.writes());
    if workers < args.concurrency && !args.quiet {
        eprintln!(
            "--concurrency {} capped at --keys {workers}: each key has one writer, so puts never race",
            args.concurrency
        );
    }
    let value = Bytes::from(vec![b'x'; args.value_size]);
    let args = Arc::new(args);
    let mut pool: Vec<Worker> = (0..workers)
        .map(|w| Worker {
            client: clients[w as usize % clients.len()].clone(),
            keys: own_keys(w, workers, args.keys),
            contexts: HashMap::new(),
        })
        .collect();
    let (mut failures, mut requests) = (Failures::default(), 0);
    if !args.quiet {
        eprintln!("reading each key before its first write (untimed)...");
    }
    let tasks: Vec<_> = pool
        .into_iter()
        .map(|w| tokio::spawn(prepare(args.clone(), w, value.clone())))
        .collect();
    pool = Vec::new();
    for t in tasks {
        let (worker, sent, failed) = t.await?;
        pool.push(worker);
        requests += sent;
        failures.merge(failed);
    }
    let bar = progress_bar(&args);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = pool
        .into_iter()
        .enumerate()
        .map(|(w, worker)| {
            let seed = w as u64 + 1;
            let task = measure(
                args.clone(),
                worker,
                next.clone(),
                value.clone(),
                seed,
                bar.clone(),
            );
            tokio::spawn(task)
        })
        .collect();
    let (mut reads, mut writes) = (histogram(), histogram());
    for task in tasks {
        let t = task.await?;
        reads.add(&t.reads)?;
        writes.add(&t.writes)?;
        failures.merge(t.failures);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    requests += args.ops;
    let summary = Summary {
        ops: args.ops,
        elapsed,
        workers,
        value_size: args.value_size,
        keys: args.keys,
        read_ratio: args.read_ratio,
        reads: &reads,
        writes: &writes,
        failures: &failures,
        requests,
    };
    if args.json {
        println!("{}", summary.to_json());
    } else {
        summary.print_text();
    }
    let rate = failures.total() as f64 / requests.max(1) as f64;
    if rate > args.max_error_rate {
        bail!(
            "{} of {requests} requests failed ({:.2}%), above --max-error-rate {}",
            failures.total(),
            rate * 100.0,
            args.max_error_rate
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_exactly_one_writer() {
        assert_eq!(own_keys(1, 4, 10), vec![1, 5, 9]);
        let mut all: Vec<u64> = (0..4).flat_map(|w| own_keys(w, 4, 10)).collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn writers_are_capped_at_the_key_count() {
        assert_eq!(worker_count(50, 10, true), 10);
        assert_eq!(worker_count(50, 10, false), 50, "reads alone never race");
        assert_eq!(worker_count(4, 10, true), 4);
        let workers = worker_count(50, 10, true);
        assert!((0..workers).all(|w| !own_keys(w, workers, 10).is_empty()));
    }

    #[test]
    fn eta_is_hidden_until_the_rate_is_steady() {
        let total = 1000;
        assert_eq!(steady_eta(0, total, Duration::from_secs(5)), None);
        assert_eq!(steady_eta(500, total, Duration::from_millis(200)), None);
        assert_eq!(steady_eta(1, total, Duration::from_secs(2)), None);
        let eta = steady_eta(500, total, Duration::from_secs(6)).unwrap();
        assert_eq!(eta.as_secs(), 6);
        assert_eq!(
            steady_eta(total, total, Duration::from_secs(12)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn failures_are_counted_by_kind() {
        let mut f = Failures::default();
        let busy = ClientError::Status {
            status: 503,
            code: "quorum_unavailable".into(),
            message: "needed 3".into(),
        };
        f.record(&busy);
        f.record(&busy);
        let mut other = Failures::default();
        other.record(&ClientError::Transport(ringkv_client::TransportError {
            node: "http://127.0.0.1:1".into(),
            kind: ringkv_client::TransportKind::Refused,
        }));
        f.merge(other);
        assert_eq!(f.total(), 3);
        assert_eq!(f.by_kind["HTTP 503 quorum_unavailable"].0, 2);
        assert_eq!(
            f.by_kind["connection error (http://127.0.0.1:1: connection refused)"].0,
            1
        );
    }

    #[tokio::test]
    async fn a_node_that_never_answers_fails_the_health_check_in_time() {
        // Accepted by the kernel's backlog, never answered.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let client = Client::new(&url).unwrap();
        let started = Instant::now();
        let timeout = Duration::from_millis(200);
        let e = check_health(std::slice::from_ref(&url), &[client], timeout)
            .await
            .unwrap_err()
            .to_string();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            e.contains(&url) && e.contains("no answer within 200 ms"),
            "{e}"
        );
        assert!(HEALTH_CHECK_TIMEOUT <= Duration::from_secs(5));
    }

    #[test]
    fn options_out_of_range_are_refused() {
        let mut args = BenchArgs {
            nodes: vec!["http://127.0.0.1:1".into()],
            token: None,
            ops: 1,
            concurrency: 1,
            value_size: 1,
            read_ratio: 0.0,
            keys: 1,
            bucket: "b".into(),
            r: None,
            w: None,
            max_error_rate: 0.0,
            quiet: true,
            json: false,
        };
        assert!(args.validate().is_ok());
        for bad in [-0.1, 1.5, f64::NAN] {
            args.max_error_rate = bad;
            let e = args.validate().unwrap_err().to_string();
            assert!(e.contains("--max-error-rate"), "{e}");
        }
        args.max_error_rate = 1.0;
        assert!(args.validate().is_ok());
        let refused = |a: &BenchArgs, flag| a.validate().unwrap_err().to_string().contains(flag);
        args.concurrency = MAX_CONCURRENCY + 1;
        assert!(refused(&args, "--concurrency"));
        args.concurrency = MAX_CONCURRENCY;
        args.value_size = MAX_VALUE_SIZE_BYTES + 1;
        assert!(refused(&args, "--value-size"));
    }
}
