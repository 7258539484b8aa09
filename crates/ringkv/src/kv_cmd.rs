//! `ringkv get|put|delete`: a client for people at a terminal.
//!
//! `get` prints the context first, then each sibling: text values as text,
//! binary ones as base64. `put` and `delete` print the new context, ready to
//! pass back with `--context`.

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use ringkv_client::Client;
use std::io::Read;

#[derive(Args, Debug)]
pub struct Target {
    pub bucket: String,
    pub key: String,
    /// Node to talk to (any node coordinates any request).
    #[arg(long, default_value = "http://127.0.0.1:8001", env = "RINGKV_NODE")]
    pub node: String,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub target: Target,
    /// Read quorum for this request.
    #[arg(long)]
    pub r: Option<usize>,
}

#[derive(Args, Debug)]
pub struct PutArgs {
    #[command(flatten)]
    pub target: Target,
    /// The value; read from stdin when absent.
    pub value: Option<String>,
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
    /// Write quorum for this request.
    #[arg(long)]
    pub w: Option<usize>,
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

pub async fn get(args: GetArgs) -> Result<()> {
    let t = &args.target;
    let client = Client::new(&t.node)?;
    match client.get(&t.bucket, t.key.as_bytes(), args.r).await? {
        None => println!("not found"),
        Some(found) => {
            println!("context: {}", found.context.as_deref().unwrap_or(""));
            match found.values.as_slice() {
                [] => println!("deleted (tombstone)"),
                [one] => println!("{}", printable(one)),
                many => {
                    println!(
                        "siblings: {} (write back a merged value with --context to resolve)",
                        many.len()
                    );
                    for (i, v) in many.iter().enumerate() {
                        println!("--- sibling {} ---\n{}", i + 1, printable(v));
                    }
                }
            }
        }
    }
    Ok(())
}

pub async fn put(args: PutArgs) -> Result<()> {
    let t = &args.target;
    let value = match args.value {
        Some(v) => Bytes::from(v),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading the value from stdin")?;
            Bytes::from(buf)
        }
    };
    let client = Client::new(&t.node)?;
    let context = client
        .put(
            &t.bucket,
            t.key.as_bytes(),
            value,
            args.context.as_deref(),
            args.w,
        )
        .await?;
    println!("context: {context}");
    Ok(())
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let t = &args.target;
    let client = Client::new(&t.node)?;
    let context = client
        .delete(&t.bucket, t.key.as_bytes(), args.context.as_deref(), args.w)
        .await?;
    println!("context: {context}");
    Ok(())
}
