//! Benchmark: anti-entropy bringing one stale replica back (issue 7, F5).
//!
//! The scenario: 1,000,000 keys on a 3-node cluster (N = 3, so every
//! node holds every key), 1% of the keys missing or stale on one replica;
//! report the time to converge and the bytes exchanged next to the bytes of
//! a full copy (target: under 5%).
//!
//! How: the objects are written straight into three fjall databases before
//! any node starts (fjall, the engine `ringkv serve` runs, so the start-up
//! tree rebuild reads real files, not a `BTreeMap`). Every key holds a
//! two-version history on n1 and n2 (dot `n1:2` superseding `n1:1`); on n3,
//! 0.5% of the keys are missing and 0.5% hold only the older version. Then
//! three real nodes run in this process (`ringkv_node::run`, loopback TCP,
//! HTTP on for `/metrics`), with a short `anti_entropy_interval_ms` and an
//! effectively unlimited `anti_entropy_bytes_per_sec`, so the time measured
//! is the protocol's, not the bandwidth cap's. The exchange limits are the
//! node's defaults unless flags change them.
//!
//! Measured: the tree rebuild of one node's data (`PartitionTrees::rebuild`
//! timed directly, warm page cache), the nodes' start until all three are
//! ready (each rebuilds its trees), the time from ready until every
//! partition's anti-entropy root is equal on all three nodes (polled over
//! RPC as a client), and the sum of every node's `ringkv_anti_entropy_bytes`
//! counters (tree questions and answers, key summaries and repaired
//! objects), next to a full copy: the storage keys plus encoded objects of
//! one replica. At the end, every affected key is read back from n3's
//! storage and must equal the newest version.
//!
//! The pieces: `data.rs` (the keys, the damage, loading and the final
//! check), `cluster.rs` (the nodes and what the bench asks them),
//! `report.rs` (the table).
//!
//! Run: `cargo bench -p ringkv-node --bench anti_entropy` (1,000,000 keys),
//! or `... -- --keys 20000` for a smoke run; `--help` lists the flags.
//! The nodes log to stderr at `RUST_LOG` (default `warn`; e.g.
//! `RUST_LOG=ringkv_node::anti_entropy=debug` shows failed exchanges).
//! Without `--bench` (test runs, nextest's listing) it does nothing. Plain
//! `std::time::Instant`: this is a bench, not node source.

use cluster::{AeSettings, Cluster};
use ringkv_core::anti_entropy::ExchangeLimits;
use ringkv_node::partition_trees::PartitionTrees;
use ringkv_storage::FjallStorage;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod cluster;
#[path = "../common/mod.rs"]
mod common;
mod data;
mod report;

const HELP: &str = "\
anti_entropy: time and bytes for anti-entropy to repair 1% of one replica
  --keys N            keys on each replica (default 1000000)
  --value-bytes B     bytes per value (default 100)
  --partitions Q      partitions (default 256)
  --interval-ms MS    anti_entropy_interval_ms (default 100)
  --recheck-ms MS     exchange re-check pause (default: the node's, 5000)
  --max-keys K        keys per exchange (default: the node's, 1024)
  --timeout-s S       give up after S seconds of waiting (default 7200)
  --dir PATH          where the three databases go (default: a temp dir)";

/// The bench's settings.
#[derive(Debug, Clone)]
pub struct Args {
    pub keys: u64,
    pub value_bytes: usize,
    pub ae: AeSettings,
    pub timeout: Duration,
    pub dir: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        keys: 1_000_000,
        value_bytes: 100,
        ae: AeSettings {
            partitions: ringkv_core::layout::DEFAULT_PARTITIONS,
            interval_ms: 100,
            limits: ExchangeLimits::default(),
        },
        timeout: Duration::from_secs(7200),
        dir: None,
    };
    common::parse_flags(HELP, |flag, value| {
        let number = || common::number(flag, value);
        match flag {
            "--keys" => args.keys = number()?.max(200),
            "--value-bytes" => args.value_bytes = number()? as usize,
            "--partitions" => args.ae.partitions = number()? as u32,
            "--interval-ms" => args.ae.interval_ms = number()?.max(1),
            "--recheck-ms" => args.ae.limits.recheck_after_ms = number()?,
            "--max-keys" => args.ae.limits.max_keys = number()?.max(1) as usize,
            "--timeout-s" => args.timeout = Duration::from_secs(number()?),
            "--dir" => args.dir = Some(value.into()),
            _ => return Err(format!("unknown flag {flag}\n{HELP}")),
        }
        Ok(())
    })?;
    Ok(args)
}

fn main() -> ExitCode {
    common::main_with("anti_entropy", parse_args, run)
}

/// Load, rebuild once, start, wait for convergence, read the counters,
/// check n3, stop, report.
async fn run(args: Args) -> Result<(), String> {
    let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().into());
    let configs = cluster::configs(args.ae, &dir);
    let open = |i: usize| -> Result<Arc<FjallStorage>, String> {
        let path = &configs[i].data_dir;
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        FjallStorage::open(path)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    };
    let stores = [open(0)?, open(1)?, open(2)?];
    report::header(&args);

    let started = Instant::now();
    let loaded = data::load(&stores, args.keys, args.value_bytes);
    let load = started.elapsed();
    eprintln!("loaded in {load:.1?}; rebuilding one node's trees");
    let started = Instant::now();
    let settings = configs[0].settings();
    let (_, tree_keys) = PartitionTrees::rebuild(&*stores[0], args.ae.partitions, settings)
        .map_err(|e| e.to_string())?;
    let rebuild = started.elapsed();

    let started = Instant::now();
    let cluster = Cluster::start(configs, &stores).await;
    let start = started.elapsed();
    let Some((differing, converged)) = cluster.converged(args.timeout).await else {
        cluster.stop().await?;
        return Err(format!("not converged within {:?}", args.timeout));
    };
    let at_convergence = cluster.counters().await;
    // Exchanges still in their re-check pause finish within this.
    let limits = &args.ae.limits;
    let settle = Duration::from_millis(limits.recheck_after_ms + 3 * args.ae.interval_ms + 2000);
    tokio::time::sleep(settle).await;
    let settled = cluster.counters().await;
    let checked = data::check_n3(&stores[2], args.keys, args.value_bytes)?;
    cluster.stop().await?;

    report::table(&report::Measured {
        loaded,
        load,
        tree_keys,
        rebuild,
        start,
        partitions: args.ae.partitions,
        differing,
        converged,
        at_convergence,
        settle,
        settled,
        checked,
    });
    Ok(())
}
