#!/usr/bin/env bash
# Benchmark: webhook-server (GitHub-style HMAC + `log` destination writing to a sink)
# against a bare hyper server that only reads the body and checks the same HMAC (the
# ceiling), measured in the same run with the same load: wrk over loopback, 2.2 KB JSON.
#
#   bash bench/run.sh            # ROUNDS=3 DURATION=10 CONNECTIONS=32 by default
#   BEFORE=/tmp/old/webhook-server bash bench/run.sh   # also an older build, interleaved
#
# The gateway logs at `info` (the `log` destination's line per webhook) without the
# per-request access line (GATEWAY_LOG=info to include it; it costs 10-15 % here, see
# BENCHMARKS.md). Prints req/s, p50, p99 and peak RSS for each, the ratio gateway / ceiling, and the cost of
# the metrics (the gateway measured again with --no-metrics in every round).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2}
SECRET=bench-secret
BARE_PORT=${BARE_PORT:-9101}
GATEWAY_PORT=${GATEWAY_PORT:-9102}

source bench/common.sh

source bench/payload.sh

cat > "$work/webhooks.json" <<JSON
{"bench": {"data_type": "json", "module": "log", "ack": "delivered",
           "hmac": {"secret": "$SECRET", "header": "X-Hub-Signature-256", "algorithm": "sha256"}}}
JSON

results="$work/results"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
  ./target/release/bare-hyper "$BARE_PORT" "$SECRET" & bare=$!; pids+=("$bare")
  wait_port "$BARE_PORT"
  echo "bare $(measure bare "$BARE_PORT" /webhook/bench "$bare")" >>"$results"
  kill "$bare"; wait "$bare" 2>/dev/null || true

  for gateway in "${gateways[@]}"; do
    prefix=${gateway%%|*} bin=${gateway#*|}
    for variant in gateway nometrics; do
      flags=(); [ "$variant" = nometrics ] && flags=(--no-metrics)
      RUST_LOG=${GATEWAY_LOG:-info,webhook::request=off} "$bin" --host 127.0.0.1 --port "$GATEWAY_PORT" \
        --webhooks-config "$work/webhooks.json" --data-dir "$work" --spool-dir "$work/spool" "${flags[@]}" >/dev/null 2>&1 & gw=$!; pids+=("$gw")
      wait_port "$GATEWAY_PORT"
      echo "$prefix$variant $(measure "$prefix$variant" "$GATEWAY_PORT" /webhook/bench "$gw")" >>"$results"
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
bare, gw, off = summary("bare"), summary("gateway"), summary("nometrics")
print(f"wrk -t1 -c{sys.argv[4]}, {sys.argv[3]} s x {sys.argv[2]} rounds (medians), 2.2 KB JSON, HMAC-SHA256")
print("| server | req/s | p50 ms | p99 ms | peak RSS MiB |")
print("|---|---:|---:|---:|---:|")
for name, (rps, p50, p99, rss) in (("bare hyper + HMAC (ceiling)", bare), ("webhook-server, hmac + log", gw),
                                   ("webhook-server, hmac + log, --no-metrics", off)):
    print(f"| {name} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {rss:.1f} |")
# Paired ratios: each round measures the three servers back to back, so the median of the
# per-round ratios is steadier than the ratio of medians on a noisy VM.
def per_round(a, b):
    xs, ys = [float(x[1]) for x in rows if x[0] == a], [float(x[1]) for x in rows if x[0] == b]
    return [x / y for x, y in zip(xs, ys)]
ceiling_ratios, metrics_ratios = per_round("gateway", "bare"), per_round("gateway", "nometrics")
print(f"ratio gateway / ceiling: {gw[0] / bare[0]:.2%} (medians); per round "
      + ", ".join(f"{r:.1%}" for r in ceiling_ratios) + f", median {statistics.median(ceiling_ratios):.1%}")
print(f"metrics on / off: {gw[0] / off[0]:.2%} (medians); per round "
      + ", ".join(f"{r:.1%}" for r in metrics_ratios) + f", median {statistics.median(metrics_ratios):.1%}")
if any(x[0] == "before_gateway" for x in rows):
    for a in ("gateway", "nometrics"):
        r = per_round(a, "before_" + a)
        print(f"{a} after / before: per round " + ", ".join(f"{x:.1%}" for x in r)
              + f", median {statistics.median(r):.1%}")
for r in rows: print("raw:", " ".join(r), file=sys.stderr)
PY
