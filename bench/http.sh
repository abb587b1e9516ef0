#!/usr/bin/env bash
# Benchmark of the `http_webhook` destination (issue 4) against the foundation's figure:
# the same gateway webhook (GitHub-style HMAC over a 2.2 KB JSON body, `ack: delivered`)
# once with the foundation's `log` destination and once forwarding to a local HTTP target
# with keep-alive (`bare-hyper PORT -`: reads the body, answers 200), measured back to
# back in every round on one server. wrk over loopback.
#
# The gateway runs alone on CPU 0 and wrk and the target share CPU 1 (taskset), so the
# target's CPU is not charged to the gateway — in production the target is another machine.
# The `log` figure moves little either way (BENCHMARKS.md); PIN=0 lets all three share both
# cores (the earlier sessions' set-up, where the target's own cost bounds the ratio).
#
#   bash bench/http.sh      # ROUNDS=5 DURATION=10 CONNECTIONS=32 (the foundation's load)
#   PIN=0 bash bench/http.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2}
SECRET=bench-secret
GATEWAY_PORT=${GATEWAY_PORT:-9107}
TARGET_PORT=${TARGET_PORT:-9108}

source bench/common.sh
source bench/payload.sh

PIN=${PIN:-1}
gateway_cpu=() other_cpu=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  gateway_cpu=(taskset -c 0) other_cpu=(taskset -c 1)
  export WRK_CPU=1
else
  PIN=0
fi

hmac="\"hmac\": {\"secret\": \"$SECRET\", \"header\": \"X-Hub-Signature-256\", \"algorithm\": \"sha256\"}"
cat > "$work/webhooks.json" <<JSON
{"log": {"data_type": "json", "module": "log", "ack": "delivered", $hmac},
 "http": {"data_type": "json", "module": "http_webhook", "ack": "delivered", $hmac,
          "module-config": {"url": "http://127.0.0.1:$TARGET_PORT/hook"}}}
JSON

results="$work/results"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
  "${other_cpu[@]}" ./target/release/bare-hyper "$TARGET_PORT" - & target=$!; pids+=("$target")
  RUST_LOG=${GATEWAY_LOG:-info,webhook::request=off} "${gateway_cpu[@]}" \
    ./target/release/webhook-server --host 127.0.0.1 \
    --port "$GATEWAY_PORT" --webhooks-config "$work/webhooks.json" --data-dir "$work" \
    --spool-dir "$work/spool" >/dev/null 2>&1 & gw=$!; pids+=("$gw")
  wait_port "$TARGET_PORT"; wait_port "$GATEWAY_PORT"
  for id in log http; do
    echo "$id $(measure "$id" "$GATEWAY_PORT" "/webhook/$id" "$gw")" >>"$results"
  done
  kill -TERM "$gw" "$target"; wait "$gw" "$target" 2>/dev/null || true
  echo "round $round done" >&2
done

python3 - "$results" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$PIN" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit): return float(v[: -len(unit)]) * f
    return float(v)
print(f"wrk -t1 -c{sys.argv[4]}, {sys.argv[3]} s x {sys.argv[2]} rounds (medians), 2.2 KB JSON, HMAC-SHA256, ack: delivered"
      + (", gateway on CPU 0, wrk and target on CPU 1" if sys.argv[5] == "1" else ", all on every CPU"))
print("| destination | req/s | p50 ms | p99 ms |")
print("|---|---:|---:|---:|")
for key, name in (("log", "log (the foundation's webhook)"), ("http", "http_webhook to a local keep-alive target")):
    r = [x for x in rows if x[0] == key]
    print(f"| {name} | {statistics.median(float(x[1]) for x in r):,.0f} | "
          f"{statistics.median(ms(x[2]) for x in r):.2f} | {statistics.median(ms(x[3]) for x in r):.2f} |")
xs = [float(x[1]) for x in rows if x[0] == "http"]
ys = [float(x[1]) for x in rows if x[0] == "log"]
ratios = [x / y for x, y in zip(xs, ys)]
print("http_webhook / log: per round " + ", ".join(f"{r:.1%}" for r in ratios) + f", median {statistics.median(ratios):.1%}")
for r in rows: print("raw:", " ".join(r), file=sys.stderr)
PY
