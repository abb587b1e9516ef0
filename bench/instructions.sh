#!/usr/bin/env bash
# Instructions per webhook under callgrind (its Ir count does not depend on machine load):
# the gateway with the HMAC + `log` webhook of bench/run.sh, `ack: delivered` and
# `ack: persisted`, and the bare hyper + HMAC ceiling. Instrumentation is switched on after
# start-up and a warm-up, then a fixed number of requests is sent over one keep-alive
# connection; Ir of the whole process (every thread) divided by that number.
#
#   bash bench/instructions.sh                      # REQUESTS=2000 WARMUP_REQUESTS=200
#   BEFORE=/tmp/old/webhook-server bash bench/instructions.sh   # an older build beside it
#
# A report, not a pass/fail test. Needs valgrind (apt).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-2000}
WARMUP_REQUESTS=${WARMUP_REQUESTS:-200}
SECRET=bench-secret
PORT=${PORT:-9111}

source bench/common.sh
source bench/payload.sh
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }

ack_configs persisted delivered

# Send N signed posts over one keep-alive connection; fail on any non-200.
cat > "$work/send.py" <<'PY'
import http.client, os, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
body = open(os.environ["BODY_FILE"], "rb").read()
headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
           "X-Hub-Signature-256": os.environ["SIGNATURE"]}
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    conn.request("POST", "/webhook/bench", body=body, headers=headers)
    r = conn.getresponse(); r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
PY

# measure NAME COMMAND...: Ir per request of COMMAND serving on $PORT
measure_ir() {
  local name=$1
  shift
  local out="$work/callgrind.$name"
  RUST_LOG=${GATEWAY_LOG:-info,webhook::request=off} valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$out.%p" "$@" >/dev/null 2>"$work/valgrind.$name.log" & local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
  done
  python3 "$work/send.py" "$PORT" "$WARMUP_REQUESTS"
  callgrind_control -i on "$pid" >/dev/null
  python3 "$work/send.py" "$PORT" "$REQUESTS"
  callgrind_control -i off "$pid" >/dev/null
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  local ir
  ir=$(cat "$out".* | awk '/^totals:/ {s += $2} END {print s}')
  rm -f "$out".*
  echo "$name $ir"
}

results="$work/results"
: >"$results"
measure_ir bare ./target/release/bare-hyper "$PORT" "$SECRET" >>"$results"
for gateway in "${gateways[@]}"; do
  prefix=${gateway%%|*} bin=${gateway#*|}
  for mode in delivered persisted; do
    rm -rf "$work/spool"
    measure_ir "$prefix$mode" "$bin" --host 127.0.0.1 --port "$PORT" \
      --webhooks-config "$work/$mode.json" --data-dir "$work" --spool-dir "$work/spool" >>"$results"
  done
done

python3 - "$results" "$REQUESTS" <<'PY'
import sys
rows = dict(l.split() for l in open(sys.argv[1]) if l.strip())
n = int(sys.argv[2])
bare = int(rows["bare"]) / n
print(f"callgrind Ir per webhook ({n} requests after warm-up, every thread; SHA-256 included)")
print("| server | Ir / webhook | ratio to bare |")
print("|---|---:|---:|")
for name, ir in rows.items():
    per = int(ir) / n
    print(f"| {name} | {per:,.0f} | {per / bare:.2f} |")
for mode in ("delivered", "persisted"):
    if "before_" + mode in rows:
        print(f"{mode} after / before: {int(rows[mode]) / int(rows['before_' + mode]):.3f}")
PY
