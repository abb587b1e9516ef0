#!/usr/bin/env bash
# Benchmark of the acknowledgement modes (issue 5): the same webhook (GitHub-style HMAC +
# `log` destination) with `ack: persisted` (spooled with group commit, fsync'd before the
# 200, delivered in the background), the same with `--spool-sync fdatasync` (buffered
# writes + fdatasync instead of direct writes) and `ack: delivered` (200 after the
# destination confirmed), next to a bare hyper server that reads the body and checks the HMAC (the
# ceiling) — all in the same run, paired per round. wrk over loopback, 2.2 KB JSON.
#
#   bash bench/spool.sh      # ROUNDS=3 DURATION=10 CONNECTIONS=64 by default
#   BEFORE=/tmp/old/webhook-server bash bench/spool.sh   # also an older build, interleaved
#   SERVER_CPU=1 WRK_CPU=0 bash bench/spool.sh   # each server alone on one core, wrk on the other
#   SHARED_SPOOL=postgres://postgres@127.0.0.1:5432/webhook_bench?sslmode=disable bash bench/spool.sh
#       # also `persisted` on the PostgreSQL spool (the database is dropped and created
#       # afresh before each of its runs; SHARED_SPOOL= leaves the row out)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-2}
SECRET=bench-secret
BARE_PORT=${BARE_PORT:-9101}
GATEWAY_PORT=${GATEWAY_PORT:-9102}
SHARED_SPOOL=${SHARED_SPOOL-postgres://postgres@127.0.0.1:5432/webhook_bench?sslmode=disable}
modes="persisted persisted_fdatasync delivered"
[ -n "$SHARED_SPOOL" ] && modes="$modes persisted_postgres"

source bench/common.sh
source bench/payload.sh

ack_configs persisted delivered

results="$work/results"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
  # shellcheck disable=SC2086 # SERVER_CPU: the servers on these CPUs (taskset), when set
  ${SERVER_CPU:+taskset -c $SERVER_CPU} ./target/release/bare-hyper "$BARE_PORT" "$SECRET" & bare=$!; pids+=("$bare")
  wait_port "$BARE_PORT"
  echo "bare $(measure bare "$BARE_PORT" /webhook/bench "$bare")" >>"$results"
  kill "$bare"; wait "$bare" 2>/dev/null || true
  for gateway in "${gateways[@]}"; do
    prefix=${gateway%%|*} bin=${gateway#*|}
    for mode in $modes; do
      rm -rf "$work/spool"
      config=${mode%_fdatasync}; config=${config%_postgres}
      sync=direct; [ "$mode" = persisted_fdatasync ] && sync=fdatasync
      shared=()
      if [ "$mode" = persisted_postgres ]; then
        db=${SHARED_SPOOL##*/}; db=${db%%\?*}
        psql "${SHARED_SPOOL%/*}/postgres" -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
        shared=(--spool "$SHARED_SPOOL")
      fi
      # shellcheck disable=SC2086
      RUST_LOG=${GATEWAY_LOG:-info,webhook::request=off} ${SERVER_CPU:+taskset -c $SERVER_CPU} "$bin" --host 127.0.0.1 \
        --port "$GATEWAY_PORT" --webhooks-config "$work/$config.json" --data-dir "$work" \
        --spool-dir "$work/spool" --spool-sync "$sync" "${shared[@]}" >/dev/null 2>&1 & gw=$!; pids+=("$gw")
      wait_port "$GATEWAY_PORT"
      echo "$prefix$mode $(measure "$prefix$mode" "$GATEWAY_PORT" /webhook/bench "$gw")" >>"$results"
      kill -TERM "$gw"; wait "$gw" 2>/dev/null || true
    done
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
def summary(name):
    r = [x for x in rows if x[0] == name]
    return (statistics.median(float(x[1]) for x in r), statistics.median(ms(x[2]) for x in r),
            statistics.median(ms(x[3]) for x in r), max(int(x[4]) for x in r) / 1024)
print(f"wrk -t1 -c{sys.argv[4]}, {sys.argv[3]} s x {sys.argv[2]} rounds (medians), 2.2 KB JSON, HMAC-SHA256")
print("| server | req/s | p50 ms | p99 ms | peak RSS MiB |")
print("|---|---:|---:|---:|---:|")
names = (("bare", "bare hyper + HMAC (ceiling)"), ("persisted", "webhook-server, hmac + log, ack: persisted"),
         ("persisted_fdatasync", "the same, --spool-sync fdatasync"),
         ("delivered", "webhook-server, hmac + log, ack: delivered"),
         ("persisted_postgres", "the same as persisted, --spool postgres:// (local PostgreSQL)"))
for key, name in names:
    if not any(x[0] == key for x in rows): continue
    rps, p50, p99, rss = summary(key)
    print(f"| {name} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {rss:.1f} |")
def per_round(a, b):
    xs, ys = [float(x[1]) for x in rows if x[0] == a], [float(x[1]) for x in rows if x[0] == b]
    return [x / y for x, y in zip(xs, ys)]
for a, b in (("persisted", "bare"), ("persisted_fdatasync", "bare"), ("delivered", "bare"),
             ("persisted", "delivered"), ("persisted", "persisted_fdatasync"),
             ("persisted_postgres", "persisted"), ("persisted_postgres", "bare")):
    r = per_round(a, b)
    if not r: continue
    print(f"{a} / {b}: per round " + ", ".join(f"{x:.1%}" for x in r) + f", median {statistics.median(r):.1%}")
if any(x[0] == "before_persisted" for x in rows):
    for a in ("persisted", "persisted_fdatasync", "delivered"):
        r = per_round(a, "before_" + a)
        print(f"{a} after / before: per round " + ", ".join(f"{x:.1%}" for x in r)
              + f", median {statistics.median(r):.1%}")
for r in rows: print("raw:", " ".join(r), file=sys.stderr)
PY
