#!/usr/bin/env bash
# bench/matrix.sh -- the `ringkv bench` matrix in README's performance section:
# puts, gets and 50/50 against a fresh `ringkv dev` cluster, under
# `--fsync always` and `--fsync periodic:10`. One JSON line per run goes to
# OUT (default: bench-matrix.jsonl); a summary line per run to stdout.
#
# Usage (from the checkout): bash bench/matrix.sh [OUT]
#   RINGKV_BIN   the binary to use (default: target/release/ringkv, built here)
#   OPS [40000]  KEYS [10000]  CONCURRENCY [50]  VSIZE [100]
# Uses ports 8001-8003 and 9001-9003 on 127.0.0.1; stops its cluster by pid.
set -euo pipefail
OUT=${1:-bench-matrix.jsonl}
OPS=${OPS:-40000} KEYS=${KEYS:-10000} CONCURRENCY=${CONCURRENCY:-50} VSIZE=${VSIZE:-100}
BIN=${RINGKV_BIN:-}
if [ -z "$BIN" ]; then cargo build --release -q -p ringkv; BIN=target/release/ringkv; fi
NODES=(--node http://127.0.0.1:8001 --node http://127.0.0.1:8002 --node http://127.0.0.1:8003)
: >"$OUT"
T=$(mktemp -d)
dev=""
cleanup() { [ -n "$dev" ] && kill -INT "$dev" 2>/dev/null && wait "$dev" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
for fsync in always periodic:10; do
    rm -rf "$T/dev"
    "$BIN" dev --fsync "$fsync" --data-dir "$T/dev" --log warn >"$T/dev.log" 2>&1 &
    dev=$!
    for i in 1 2 3; do
        for _ in $(seq 150); do curl -sf "http://127.0.0.1:800$i/v1/health" >/dev/null && break; sleep 0.2; done
    done
    for ratio in 0 1 0.5; do
        json=$("$BIN" bench "${NODES[@]}" --concurrency "$CONCURRENCY" --value-size "$VSIZE" \
            --keys "$KEYS" --ops "$OPS" --read-ratio "$ratio" --quiet --json)
        echo "{\"fsync\":\"$fsync\",\"read_ratio\":$ratio,\"result\":$json}" >>"$OUT"
        echo "$json" | python3 -c '
import json, sys
j = json.load(sys.stdin)
ops = "  ".join("%s p50 %.2f p99 %.2f p99.9 %.2f ms" % (k, j[k]["p50_ms"], j[k]["p99_ms"], j[k]["p999_ms"])
                for k in ("get", "put") if j[k])
print("fsync %s read-ratio %s: %s ops/s  %s  errors %d"
      % (sys.argv[1], sys.argv[2], format(round(j["ops_per_s"]), ","), ops, j["errors"]["total"]))' "$fsync" "$ratio"
    done
    kill -INT "$dev"; wait "$dev" || true; dev=""
done
