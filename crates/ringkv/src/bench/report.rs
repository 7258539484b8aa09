//! What `ringkv bench` prints at the end of a run: a text table for people,
//! or with `--json` one JSON object on stdout for scripts.
//!
//! Both come from the same [`Summary`], so they always agree. Latencies are
//! in milliseconds, throughput in operations per second of the measured
//! phase (the untimed first reads are not in it), successes only.

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Failures of a run: count and first message, by kind.
#[derive(Default)]
pub struct Failures {
    pub by_kind: BTreeMap<String, (u64, String)>,
}

impl Failures {
    pub fn total(&self) -> u64 {
        self.by_kind.values().map(|(n, _)| n).sum()
    }
}

/// Everything a finished run reports.
pub struct Summary<'a> {
    pub ops: u64,
    pub elapsed: Duration,
    pub workers: u64,
    pub value_size: usize,
    pub keys: u64,
    pub read_ratio: f64,
    pub reads: &'a Histogram<u64>,
    pub writes: &'a Histogram<u64>,
    pub failures: &'a Failures,
    /// Every request sent, the untimed first reads included.
    pub requests: u64,
}

impl Summary<'_> {
    fn ok(&self) -> u64 {
        self.reads.len() + self.writes.len()
    }

    fn rate(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The text report.
    pub fn print_text(&self) {
        println!(
            "{} of {} ops ok in {:.2} s: {:.0} ops/s, successes only ({} workers, {}-byte values, {} keys, read ratio {})",
            self.ok(),
            self.ops,
            self.elapsed.as_secs_f64(),
            self.rate(self.ok()),
            self.workers,
            self.value_size,
            self.keys,
            self.read_ratio
        );
        for (name, h) in [("get", self.reads), ("put", self.writes)] {
            if let Some(l) = Latency::of(h) {
                println!(
                    "{name:<5} {:>9} ok   {:>9.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  max {:>7.2} ms",
                    h.len(),
                    self.rate(h.len()),
                    l.p50,
                    l.p99,
                    l.p999,
                    l.max
                );
            }
        }
        let failed = self.failures.total();
        if failed == 0 {
            println!("errors 0");
            return;
        }
        println!(
            "errors {failed} of {} requests ({:.2}%), by kind:",
            self.requests,
            failed as f64 * 100.0 / self.requests.max(1) as f64
        );
        for (kind, (n, first)) in &self.failures.by_kind {
            println!("  {n:>9}  {kind}  (first: {first})");
        }
    }

    /// The JSON report: one object, with `null` for an operation the run
    /// did not make.
    pub fn to_json(&self) -> Value {
        let op = |h: &Histogram<u64>| {
            Latency::of(h).map(|l| {
                json!({
                    "ok": h.len(),
                    "ops_per_s": self.rate(h.len()),
                    "p50_ms": l.p50,
                    "p99_ms": l.p99,
                    "p999_ms": l.p999,
                    "max_ms": l.max,
                })
            })
        };
        let by_kind: serde_json::Map<String, Value> = self
            .failures
            .by_kind
            .iter()
            .map(|(kind, (n, first))| (kind.clone(), json!({"count": n, "first": first})))
            .collect();
        json!({
            "ops": self.ops,
            "ok": self.ok(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "ops_per_s": self.rate(self.ok()),
            "workers": self.workers,
            "value_size": self.value_size,
            "keys": self.keys,
            "read_ratio": self.read_ratio,
            "get": op(self.reads),
            "put": op(self.writes),
            "errors": {
                "total": self.failures.total(),
                "requests": self.requests,
                "by_kind": by_kind,
            },
        })
    }
}

/// Latency quantiles of one operation, in milliseconds.
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_report_carries_rates_quantiles_and_failures() {
        let mut writes = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for micros in 1..=1000u64 {
            writes.record(micros * 10).unwrap(); // 10 µs .. 10 ms
        }
        let reads = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut failures = Failures::default();
        failures
            .by_kind
            .insert("HTTP 503 overloaded".into(), (4, "busy".into()));
        let summary = Summary {
            ops: 1004,
            elapsed: Duration::from_secs(2),
            workers: 8,
            value_size: 100,
            keys: 50,
            read_ratio: 0.0,
            reads: &reads,
            writes: &writes,
            failures: &failures,
            requests: 1054,
        };
        let j = summary.to_json();
        assert_eq!(j["ok"], 1000);
        assert_eq!(j["ops_per_s"], 500.0);
        assert!(j["get"].is_null(), "no reads were made: {j}");
        let put = &j["put"];
        assert_eq!(put["ok"], 1000);
        let p50 = put["p50_ms"].as_f64().unwrap();
        let p99 = put["p99_ms"].as_f64().unwrap();
        assert!((4.9..=5.1).contains(&p50), "{put}");
        assert!((9.8..=10.0).contains(&p99), "{put}");
        assert!(put["p999_ms"].as_f64().unwrap() <= put["max_ms"].as_f64().unwrap());
        assert_eq!(j["errors"]["total"], 4);
        assert_eq!(j["errors"]["requests"], 1054);
        assert_eq!(j["errors"]["by_kind"]["HTTP 503 overloaded"]["count"], 4);
    }
}
