#!/usr/bin/env bash
# bench/peak_rss.sh -- peak resident memory of a node holding 1,000,000 keys
# (README's performance section): a fresh `ringkv dev` cluster (3 nodes,
# N = 3, so every node holds every key) under `--fsync periodic:10`, loaded
# by `ringkv bench --read-ratio 1`, which writes every key once before its
# timed reads. Prints each node's VmHWM and VmRSS and its data size on disk.
#
# Usage (from the checkout): bash bench/peak_rss.sh
#   RINGKV_BIN  the binary to use (default: target/release/ringkv, built here)
#   KEYS [1000000]  VSIZE [100]
# Uses ports 8001-8003 and 9001-9003 on 127.0.0.1; stops its cluster by pid.
set -euo pipefail
KEYS=${KEYS:-1000000} VSIZE=${VSIZE:-100}
BIN=${RINGKV_BIN:-}
if [ -z "$BIN" ]; then cargo build --release -q -p ringkv; BIN=target/release/ringkv; fi
T=$(mktemp -d)
dev=""
cleanup() { [ -n "$dev" ] && kill -INT "$dev" 2>/dev/null && wait "$dev" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
"$BIN" dev --fsync periodic:10 --data-dir "$T/dev" --log warn >"$T/dev.log" 2>&1 &
dev=$!
for i in 1 2 3; do
    for _ in $(seq 150); do curl -sf "http://127.0.0.1:800$i/v1/health" >/dev/null && break; sleep 0.2; done
done
started=$(date +%s)
"$BIN" bench --node http://127.0.0.1:8001 --node http://127.0.0.1:8002 --node http://127.0.0.1:8003 \
    --concurrency 50 --value-size "$VSIZE" --keys "$KEYS" --ops 100000 --read-ratio 1 --quiet
echo "loaded $KEYS keys of $VSIZE-byte values in $(($(date +%s) - started)) s"
raw=$(python3 -c "print(sum(len('k' + str(i)) + $VSIZE for i in range($KEYS)))")
echo "raw data (keys + values): $raw bytes"
for pid in $(pgrep -P "$dev"); do
    id=$(tr '\0' '\n' </proc/"$pid"/cmdline | grep -- '^--id=' | cut -d= -f2 || true)
    echo "$id (pid $pid): $(grep -E 'VmHWM|VmRSS' /proc/"$pid"/status | tr -s ' \t' ' ' | tr '\n' ' ')"
done
for d in "$T"/dev/n*; do echo "$(basename "$d") on disk: $(du -sb "$d" | cut -f1) bytes"; done
