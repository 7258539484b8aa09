//! `ringkv get|put|delete`: a client for people at a terminal and for scripts.
//!
//! `get` prints the context first, then each sibling with its write time:
//! text values as text, binary ones as `base64:…`. For scripts, `--raw`
//! writes one value's bytes exactly and `--json` the node's JSON form. `put`
//! and `delete` print the new context, ready to pass back with `--context`.
//!
//! A failure says what to do: [`explain`] turns the client's typed errors
//! into the address, the cause and the likely fix. `put` never stores an
//! empty value by accident: it will not wait on a terminal for a value, and
//! an empty value needs `--empty`.

use anyhow::{bail, Result};
use bytes::Bytes;
use clap::Args;
use ringkv_client::{Client, ClientError, Fetched, TransportKind};
use std::io::{IsTerminal, Read, Write};

#[derive(Args, Debug)]
pub struct Target {
    pub bucket: String,
    pub key: String,
    /// Node to talk to: its HTTP address (any node coordinates any request).
    #[arg(long, default_value = "http://127.0.0.1:8001", env = "RINGKV_NODE")]
    pub node: String,
    /// Client token for a node started with --http-tokens-file (sent as
    /// `Authorization: Bearer`); not needed with `ringkv dev`.
    #[arg(long, env = "RINGKV_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub target: Target,
    /// Read quorum for this request.
    #[arg(long)]
    pub r: Option<usize>,
    /// Write the value's bytes to stdout exactly, nothing else. With
    /// siblings, choose one with --sibling.
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    /// With --raw: which sibling to write (1-based, as `get` numbers them).
    #[arg(long, requires = "raw")]
    pub sibling: Option<usize>,
    /// Print the node's JSON form: {"context", "values": [base64...], ...}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PutArgs {
    #[command(flatten)]
    pub target: Target,
    /// The value; when absent, read from stdin (which must not be a terminal).
    pub value: Option<String>,
    /// Store an empty value (refused otherwise, so a forgotten argument or
    /// an empty pipe never stores one).
    #[arg(long, conflicts_with = "value")]
    pub empty: bool,
    /// Context from an earlier get: the write supersedes what that get saw.
    #[arg(long)]
    pub context: Option<String>,
    /// Write quorum for this request.
    #[arg(long)]
    pub w: Option<usize>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub target: Target,
    /// Context from an earlier get (without it the node reads first).
    #[arg(long)]
    pub context: Option<String>,
    /// Read quorum of the read a delete without --context makes first.
    #[arg(long)]
    pub r: Option<usize>,
    /// Write quorum for this request.
    #[arg(long)]
    pub w: Option<usize>,
}

/// A client error as a person needs it: the address, the cause and the fix.
pub fn explain(e: ClientError) -> anyhow::Error {
    let t = match e {
        ClientError::Transport(t) => t,
        ClientError::Status { status: 401, .. } => {
            return anyhow::anyhow!("{e}; pass the client token with --token or RINGKV_TOKEN")
        }
        e => return e.into(),
    };
    let node = &t.node;
    let fix = match &t.kind {
        TransportKind::Refused => {
            "nothing listens there. Is the node running, and is this its HTTP address \
             (serve --http), not its RPC one?"
        }
        TransportKind::ConnectTimedOut(_) => {
            "is the host reachable, and is the port open in its firewall?"
        }
        TransportKind::ConnectFailed(_) => "check the host name in --node.",
        TransportKind::NotHttp => {
            "this is not a node's HTTP port; is it its RPC port (serve --rpc)? \
             Pass the HTTP address (serve --http) with --node."
        }
        TransportKind::ClosedBeforeAnswer => {
            "is this the node's HTTP port (serve --http), not its RPC port (serve --rpc)? \
             A node's RPC port closes HTTP connections like this. If it is the HTTP \
             port, the node may be stopping; a write may have been applied, so read \
             the key before retrying."
        }
        TransportKind::TimedOut(_) => {
            "the node is up but slow or stuck; a write may have been applied, so read \
             the key before retrying."
        }
        TransportKind::Other(_) => "is the node running at that address?",
    };
    anyhow::anyhow!("cannot talk to the node at {node}: {}; {fix}", t.kind)
}

fn printable(value: &[u8]) -> String {
    use base64::Engine;
    match std::str::from_utf8(value) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t') =>
        {
            text.to_string()
        }
        _ => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(value)
        ),
    }
}

/// `ms` since the Unix epoch as RFC 3339 UTC with milliseconds.
fn utc(ms: u64) -> String {
    let (days, ms_of_day) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let s = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms_of_day % 1000
    )
}

fn written(found: &Fetched, i: usize) -> Option<String> {
    found.written_ms.get(i).copied().flatten().map(utc)
}

/// The default, human output of a read.
fn render(found: &Fetched) -> String {
    let mut out = format!("context: {}\n", found.context.as_deref().unwrap_or(""));
    match found.values.as_slice() {
        [] => out.push_str("deleted (tombstone)\n"),
        [one] => {
            if let Some(at) = written(found, 0) {
                out.push_str(&format!("written: {at}\n"));
            }
            out.push_str(&printable(one));
            out.push('\n');
        }
        many => {
            out.push_str(&format!(
                "siblings: {} (write back a merged value with --context to resolve)\n",
                many.len()
            ));
            for (i, v) in many.iter().enumerate() {
                let at = written(found, i).map(|at| format!(", written {at}"));
                out.push_str(&format!(
                    "--- sibling {}{} ---\n{}\n",
                    i + 1,
                    at.unwrap_or_default(),
                    printable(v)
                ));
            }
        }
    }
    out
}

pub async fn get(args: GetArgs) -> Result<()> {
    let t = &args.target;
    let client = Client::new(&t.node)?.with_token(t.token.as_deref())?;
    let json = client
        .get_json(&t.bucket, t.key.as_bytes(), args.r)
        .await
        .map_err(explain)?;
    if args.json {
        match json {
            Some(json) => println!("{json}"),
            None => println!(r#"{{"context":null,"values":[]}}"#),
        }
        return Ok(());
    }
    let found = json.map(|j| Fetched::from_json(&j)).transpose()?;
    if args.raw {
        return write_raw(found, args.sibling);
    }
    match found {
        None => println!("not found"),
        Some(found) => print!("{}", render(&found)),
    }
    Ok(())
}

/// `get --raw`: one value's bytes, or an error (never a guess) when there is
/// no value or several and none was chosen. Concatenating siblings would
/// give bytes no one wrote, so that is not offered.
fn write_raw(found: Option<Fetched>, sibling: Option<usize>) -> Result<()> {
    let Some(found) = found else {
        bail!("not found");
    };
    let value = match (found.values.as_slice(), sibling) {
        ([], _) => bail!("deleted (tombstone)"),
        ([one], None) => one,
        (many, None) => bail!(
            "{} siblings: choose one with --sibling 1..={}, or `get` without --raw to see them",
            many.len(),
            many.len()
        ),
        (values, Some(n)) => match n.checked_sub(1).and_then(|i| values.get(i)) {
            Some(v) => v,
            None => bail!("--sibling {n}: there are {} sibling(s)", values.len()),
        },
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(value)?;
    stdout.flush()?;
    Ok(())
}

/// The value to put: the argument, `--empty`, or stdin when it is not a
/// terminal. An empty value only with `--empty`.
fn value_of(args: &PutArgs) -> Result<Bytes> {
    let t = &args.target;
    let how = format!(
        "pass it as an argument (ringkv put {} {} VALUE) or on stdin (ringkv put {} {} < FILE); \
         --empty stores an empty value",
        t.bucket, t.key, t.bucket, t.key
    );
    let value = match (&args.value, args.empty) {
        (_, true) => return Ok(Bytes::new()),
        (Some(v), false) => Bytes::from(v.clone()),
        (None, false) => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!(
                    "no value given for bucket {:?}, key {:?} (usage: ringkv put BUCKET KEY [VALUE]); {how}",
                    t.bucket,
                    t.key
                );
            }
            let mut buf = Vec::new();
            stdin
                .lock()
                .read_to_end(&mut buf)
                .map_err(|e| anyhow::anyhow!("reading the value from stdin: {e}"))?;
            Bytes::from(buf)
        }
    };
    if value.is_empty() {
        bail!("refusing to store an empty value (did you forget it?); {how}");
    }
    Ok(value)
}

pub async fn put(args: PutArgs) -> Result<()> {
    let value = value_of(&args)?;
    let t = &args.target;
    let client = Client::new(&t.node)?.with_token(t.token.as_deref())?;
    let context = client
        .put(
            &t.bucket,
            t.key.as_bytes(),
            value,
            args.context.as_deref(),
            args.w,
        )
        .await
        .map_err(explain)?;
    println!("context: {context}");
    Ok(())
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let t = &args.target;
    let client = Client::new(&t.node)?.with_token(t.token.as_deref())?;
    let context = client
        .delete_with(
            &t.bucket,
            t.key.as_bytes(),
            args.context.as_deref(),
            args.r,
            args.w,
        )
        .await
        .map_err(explain)?;
    println!("context: {context}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_times_are_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_718_454_896_007), "2024-06-15T12:34:56.007Z");
    }
}
