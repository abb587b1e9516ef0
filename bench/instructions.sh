#!/usr/bin/env bash
# Instructions per webhook under callgrind (its Ir count does not depend on machine load):
# the gateway with the HMAC + `log` webhook of bench/run.sh, `ack: delivered` and
# `ack: persisted`, and the bare hyper + HMAC ceiling. Instrumentation is switched on after
# start-up and a warm-up, then a fixed number of requests is sent over one keep-alive
# connection; Ir of the whole process (every thread) divided by that number, with and
# without SHA-256's compression function (valgrind runs the software SHA: the same large
# constant for every row), and each row's heaviest functions.
#
#   bash bench/instructions.sh                      # REQUESTS=2000 WARMUP_REQUESTS=200
#   BEFORE=/tmp/old/webhook-server bash bench/instructions.sh   # an older build beside it
#   KEEP=/tmp/cg bash bench/instructions.sh     # keep the callgrind files (callgrind_annotate)
#   SHARED_SPOOL=postgres://…/webhook_bench     # the `persisted_postgres` row (default: the
#       # machine's PostgreSQL; the database is dropped and created afresh; SHARED_SPOOL= skips it).
#       # Only the gateway's instructions: PostgreSQL's own work is not in the count.
#   HISTORY=1                                   # also `persisted_history`: the default webhook
#       # with --history on (every request and attempt written to the SQLite history)
#
# A report, not a pass/fail test. Needs valgrind (apt).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-2000}
WARMUP_REQUESTS=${WARMUP_REQUESTS:-200}
SECRET=bench-secret
PORT=${PORT:-9111}
SHARED_SPOOL=${SHARED_SPOOL-postgres://postgres@127.0.0.1:5432/webhook_bench?sslmode=disable}

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
  # self cost per function (every thread): the SHA-256 compression is summed apart, and
  # the heaviest functions are kept for the report
  callgrind_annotate --inclusive=no --auto=no --threshold=100 "$out".* 2>/dev/null >"$work/annotate.$name"
  local ir sha
  ir=$(cat "$out".* | awk '/^totals:/ {s += $2} END {print s}')
  sha=$(python3 "$work/self_cost.py" sha "$work/annotate.$name")
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$out".* "$KEEP/"; fi
  rm -f "$out".*
  echo "$name $ir $sha"
}

# self_cost.py sha FILE: Ir in SHA-256's compression function; top FILE N: the N heaviest
cat > "$work/self_cost.py" <<'PY'
import collections, re, sys
what, path = sys.argv[1], sys.argv[2]
costs = collections.Counter()
for line in open(path, errors="replace"):
    m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*?):(.*)$", line)
    if not m or m.group(3).strip() == "" or "PROGRAM TOTALS" in line:
        continue
    function = re.sub(r" \[[^\]]*\]$", "", m.group(3)).strip()
    costs[function] += int(m.group(1).replace(",", ""))
if what == "sha":
    print(sum(c for f, c in costs.items() if "sha256" in f and "compress" in f))
else:
    n, requests = int(sys.argv[3]), int(sys.argv[4])
    for function, cost in costs.most_common(n):
        print(f"| {cost / requests:,.0f} | `{function[:110]}` |")
PY

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
if [ -n "${HISTORY:-}" ]; then
  rm -rf "$work/spool" "$work/history.sqlite"*
  measure_ir persisted_history ./target/release/webhook-server --host 127.0.0.1 --port "$PORT" \
    --webhooks-config "$work/persisted.json" --data-dir "$work" --spool-dir "$work/spool" \
    --history on --history-file "$work/history.sqlite" >>"$results"
fi
if [ -n "$SHARED_SPOOL" ]; then
  db=${SHARED_SPOOL##*/}; db=${db%%\?*}
  psql "${SHARED_SPOOL%/*}/postgres" -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  measure_ir persisted_postgres ./target/release/webhook-server --host 127.0.0.1 --port "$PORT" \
    --webhooks-config "$work/persisted.json" --data-dir "$work" --spool "$SHARED_SPOOL" >>"$results"
fi

python3 - "$results" "$REQUESTS" <<'PY'
import sys
rows = {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in open(sys.argv[1]) if l.strip()}
n = int(sys.argv[2])
bare_all, bare_sha = rows["bare"]
print(f"callgrind Ir per webhook ({n} requests after warm-up, every thread)")
print("| server | Ir / webhook | ratio to bare | without SHA-256 compression | ratio to bare |")
print("|---|---:|---:|---:|---:|")
for name, (ir, sha) in rows.items():
    print(f"| {name} | {ir / n:,.0f} | {ir / bare_all:.2f} | {(ir - sha) / n:,.0f} | {(ir - sha) / (bare_all - bare_sha):.2f} |")
for mode in ("delivered", "persisted"):
    if "before_" + mode in rows:
        print(f"{mode} after / before: {rows[mode][0] / rows['before_' + mode][0]:.3f}")
PY
for name in $(awk '{print $1}' "$results"); do
  echo
  echo "$name: the ${TOP:-15} heaviest functions (self Ir per webhook)"
  echo "| Ir / webhook | function |"
  echo "|---:|---|"
  python3 "$work/self_cost.py" top "$work/annotate.$name" "${TOP:-15}" "$REQUESTS"
done
