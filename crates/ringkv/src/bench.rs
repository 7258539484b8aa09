//! `ringkv bench`: closed-loop load against a cluster over HTTP.
//!
//! `--concurrency` workers each keep one request in flight, spread round-robin
//! over the `--node` URLs, until `--ops` requests are done. Reads draw keys
//! uniformly from `--keys`; each worker writes its own share of the keys and
//! passes back the context of its previous write, as a real client would, so
//! puts overwrite instead of piling up siblings. With `--read-ratio` > 0 every
//! key is written once first so reads find it. Prints throughput and p50/p99/p99.9/max latency
//! per operation, and the number of errors (which are not timed).

use anyhow::{bail, Result};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use ringkv_client::Client;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Node URL; repeat to spread load over several nodes.
    #[arg(long = "node", default_value = "http://127.0.0.1:8001")]
    pub nodes: Vec<String>,
    /// Requests to send in total.
    #[arg(long, default_value_t = 100_000)]
    pub ops: u64,
    /// Requests in flight at once.
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
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

struct Tally {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits; these bounds are always valid.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn key_of(i: u64) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

/// The keys worker `w` writes: every `concurrency`-th key, so each key has
/// one writer and a put can carry the context of that writer's last put
/// (a real client's read-modify-write, without siblings piling up).
fn own_keys(w: u64, concurrency: u64, keys: u64) -> Vec<u64> {
    let own: Vec<u64> = (w..keys).step_by(concurrency as usize).collect();
    if own.is_empty() {
        vec![w % keys]
    } else {
        own
    }
}

/// One worker: its keys and the last context it got for each.
struct Worker {
    client: Client,
    keys: Vec<u64>,
    contexts: HashMap<u64, String>,
}

impl Worker {
    async fn put(
        &mut self,
        args: &BenchArgs,
        i: u64,
        value: &Bytes,
    ) -> Result<(), ringkv_client::ClientError> {
        let context = self.contexts.get(&i).map(String::as_str);
        let new = self
            .client
            .put(&args.bucket, &key_of(i), value.clone(), context, args.w)
            .await?;
        self.contexts.insert(i, new);
        Ok(())
    }
}

async fn populate(args: Arc<BenchArgs>, mut worker: Worker, value: Bytes) -> Result<Worker> {
    for i in worker.keys.clone() {
        worker.put(&args, i, &value).await?;
    }
    Ok(worker)
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
        errors: 0,
        first_error: None,
    };
    while next.fetch_add(1, Ordering::Relaxed) < args.ops {
        let read = rng.f64() < args.read_ratio;
        let started = Instant::now();
        let result = if read {
            let key = key_of(rng.u64(0..args.keys));
            worker
                .client
                .get(&args.bucket, &key, args.r)
                .await
                .map(|_| ())
        } else {
            let i = worker.keys[rng.usize(0..worker.keys.len())];
            worker.put(&args, i, &value).await
        };
        let micros = started.elapsed().as_micros().clamp(1, 60_000_000) as u64;
        match result {
            Ok(()) => {
                let h = if read {
                    &mut tally.reads
                } else {
                    &mut tally.writes
                };
                h.saturating_record(micros);
            }
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| e.to_string());
            }
        }
        bar.inc(1);
    }
    tally
}

fn report(name: &str, h: &Histogram<u64>, elapsed: Duration) {
    if h.is_empty() {
        return;
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<5} {:>9} ops  {:>9.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  max {:>7.2} ms",
        h.len(),
        h.len() as f64 / elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
}

pub async fn run(args: BenchArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.read_ratio) {
        bail!("--read-ratio must be between 0 and 1");
    }
    if args.concurrency == 0 || args.keys == 0 || args.nodes.is_empty() {
        bail!("--concurrency, --keys and --node must be non-empty");
    }
    let clients = args
        .nodes
        .iter()
        .map(|n| Client::new(n))
        .collect::<Result<Vec<_>, _>>()?;
    let value = Bytes::from(vec![b'x'; args.value_size]);
    let args = Arc::new(args);
    let mut workers: Vec<Worker> = (0..args.concurrency)
        .map(|w| Worker {
            client: clients[w as usize % clients.len()].clone(),
            keys: own_keys(w, args.concurrency, args.keys),
            contexts: HashMap::new(),
        })
        .collect();
    if args.read_ratio > 0.0 {
        eprintln!("writing {} keys first so reads find them...", args.keys);
        let tasks: Vec<_> = workers
            .into_iter()
            .map(|w| tokio::spawn(populate(args.clone(), w, value.clone())))
            .collect();
        workers = Vec::new();
        for t in tasks {
            workers.push(t.await??);
        }
    }
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.ops)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} ops  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(w, worker)| {
            tokio::spawn(measure(
                args.clone(),
                worker,
                next.clone(),
                value.clone(),
                w as u64 + 1,
                bar.clone(),
            ))
        })
        .collect();
    let (mut reads, mut writes, mut errors, mut first_error) = (histogram(), histogram(), 0, None);
    for task in tasks {
        let t = task.await?;
        reads.add(&t.reads)?;
        writes.add(&t.writes)?;
        errors += t.errors;
        first_error = first_error.or(t.first_error);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    println!(
        "{} ops in {:.2} s: {:.0} ops/s total ({} workers, {}-byte values, {} keys, read ratio {})",
        args.ops,
        elapsed.as_secs_f64(),
        args.ops as f64 / elapsed.as_secs_f64(),
        args.concurrency,
        args.value_size,
        args.keys,
        args.read_ratio
    );
    report("get", &reads, elapsed);
    report("put", &writes, elapsed);
    println!(
        "errors {errors}{}",
        first_error
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_split_the_keys_and_never_come_up_empty() {
        assert_eq!(own_keys(1, 4, 10), vec![1, 5, 9]);
        let all: Vec<u64> = (0..4).flat_map(|w| own_keys(w, 4, 10)).collect();
        assert_eq!(all.len(), 10, "every key has exactly one writer");
        assert_eq!(
            own_keys(7, 50, 3),
            vec![1],
            "more workers than keys: share one"
        );
    }
}
