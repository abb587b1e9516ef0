#!/usr/bin/env bash
# Benchmark: webhook-server (GitHub-style HMAC + `log` destination writing to a sink)
# against a bare hyper server that only reads the body and checks the same HMAC (the
# ceiling), measured in the same run with the same load: wrk over loopback, 2.2 KB JSON.
#
#   bash bench/run.sh            # ROUNDS=3 DURATION=10 CONNECTIONS=32 by default
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

# A 2.2 KB GitHub-like push payload and its signature.
python3 - "$work" "$SECRET" <<'PY'
import hashlib, hmac, json, sys
work, secret = sys.argv[1], sys.argv[2]
commits = [{"id": f"{i:040x}", "message": f"Fix the frobnicator, part {i}", "timestamp": "2026-11-28T12:00:00Z",
            "author": {"name": "Octo Cat", "email": "octocat@example.com", "username": "octocat"},
            "added": [], "removed": [], "modified": [f"src/module_{i}.rs", "README.md"]} for i in range(6)]
body = {"ref": "refs/heads/main", "before": "0" * 40, "after": "f" * 40,
        "repository": {"id": 1296269, "name": "hello-world", "full_name": "octocat/hello-world", "private": False},
        "pusher": {"name": "octocat", "email": "octocat@example.com"}, "commits": commits}
data = json.dumps(body).encode()
pad = 2200 - len(data)
if pad > 0:
    body["padding"] = "x" * max(0, pad - 14)
    data = json.dumps(body).encode()
open(f"{work}/body.json", "wb").write(data)
sig = hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
open(f"{work}/signature", "w").write("sha256=" + sig)
print(f"body: {len(data)} bytes", file=sys.stderr)
PY

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "push"
wrk.headers["X-Hub-Signature-256"] = os.getenv("SIGNATURE")
LUA

cat > "$work/webhooks.json" <<JSON
{"bench": {"data_type": "json", "module": "log",
           "hmac": {"secret": "$SECRET", "header": "X-Hub-Signature-256", "algorithm": "sha256"}}}
JSON

export BODY_FILE="$work/body.json"
SIGNATURE=$(cat "$work/signature")
export SIGNATURE

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "port $1 did not open" >&2; return 1
}

# measure NAME PORT PID -> "rps p50 p99 rss_kb"
measure() {
  local url="http://127.0.0.1:$2$3"
  wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s "$work/post.lua" "$url" >/dev/null
  local out
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" "$url")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$1 answered errors:" >&2; echo "$out" >&2; exit 1
  fi
  local rps p50 p99 rss
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$4/status")
  echo "$rps $p50 $p99 $rss"
}

results="$work/results"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
  ./target/release/bare-hyper "$BARE_PORT" "$SECRET" & bare=$!; pids+=("$bare")
  wait_port "$BARE_PORT"
  echo "bare $(measure bare "$BARE_PORT" /webhook/bench "$bare")" >>"$results"
  kill "$bare"; wait "$bare" 2>/dev/null || true

  RUST_LOG=${GATEWAY_LOG:-info,webhook::request=off} ./target/release/webhook-server --host 127.0.0.1 --port "$GATEWAY_PORT" \
    --webhooks-config "$work/webhooks.json" --data-dir "$work" >/dev/null 2>&1 & gw=$!; pids+=("$gw")
  wait_port "$GATEWAY_PORT"
  echo "gateway $(measure gateway "$GATEWAY_PORT" /webhook/bench "$gw")" >>"$results"
  kill -TERM "$gw"; wait "$gw" 2>/dev/null || true

  RUST_LOG=${GATEWAY_LOG:-info,webhook::request=off} ./target/release/webhook-server --host 127.0.0.1 --port "$GATEWAY_PORT" \
    --webhooks-config "$work/webhooks.json" --data-dir "$work" --no-metrics >/dev/null 2>&1 & gw=$!; pids+=("$gw")
  wait_port "$GATEWAY_PORT"
  echo "nometrics $(measure nometrics "$GATEWAY_PORT" /webhook/bench "$gw")" >>"$results"
  kill -TERM "$gw"; wait "$gw" 2>/dev/null || true
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
for r in rows: print("raw:", " ".join(r), file=sys.stderr)
PY
