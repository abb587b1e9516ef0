#!/usr/bin/env bash
# Benchmark: the 2.2 KB push body through a jq transform
# (`{ref, repo: .repository.full_name, commits: [.commits[].id]}`) next to the same webhook
# without one, both `ack: delivered` into `log` (so the answer waits for the transform),
# and the bare hyper server, in interleaved rounds (medians). Release build, wrk over
# loopback, everything on the same machine.
#
#   bash bench/transform.sh        # ROUNDS=3 DURATION=8 CONNECTIONS=64 by default
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
cat > "$work/webhooks.json" <<'JSON'
{
  "plain": {"ack": "delivered", "module": "log"},
  "jq": {"ack": "delivered", "module": "log",
         "transform": {"jq": "{ref, repo: .repository.full_name, commits: [.commits[].id]}"}}
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
  for row in bare plain jq; do
    case $row in
      bare) url="http://127.0.0.1:$BARE_PORT/" ;;
      *) url="http://127.0.0.1:$PORT/webhook/$row" ;;
    esac
    runs[$row]+="$(rate "$url") "
  done
  echo "round $round: bare ${runs[bare]##* }… plain/jq so far: ${runs[plain]} / ${runs[jq]}" >&2
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
bare=$(median "${runs[bare]}"); plain=$(median "${runs[plain]}"); jq=$(median "${runs[jq]}")
echo "wrk -t1 -c$CONNECTIONS, $ROUNDS interleaved rounds of ${DURATION} s, medians, 2.2 KB push body"
echo "| row | webhooks/s | ratio to bare | ratio to no transform | rounds |"
echo "|---|---:|---:|---:|---|"
printf '| bare hyper (answers 401) | %s | 1.00 | | %s |\n' "$bare" "${runs[bare]}"
printf '| log, no transform | %s | %.2f | 1.00 | %s |\n' "$plain" "$(bc -l <<<"$plain/$bare")" "${runs[plain]}"
printf '| log, jq transform | %s | %.2f | %.2f | %s |\n' "$jq" "$(bc -l <<<"$jq/$bare")" "$(bc -l <<<"$jq/$plain")" "${runs[jq]}"
grep -i "error\|warn" "$work/server.log" | head -5 || true
