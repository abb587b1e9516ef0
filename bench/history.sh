#!/usr/bin/env bash
# Benchmark of the request history (issue 21): the default webhook (GitHub-style HMAC +
# `log`, `ack: persisted`) with the history off and on (`--history on`: every request and
# attempt written to the SQLite file in batches), next to the bare hyper server, in the
# same run, interleaved round by round. wrk over loopback, 2.2 KB JSON. The goal: history
# on keeps >= 95 % of the throughput with it off.
#
#   bash bench/history.sh      # ROUNDS=5 DURATION=10 CONNECTIONS=64 by default
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-2}
SECRET=bench-secret
BARE_PORT=${BARE_PORT:-9101}
GATEWAY_PORT=${GATEWAY_PORT:-9102}

source bench/common.sh
source bench/payload.sh

ack_configs persisted

results="$work/results"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
  ./target/release/bare-hyper "$BARE_PORT" "$SECRET" & bare=$!; pids+=("$bare")
  wait_port "$BARE_PORT"
  echo "bare $(measure bare "$BARE_PORT" /webhook/bench "$bare")" >>"$results"
  kill "$bare"; wait "$bare" 2>/dev/null || true
  # alternate which one goes first
  order="off on"; [ $((round % 2)) -eq 0 ] && order="on off"
  for history in $order; do
    rm -rf "$work/spool" "$work/history.sqlite"*
    RUST_LOG=${GATEWAY_LOG:-info,webhook::request=off} ./target/release/webhook-server --host 127.0.0.1 \
      --port "$GATEWAY_PORT" --webhooks-config "$work/persisted.json" --data-dir "$work" \
      --spool-dir "$work/spool" --history "$history" --history-file "$work/history.sqlite" \
      >/dev/null 2>&1 & gw=$!; pids+=("$gw")
    wait_port "$GATEWAY_PORT"
    echo "history_$history $(measure "history_$history" "$GATEWAY_PORT" /webhook/bench "$gw")" >>"$results"
    kill -TERM "$gw"; wait "$gw" 2>/dev/null || true
    if [ "$history" = on ]; then
      echo "kept_$history $(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from requests").fetchone()[0])' "$work/history.sqlite")" >>"$results"
    fi
  done
  echo "round $round done" >&2
done

python3 - "$results" "$ROUNDS" "$DURATION" "$CONNECTIONS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit): return float(v[: -len(unit)]) * f
    return float(v)
print(f"wrk -c{sys.argv[4]}, {sys.argv[3]} s x {sys.argv[2]} rounds (medians), 2.2 KB JSON, HMAC-SHA256, ack: persisted")
print("| server | req/s | p50 ms | p99 ms | peak RSS MiB |")
print("|---|---:|---:|---:|---:|")
for key, name in (("bare", "bare hyper + HMAC (ceiling)"), ("history_off", "webhook-server, history off"),
                  ("history_on", "webhook-server, --history on")):
    r = [x for x in rows if x[0] == key]
    print(f"| {name} | {statistics.median(float(x[1]) for x in r):,.0f} | {statistics.median(ms(x[2]) for x in r):.2f} "
          f"| {statistics.median(ms(x[3]) for x in r):.2f} | {statistics.median(float(x[4]) for x in r) / 1024:.1f} |")
on = [float(x[1]) for x in rows if x[0] == "history_on"]
off = [float(x[1]) for x in rows if x[0] == "history_off"]
ratios = [a / b for a, b in zip(on, off)]
print("history on / off: per round " + ", ".join(f"{x:.1%}" for x in ratios) + f", median {statistics.median(ratios):.1%}")
kept = [x[1] for x in rows if x[0] == "kept_on"]
print("requests in the history file after each run (SIGTERM flushes): " + ", ".join(kept))
for x in rows: print("raw:", " ".join(x))
PY
