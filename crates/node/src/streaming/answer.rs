//! The source side of partition streaming: answers a `StreamChunk`
//! request from this node's storage.
//!
//! The request is checked first ([`ChunkRequest::validate`]: a partition
//! past Q or a cursor outside the partition is a typed
//! [`ReplicaError::BadChunkRequest`], never a panic), then the chunk is
//! filled by the core's [`fill_chunk`] from pages of
//! [`Storage::scan_skipping_corrupt`] as one job on the storage read lane,
//! so a blocking engine never holds an async worker. A damaged record is
//! left out, logged and counted (`ringkv_stream_records_skipped_total`);
//! the receiver misses that key until anti-entropy finds it. Nothing is
//! kept between requests: the cursor in each request is all the state.

use crate::metrics::Metrics;
use crate::replica::{storage_error, LocalReplica};
use ringkv_core::protocol::ReplicaError;
use ringkv_core::streaming::{fill_chunk, Chunk, ChunkRequest, PageRecord};
use ringkv_storage::{Keyspace, Storage, StorageError};

/// Answers `request` from this node's `data` keyspace.
pub async fn answer(
    replica: &LocalReplica,
    request: ChunkRequest,
    metrics: &Metrics,
) -> Result<Chunk, ReplicaError> {
    let partitions = replica.trees().partitions();
    let scan = request
        .validate(partitions)
        .map_err(ReplicaError::BadChunkRequest)?;
    let storage = replica.storage().clone();
    let job = move || {
        let end = scan.end.clone();
        fill_chunk(&scan, |start, limit| {
            read_page(&*storage, start, end.as_deref(), limit)
        })
    };
    let filled = match replica.lanes().read(job).await {
        Ok(Ok(filled)) => filled,
        Ok(Err(e)) => return Err(storage_error(e.into())),
        Err(e) => return Err(storage_error(e.into())),
    };
    for key in &filled.skipped {
        tracing::warn!(
            partition = request.partition,
            key = %hex(key),
            "a stream chunk leaves out a damaged record; anti-entropy repairs it later"
        );
    }
    let keys = filled.chunk.entries.len() as u64;
    metrics.streamed("sent", 1, keys, filled.bytes);
    metrics.stream_records_skipped(filled.skipped.len() as u64);
    Ok(filled.chunk)
}

/// One page of stored records in `[start, end)`, good and damaged ones in
/// key order.
fn read_page(
    storage: &dyn Storage,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<PageRecord>, StorageError> {
    let page = storage.scan_skipping_corrupt(Keyspace::Data, start, end, limit)?;
    let good = page.records.into_iter().map(|(k, v)| (k, Some(v)));
    let damaged = page.corrupt.into_iter().map(|c| (c.key, None));
    let mut records: Vec<PageRecord> = good.chain(damaged).collect();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(records)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
