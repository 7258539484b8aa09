#!/bin/sh
# Runs every fuzz target in turn, one at a time, for SECONDS each (default
# 60), from fuzz/; prints each target's time and executions.
# Usage: fuzz/run_all.sh [SECONDS]
set -eu
cd "$(dirname "$0")"
seconds="${1:-60}"
for target in $(cargo +nightly fuzz list); do
    mkdir -p corpus/"$target" logs
    nice -n 10 cargo +nightly fuzz run "$target" corpus/"$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        >logs/"$target".log 2>&1 || echo "$target: FAILED (see fuzz/logs/$target.log)"
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' logs/"$target".log | grep -o '[0-9]*$' || echo '?')
    echo "$target: ${seconds}s, $runs executions"
done
