//! `ringkv`: the command line.
//!
//! - `ringkv serve` runs one node ([`serve`]).
//! - `ringkv dev` starts a local cluster of `serve` processes ([`dev`]).
//! - `ringkv get|put|delete` are a client for people and scripts ([`kv_cmd`]).
//! - `ringkv admin` watches and changes membership ([`admin_cmd`]).
//! - `ringkv bench` measures throughput and latency percentiles ([`bench`]).
//!
//! Errors leave through `anyhow` with context and a non-zero exit code.

mod admin_cmd;
mod bench;
mod dev;
mod http_access;
mod kv_cmd;
mod rebuild;
mod seal;
mod serve;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;

/// mimalloc instead of glibc malloc: a node allocates many small, short-lived
/// buffers across threads (frames, objects, HTTP bodies), where glibc spent
/// about a tenth of a node's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ringkv",
    version,
    about = "A leaderless, Dynamo-style distributed key-value store"
)]
struct Cli {
    /// Log filter (e.g. info, debug, ringkv_node=debug); RUST_LOG, when set, wins.
    #[arg(
        long,
        global = true,
        env = "RINGKV_LOG",
        default_value = "info,fjall=warn,lsm_tree=warn"
    )]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Serve(Box<serve::ServeArgs>),
    /// Start a local cluster of separate `serve` processes on 127.0.0.1.
    Dev(dev::DevArgs),
    /// Read a key: prints the context and every sibling (or --raw bytes, or --json).
    Get(kv_cmd::GetArgs),
    /// Write a value (from the argument, or piped on stdin); prints the new context.
    Put(kv_cmd::PutArgs),
    /// Delete a key; prints the tombstone's context.
    Delete(kv_cmd::DeleteArgs),
    /// Load a cluster and print throughput and latency percentiles.
    Bench(bench::BenchArgs),
    /// Watch and change membership: status, ring, join, decommission, remove.
    Admin(admin_cmd::AdminArgs),
}

fn init_logging(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Get(args) => kv_cmd::get(args).await,
            Command::Put(args) => kv_cmd::put(args).await,
            Command::Delete(args) => kv_cmd::delete(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Admin(args) => admin_cmd::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
