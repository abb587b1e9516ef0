#!/usr/bin/env bash
# Issue 18's load: 2,000 idle connections + 200 slow-body connections against the release
# server (`ack: persisted`, `log` to /dev/null), while a well-behaved client posts webhooks;
# prints its latency percentiles, the statuses, the server's peak RSS and how many attacker
# connections the server closed. SECONDS_UNDER_LOAD (default 40) sets the duration: past
# --idle-timeout/--body-read-timeout (30 s each) the server closes the attackers.
#
#   bash bench/slow_clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
port=18931
cat >"$work/webhooks.json" <<'JSON'
{"bench": {"module": "log", "module-config": {"pretty_print": false}}}
JSON
ulimit -Sn 1024  # systemd's usual LimitNOFILE=1024:524288: the server raises its soft limit itself
RUST_LOG=warn ./target/release/webhook-server --webhooks-config "$work/webhooks.json" \
  --host 127.0.0.1 --port "$port" --spool-dir "$work/spool" >/dev/null 2>"$work/server.log" &
pids+=($!)
server=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
python3 bench/slow_clients.py "127.0.0.1:$port" "$server" "${SECONDS_UNDER_LOAD:-40}"
