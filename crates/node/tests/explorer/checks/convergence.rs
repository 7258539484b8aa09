//! **convergence**: after healing, every partition's homes reach equal
//! anti-entropy (Merkle) roots within a bounded time.

use crate::explorer::client::call;
use ringkv_core::anti_entropy::{ExchangeReply, ExchangeRequest, TreeQuery};
use ringkv_core::layout::Layout;
use ringkv_core::protocol::{Request, Response};
use std::time::Duration;

/// Seconds of simulated time the homes get to converge after healing.
pub const CONVERGE_WITHIN_S: u64 = 120;

async fn root(node: &str, partition: u32) -> Option<u64> {
    let question = ExchangeRequest::Tree(TreeQuery::Root { partition });
    match call(node, Request::AntiEntropy(question)).await {
        Ok(Response::AntiEntropy(Ok(ExchangeReply::Root { hash, .. }))) => Some(hash),
        _ => None,
    }
}

/// Waits until every partition's `n` homes in `layout` have equal roots.
pub async fn check(layout: &Layout, n: usize) -> Result<(), String> {
    let mut unequal = Vec::new();
    for _ in 0..CONVERGE_WITHIN_S {
        unequal.clear();
        for p in 0..layout.partitions() {
            let mut roots = Vec::new();
            for home in layout.replicas(p, n) {
                roots.push((home.to_string(), root(home.as_str(), p).await));
            }
            if roots.iter().any(|r| r.1 != roots[0].1 || r.1.is_none()) {
                unequal.push((p, roots));
            }
        }
        if unequal.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!(
        "partitions still differ between their homes {CONVERGE_WITHIN_S} s after healing (partition, [(home, root)]): {unequal:?}"
    ))
}
