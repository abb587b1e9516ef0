#!/usr/bin/env bash
# Benchmark: the 2.2 KB push body through a jq transform
# (`{ref, repo: .repository.full_name, commits: [.commits[].id]}`) and its JavaScript
# equivalent (a Hookdeck-style `addHandler("transform", …)`) next to the same webhook
# without one, both `ack: delivered` into `log` (so the answer waits for the transform),
# and the bare hyper server, in interleaved rounds (medians). Release build, wrk over
# loopback, everything on the same machine.
#
# Then, with INSTRUCTIONS=1 (the default), the deterministic figure: callgrind Ir per
# webhook of each row (every thread and every jq worker process; instrumentation on after
# a warm-up, REQUESTS posts over one keep-alive connection).
#
#   bash bench/transform.sh        # ROUNDS=3 DURATION=8 CONNECTIONS=64 REQUESTS=1000
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/services.sh
source bench/common.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-9113}
BARE_PORT=${BARE_PORT:-9114}

python3 - "$work" <<'PY'
import json, sys
body = {"ref": "refs/heads/main", "repository": {"full_name": "octocat/hello-world"},
        "commits": [{"id": f"{i:040x}", "message": f"change {i}", "modified": [f"src/m{i}.rs"]} for i in range(8)]}
data = json.dumps(body).encode()
body["padding"] = "x" * max(0, 2200 - len(data) - 14)
open(f"{sys.argv[1]}/body.json", "wb").write(json.dumps(body).encode())
PY
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA
# timeout_ms 10 s: under callgrind (below) a run is tens of times slower than the default 100 ms allows.
cat > "$work/webhooks.json" <<'JSON'
{
  "plain": {"ack": "delivered", "module": "log"},
  "jq": {"ack": "delivered", "module": "log",
         "transform": {"jq": "{ref, repo: .repository.full_name, commits: [.commits[].id]}", "timeout_ms": 10000}},
  "js": {"ack": "delivered", "module": "log",
         "transform": {"js": "addHandler('transform', (request) => { const b = request.body; request.body = {ref: b.ref, repo: b.repository.full_name, commits: b.commits.map((c) => c.id)}; return request; });", "timeout_ms": 10000}}
}
JSON
export BODY_FILE="$work/body.json"

RUST_LOG=warn ./target/release/webhook-server --host 127.0.0.1 --port "$PORT" \
  --webhooks-config "$work/webhooks.json" --data-dir "$work" --spool-dir "$work/spool" \
  >"$work/server.log" 2>&1 & pids+=($!)
wait_tcp 127.0.0.1 "$PORT" 20 || { cat "$work/server.log" >&2; exit 1; }
./target/release/bare-hyper "$BARE_PORT" unused & pids+=($!)
wait_tcp 127.0.0.1 "$BARE_PORT" 20

rate() { # url
  wrk -t1 -c"$CONNECTIONS" -d2s -s "$work/post.lua" "$1" >/dev/null
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/post.lua" "$1" | awk '/^Requests\/sec:/ {printf "%.0f", $2}'
}
declare -A runs
for round in $(seq "$ROUNDS"); do
  for row in bare plain jq js; do
    case $row in
      bare) url="http://127.0.0.1:$BARE_PORT/" ;;
      *) url="http://127.0.0.1:$PORT/webhook/$row" ;;
    esac
    runs[$row]+="$(rate "$url") "
  done
  echo "round $round: bare ${runs[bare]}/ plain/jq/js so far: ${runs[plain]} / ${runs[jq]} / ${runs[js]}" >&2
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
bare=$(median "${runs[bare]}"); plain=$(median "${runs[plain]}"); jq=$(median "${runs[jq]}"); js=$(median "${runs[js]}")
echo "wrk -t1 -c$CONNECTIONS, $ROUNDS interleaved rounds of ${DURATION} s, medians, 2.2 KB push body"
echo "| row | webhooks/s | ratio to bare | ratio to no transform | rounds |"
echo "|---|---:|---:|---:|---|"
printf '| bare hyper (answers 401) | %s | 1.00 | | %s |\n' "$bare" "${runs[bare]}"
printf '| log, no transform | %s | %.2f | 1.00 | %s |\n' "$plain" "$(bc -l <<<"$plain/$bare")" "${runs[plain]}"
printf '| log, jq transform | %s | %.2f | %.2f | %s |\n' "$jq" "$(bc -l <<<"$jq/$bare")" "$(bc -l <<<"$jq/$plain")" "${runs[jq]}"
printf '| log, js transform | %s | %.2f | %.2f | %s |\n' "$js" "$(bc -l <<<"$js/$bare")" "$(bc -l <<<"$js/$plain")" "${runs[js]}"
grep -i "error\|warn" "$work/server.log" | head -5 || true

[ "${INSTRUCTIONS:-1}" = 1 ] || exit 0
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
REQUESTS=${REQUESTS:-1000}
cat > "$work/send.py" <<'PY'
import http.client, os, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = open(os.environ["BODY_FILE"], "rb").read()
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
PY
echo
echo "callgrind Ir per webhook ($REQUESTS requests after warm-up; every thread and jq worker)"
echo "| row | Ir / webhook | ratio to no transform |"
echo "|---|---:|---:|"
plain_ir=
for row in plain jq js; do
  rm -rf "$work/spool" "$work"/callgrind.*
  RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --trace-children=yes \
    --callgrind-out-file="$work/callgrind.%p" ./target/release/webhook-server --host 127.0.0.1 \
    --port "$PORT" --webhooks-config "$work/webhooks.json" --data-dir "$work" \
    --spool-dir "$work/spool" >/dev/null 2>"$work/valgrind.$row.log" & pid=$!
  pids+=("$pid")
  wait_tcp 127.0.0.1 "$PORT" 120
  python3 "$work/send.py" "$PORT" "/webhook/$row" 200
  callgrind_control -i on >/dev/null # every callgrind process: the server and its workers
  python3 "$work/send.py" "$PORT" "/webhook/$row" "$REQUESTS"
  callgrind_control -i off >/dev/null
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  sleep 1
  ir=$(cat "$work"/callgrind.* | awk '/^totals:/ {s += $2} END {print s}')
  per=$((ir / REQUESTS))
  [ -n "$plain_ir" ] || plain_ir=$per
  printf '| log, %s | %s | %.2f |\n' "${row/plain/no transform}" "$per" "$(bc -l <<<"$per/$plain_ir")"
done
