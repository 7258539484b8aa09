//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Client requests by operation and status, their latency, quorum failures,
//! and the storage syncs of group commit (how many writes each fsync covered
//! and how long it took). Updating a metric is a few atomic operations; this
//! module never blocks, and its labels are static strings and integers, so
//! an observation allocates nothing once its label set exists.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    op: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    target: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExchangeLabels {
    partition: u32,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    partition: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    partition: u32,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

fn target_labels(target: &str) -> TargetLabels {
    TargetLabels {
        target: target.to_string(),
    }
}

type HistogramFamily = Family<OpLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// All of a node's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    quorum_failures: Family<OpLabels, Counter>,
    replica_call_failures: Family<FailureLabels, Counter>,
    sync_batch: Histogram,
    sync_seconds: Histogram,
    rpc_connections_refused: Counter,
    rpc_handshakes_refused: Family<ReasonLabels, Counter>,
    http_auth_refused: Family<ReasonLabels, Counter>,
    hints_stored: Family<TargetLabels, Counter>,
    hints_delivered: Family<TargetLabels, Counter>,
    hints_skipped: Family<TargetLabels, Counter>,
    hints_dropped: Family<DropLabels, Counter>,
    hints_pending: Family<TargetLabels, Gauge>,
    read_repairs: Counter,
    exchanges: Family<ExchangeLabels, Counter>,
    keys_repaired: Family<PartitionLabels, Counter>,
    exchange_bytes: Family<BytesLabels, Counter>,
    tombstones_reaped: Counter,
    stream_chunks: Family<DirectionLabels, Counter>,
    stream_keys: Family<DirectionLabels, Counter>,
    stream_bytes: Family<DirectionLabels, Counter>,
    stream_records_skipped: Counter,
    stream_failures: Counter,
    /// The same background work, per partition, for `GET /v1/cluster`.
    repairs: std::sync::Mutex<std::collections::BTreeMap<u32, PartitionRepairs>>,
}

/// What anti-entropy did for one partition on this node, for operators.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PartitionRepairs {
    pub exchanges: u64,
    pub exchanges_failed: u64,
    pub keys_repaired: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The last exchange's result: "equal", "repaired" or "failed".
    pub last_result: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ringkv");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let quorum_failures = Family::<OpLabels, Counter>::default();
        let replica_call_failures = Family::<FailureLabels, Counter>::default();
        let sync_batch = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let sync_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "requests",
            "Client requests by operation and HTTP status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Client request latency by operation",
            latency.clone(),
        );
        registry.register(
            "quorum_failures",
            "Client requests that failed to reach R or W replicas",
            quorum_failures.clone(),
        );
        registry.register(
            "replica_call_failures",
            "Calls to peers that failed, by typed reason",
            replica_call_failures.clone(),
        );
        registry.register(
            "storage_sync_batch_writes",
            "Writes made durable by one storage sync (group commit batch size)",
            sync_batch.clone(),
        );
        registry.register(
            "storage_sync_duration_seconds",
            "Time one storage sync took",
            sync_seconds.clone(),
        );
        let rpc_connections_refused = Counter::default();
        registry.register(
            "rpc_connections_refused",
            "Inbound RPC connections closed at once because max_inbound_connections were open",
            rpc_connections_refused.clone(),
        );
        let rpc_handshakes_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rpc_handshakes_refused",
            "RPC handshakes this node refused, by reason (wrong_secret, secret_mode, settings, ...)",
            rpc_handshakes_refused.clone(),
        );
        let http_auth_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "http_auth_refused",
            "HTTP requests refused for want of a valid client token, by reason (missing, malformed, wrong)",
            http_auth_refused.clone(),
        );
        let hints_stored = Family::<TargetLabels, Counter>::default();
        registry.register(
            "hints_stored",
            "Hinted writes this node stored as a stand-in, by the home they are for",
            hints_stored.clone(),
        );
        let hints_delivered = Family::<TargetLabels, Counter>::default();
        registry.register(
            "hints_delivered",
            "Hints handed back to (and acknowledged by) their home",
            hints_delivered.clone(),
        );
        let hints_skipped = Family::<TargetLabels, Counter>::default();
        registry.register(
            "hints_skipped",
            "Hints not stored because the home's hint limits were reached",
            hints_skipped.clone(),
        );
        let hints_dropped = Family::<DropLabels, Counter>::default();
        registry.register(
            "hints_dropped",
            "Hints dropped without delivery: expired, home left the cluster, or malformed",
            hints_dropped.clone(),
        );
        let hints_pending = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "hints_pending",
            "Hints held for each home, not yet delivered",
            hints_pending.clone(),
        );
        let read_repairs = Counter::default();
        registry.register(
            "read_repairs",
            "Merged objects sent to replicas a read found stale or missing",
            read_repairs.clone(),
        );
        let exchanges = Family::<ExchangeLabels, Counter>::default();
        registry.register(
            "anti_entropy_exchanges",
            "Anti-entropy exchanges by partition and result (equal, repaired, failed)",
            exchanges.clone(),
        );
        let keys_repaired = Family::<PartitionLabels, Counter>::default();
        registry.register(
            "anti_entropy_keys_repaired",
            "Keys anti-entropy repaired, by partition",
            keys_repaired.clone(),
        );
        let exchange_bytes = Family::<BytesLabels, Counter>::default();
        registry.register(
            "anti_entropy_bytes",
            "Bytes anti-entropy exchanged (tree, summaries and repaired objects), by partition and direction",
            exchange_bytes.clone(),
        );
        let tombstones_reaped = Counter::default();
        registry.register(
            "tombstones_reaped",
            "Deleted or expired keys whose last copy on this node was reaped",
            tombstones_reaped.clone(),
        );
        let stream_chunks = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "stream_chunks",
            "Partition stream chunks, by direction: received (merged here) or sent (to a node streaming in)",
            stream_chunks.clone(),
        );
        let stream_keys = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "stream_keys",
            "Keys in partition stream chunks, by direction (received or sent)",
            stream_keys.clone(),
        );
        let stream_bytes = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "stream_bytes",
            "Entry bytes in partition stream chunks, by direction (received: wire size; sent: as stored)",
            stream_bytes.clone(),
        );
        let stream_records_skipped = Counter::default();
        registry.register(
            "stream_records_skipped",
            "Damaged records a source left out of the chunks it sent",
            stream_records_skipped.clone(),
        );
        let stream_failures = Counter::default();
        registry.register(
            "stream_failures",
            "Failed chunk fetches and applies of this node's streams (each retried)",
            stream_failures.clone(),
        );
        Metrics {
            stream_chunks,
            stream_keys,
            stream_bytes,
            stream_records_skipped,
            stream_failures,
            repairs: Default::default(),
            tombstones_reaped,
            exchanges,
            keys_repaired,
            exchange_bytes,
            hints_stored,
            hints_delivered,
            hints_skipped,
            hints_dropped,
            hints_pending,
            read_repairs,
            registry,
            rpc_connections_refused,
            rpc_handshakes_refused,
            http_auth_refused,
            requests,
            latency,
            quorum_failures,
            replica_call_failures,
            sync_batch,
            sync_seconds,
        }
    }

    /// Records one finished client request.
    pub fn observe_request(&self, op: &'static str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { op, status })
            .inc();
        self.latency
            .get_or_create(&OpLabels { op })
            .observe(elapsed.as_secs_f64());
    }

    /// Records a quorum that could not be met.
    pub fn quorum_failed(&self, op: &'static str) {
        self.quorum_failures.get_or_create(&OpLabels { op }).inc();
    }

    /// Records a call to a peer that failed, by the failure's kind.
    pub fn replica_call_failed(&self, kind: &'static str) {
        self.replica_call_failures
            .get_or_create(&FailureLabels { kind })
            .inc();
    }

    /// Records one storage sync covering `writes` writes.
    pub fn observe_sync(&self, writes: u64, elapsed: Duration) {
        self.sync_batch.observe(writes as f64);
        self.sync_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records an inbound RPC connection closed at the connection cap.
    pub fn rpc_connection_refused(&self) {
        self.rpc_connections_refused.inc();
    }

    /// Records a handshake this node refused, by the reason's label.
    pub fn rpc_handshake_refused(&self, reason: &'static str) {
        self.rpc_handshakes_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Records an HTTP request refused for its client token, by reason.
    pub fn http_auth_refused(&self, reason: &'static str) {
        self.http_auth_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Records a hint stored for `target`.
    pub fn hint_stored(&self, target: &str) {
        self.hints_stored
            .get_or_create(&target_labels(target))
            .inc();
    }

    /// Records a hint `target` acknowledged.
    pub fn hint_delivered(&self, target: &str) {
        self.hints_delivered
            .get_or_create(&target_labels(target))
            .inc();
    }

    /// Records a hint for `target` not stored (limits reached).
    pub fn hint_skipped(&self, target: &str) {
        self.hints_skipped
            .get_or_create(&target_labels(target))
            .inc();
    }

    /// Records a hint for `target` dropped without delivery.
    pub fn hint_dropped(&self, target: &str, reason: &'static str) {
        let labels = DropLabels {
            target: target.to_string(),
            reason,
        };
        self.hints_dropped.get_or_create(&labels).inc();
    }

    /// Sets how many hints are held for `target`.
    pub fn hints_pending(&self, target: &str, hints: u64) {
        self.hints_pending
            .get_or_create(&target_labels(target))
            .set(i64::try_from(hints).unwrap_or(i64::MAX));
    }

    /// Records one finished anti-entropy exchange.
    pub fn exchange_finished(
        &self,
        partition: u32,
        report: &ringkv_core::anti_entropy::ExchangeReport,
        ok: bool,
    ) {
        let result = match (ok, report.roots_equal) {
            (false, _) => "failed",
            (true, true) => "equal",
            (true, false) => "repaired",
        };
        self.exchanges
            .get_or_create(&ExchangeLabels { partition, result })
            .inc();
        {
            let mut repairs = self.repairs.lock().unwrap_or_else(|p| p.into_inner());
            let entry = repairs.entry(partition).or_default();
            entry.exchanges += 1;
            entry.exchanges_failed += u64::from(!ok);
            entry.bytes_sent += report.bytes_sent;
            entry.bytes_received += report.bytes_received;
            entry.last_result = result;
        }
        for (direction, bytes) in [
            ("sent", report.bytes_sent),
            ("received", report.bytes_received),
        ] {
            self.exchange_bytes
                .get_or_create(&BytesLabels {
                    partition,
                    direction,
                })
                .inc_by(bytes);
        }
    }

    /// Records keys anti-entropy repaired in `partition`.
    pub fn keys_repaired(&self, partition: u32, keys: u64) {
        if keys > 0 {
            self.keys_repaired
                .get_or_create(&PartitionLabels { partition })
                .inc_by(keys);
            let mut repairs = self.repairs.lock().unwrap_or_else(|p| p.into_inner());
            repairs.entry(partition).or_default().keys_repaired += keys;
        }
    }

    /// Records one key reaped from this node's storage.
    pub fn tombstone_reaped(&self) {
        self.tombstones_reaped.inc();
    }

    /// Records one read-repair write sent.
    pub fn read_repair_sent(&self) {
        self.read_repairs.inc();
    }

    /// Records stream chunks moved in `direction` ("received" or "sent").
    pub fn streamed(&self, direction: &'static str, chunks: u64, keys: u64, bytes: u64) {
        let labels = DirectionLabels { direction };
        self.stream_chunks.get_or_create(&labels).inc_by(chunks);
        self.stream_keys.get_or_create(&labels).inc_by(keys);
        self.stream_bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// Records damaged records a source left out of a chunk.
    pub fn stream_records_skipped(&self, records: u64) {
        self.stream_records_skipped.inc_by(records);
    }

    /// Records failed fetches or applies of this node's streams.
    pub fn stream_failed(&self, failures: u64) {
        self.stream_failures.inc_by(failures);
    }

    /// Anti-entropy per partition, and totals of the other background
    /// repairs, as `GET /v1/cluster` shows them.
    pub fn repairs(&self) -> serde_json::Value {
        let repairs = self.repairs.lock().unwrap_or_else(|p| p.into_inner());
        let total = |f: fn(&PartitionRepairs) -> u64| repairs.values().map(f).sum::<u64>();
        serde_json::json!({
            "anti_entropy": {
                "exchanges": total(|r| r.exchanges),
                "exchanges_failed": total(|r| r.exchanges_failed),
                "keys_repaired": total(|r| r.keys_repaired),
                "bytes_sent": total(|r| r.bytes_sent),
                "bytes_received": total(|r| r.bytes_received),
                "partitions": &*repairs,
            },
            "read_repairs": self.read_repairs.get(),
            "tombstones_reaped": self.tombstones_reaped.get(),
        })
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_family() {
        let m = Metrics::new();
        m.observe_request("put", 204, Duration::from_millis(2));
        m.quorum_failed("get");
        m.observe_sync(7, Duration::from_millis(1));
        m.replica_call_failed("connect_refused");
        m.rpc_connection_refused();
        m.rpc_handshake_refused("wrong_secret");
        m.http_auth_refused("wrong");
        m.hint_stored("n2");
        m.hint_delivered("n2");
        m.hint_skipped("n3");
        m.hint_dropped("n3", "expired");
        m.hints_pending("n2", 4);
        m.read_repair_sent();
        m.tombstone_reaped();
        let report = ringkv_core::anti_entropy::ExchangeReport {
            bytes_sent: 100,
            bytes_received: 40,
            ..Default::default()
        };
        m.exchange_finished(7, &report, true);
        m.keys_repaired(7, 3);
        m.streamed("received", 2, 10, 900);
        m.streamed("sent", 1, 5, 400);
        m.stream_records_skipped(1);
        m.stream_failed(3);
        let text = m.encode();
        for want in [
            "ringkv_requests_total{op=\"put\",status=\"204\"} 1",
            "ringkv_request_duration_seconds_count{op=\"put\"} 1",
            "ringkv_quorum_failures_total{op=\"get\"} 1",
            "ringkv_storage_sync_batch_writes_sum 7",
            "ringkv_storage_sync_duration_seconds_count 1",
            "ringkv_replica_call_failures_total{kind=\"connect_refused\"} 1",
            "ringkv_rpc_connections_refused_total 1",
            "ringkv_rpc_handshakes_refused_total{reason=\"wrong_secret\"} 1",
            "ringkv_http_auth_refused_total{reason=\"wrong\"} 1",
            "ringkv_hints_stored_total{target=\"n2\"} 1",
            "ringkv_hints_delivered_total{target=\"n2\"} 1",
            "ringkv_hints_skipped_total{target=\"n3\"} 1",
            "ringkv_hints_dropped_total{target=\"n3\",reason=\"expired\"} 1",
            "ringkv_hints_pending{target=\"n2\"} 4",
            "ringkv_read_repairs_total 1",
            "ringkv_tombstones_reaped_total 1",
            "ringkv_anti_entropy_exchanges_total{partition=\"7\",result=\"repaired\"} 1",
            "ringkv_anti_entropy_keys_repaired_total{partition=\"7\"} 3",
            "ringkv_anti_entropy_bytes_total{partition=\"7\",direction=\"sent\"} 100",
            "ringkv_stream_chunks_total{direction=\"received\"} 2",
            "ringkv_stream_keys_total{direction=\"sent\"} 5",
            "ringkv_stream_bytes_total{direction=\"received\"} 900",
            "ringkv_stream_records_skipped_total 1",
            "ringkv_stream_failures_total 3",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        let repairs = m.repairs();
        assert_eq!(repairs["anti_entropy"]["keys_repaired"], 3);
        assert_eq!(
            repairs["anti_entropy"]["partitions"]["7"]["bytes_received"],
            40
        );
        assert_eq!(repairs["tombstones_reaped"], 1);
    }
}
