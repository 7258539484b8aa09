//! What the node benches share: the `--bench` guard, logging to stderr,
//! a tokio runtime, and free loopback ports. Included by each bench with
//! `#[path]`; bench support only.

use std::future::Future;
use std::process::ExitCode;

/// Runs a bench: nothing unless cargo passed `--bench` (test runs and
/// nextest's listing do not, and a million-key run is not a test); else
/// parses the flags, logs to stderr at `RUST_LOG` (default `warn`), and
/// runs `run` on a multi-threaded runtime.
pub fn main_with<A, Fut>(
    name: &str,
    parse: impl FnOnce() -> Result<A, String>,
    run: impl FnOnce(A) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = Result<(), String>>,
{
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{name} bench failed: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `count` free loopback ports: all bound at once, then released (another
/// process could take one before a node binds it; good enough for a bench).
pub fn free_ports(count: usize) -> Vec<u16> {
    let held: Vec<_> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

/// Walks the command line's `--flag value` pairs (skipping cargo's
/// `--bench`), handing each to `set`; `--help` or a flag without a value
/// is an error carrying `help`.
pub fn parse_flags(
    help: &str,
    mut set: impl FnMut(&str, &str) -> Result<(), String>,
) -> Result<(), String> {
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(help.into());
        }
        let value = it.next().ok_or(format!("{flag} needs a value\n{help}"))?;
        set(&flag, &value)?;
    }
    Ok(())
}

/// A flag's value as a number (`_` separators allowed).
pub fn number(flag: &str, value: &str) -> Result<u64, String> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{flag} {value:?}: expected a number"))
}
