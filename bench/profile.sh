#!/usr/bin/env bash
# Where one webhook's cost goes, for one server under wrk load: req/s and p99, then per
# webhook the gateway's CPU (user and kernel, from /proc ticks), the HTTP target's CPU
# (MODE=http), the gateway's task switches, TCP segments sent on loopback and, with
# SYSCALLS=1, its system calls (perf tracepoints: they slow the server, so take req/s from
# a run without). The figures behind BENCHMARKS.md's
# "where the time goes" paragraphs; use it to A/B two binaries (BIN=...) in alternation.
#
#   MODE=log|http|persisted|bare bash bench/profile.sh
#   (CONNECTIONS=32 DURATION=8, BIN=target/release/webhook-server, SPOOL=dir, EXTRA="--flags",
#    PIN=1: the gateway alone on CPU 0, wrk and the target on CPU 1, as bench/http.sh runs)
#
# MODE: `log` — HMAC + log, ack: delivered (the foundation's webhook); `http` — the same
# forwarding to a local keep-alive target (`bare-hyper PORT -`); `persisted` — HMAC + log,
# ack: persisted; `bare` — the bare hyper + HMAC ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${MODE:-log}
BIN=${BIN:-./target/release/webhook-server}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
SECRET=bench-secret
GATEWAY_PORT=${GATEWAY_PORT:-9109}
TARGET_PORT=${TARGET_PORT:-9110}

source bench/common.sh
source bench/payload.sh

hmac="\"hmac\": {\"secret\": \"$SECRET\", \"header\": \"X-Hub-Signature-256\", \"algorithm\": \"sha256\"}"
cat > "$work/webhooks.json" <<JSON
{"log": {"data_type": "json", "module": "log", "ack": "delivered", $hmac},
 "persisted": {"data_type": "json", "module": "log", "ack": "persisted", $hmac},
 "http": {"data_type": "json", "module": "http_webhook", "ack": "delivered", $hmac,
          "module-config": {"url": "http://127.0.0.1:$TARGET_PORT/hook"}}}
JSON

gateway_cpu=() other_cpu=()
if [ "${PIN:-0}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  gateway_cpu=(taskset -c 0) other_cpu=(taskset -c 1)
fi
target=
if [ "$MODE" = http ]; then
  "${other_cpu[@]}" ./target/release/bare-hyper "$TARGET_PORT" - & target=$!; pids+=("$target")
  wait_port "$TARGET_PORT"
fi
if [ "$MODE" = bare ]; then
  "${gateway_cpu[@]}" ./target/release/bare-hyper "$GATEWAY_PORT" "$SECRET" & gw=$!
  path=/webhook/bench
else
  # shellcheck disable=SC2086 # EXTRA is a list of flags
  RUST_LOG=info,webhook::request=off "${gateway_cpu[@]}" "$BIN" --host 127.0.0.1 --port "$GATEWAY_PORT" \
    --webhooks-config "$work/webhooks.json" --data-dir "$work" \
    --spool-dir "${SPOOL:-$work/spool}" ${EXTRA:-} >/dev/null 2>&1 & gw=$!
  path=/webhook/$MODE
fi
pids+=("$gw")
wait_port "$GATEWAY_PORT"
url="http://127.0.0.1:$GATEWAY_PORT$path"
"${other_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s "$work/post.lua" "$url" >/dev/null

ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
segments() { awk '/^Tcp:/ && $2 ~ /^[0-9]/ {print $12}' /proc/net/snmp; }

before="$(ticks "$gw") $( [ -n "$target" ] && ticks "$target" || echo 0 0) $(switches "$gw") $(segments)"
if [ -n "${SYSCALLS:-}" ]; then
  perf stat -e 'syscalls:sys_enter_*' -p "$gw" -o "$work/syscalls" -- sleep "$DURATION" \
    >/dev/null 2>&1 & perf=$!
fi
out=$("${other_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" "$url")
if [ -n "${SYSCALLS:-}" ]; then wait "$perf"; fi
after="$(ticks "$gw") $( [ -n "$target" ] && ticks "$target" || echo 0 0) $(switches "$gw") $(segments)"
if grep -q "Non-2xx" <<<"$out"; then
  echo "$MODE answered errors:" >&2; echo "$out" >&2; exit 1
fi

python3 - "$MODE" "$before" "$after" "$out" "$work/syscalls" <<'PY'
import os, re, sys
mode, before, after, out, syscalls = sys.argv[1:]
b, a = list(map(int, before.split())), list(map(int, after.split()))
n = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p99 = re.search(r"\s99%\s+(\S+)", out).group(1)
hz = os.sysconf("SC_CLK_TCK")
us = lambda i: (a[i] - b[i]) * 1e6 / hz / n
print(f"{mode}: {rps:,.0f} req/s, p99 {p99}, {n} webhooks")
print(f"  gateway CPU per webhook: {us(0):.1f} µs user + {us(1):.1f} µs kernel")
if a[2] + a[3] > b[2] + b[3]:
    print(f"  target CPU per webhook: {us(2) + us(3):.1f} µs")
print(f"  gateway task switches per webhook: {(a[4] - b[4]) / n:.3f}")
print(f"  TCP segments sent per webhook (whole host): {(a[5] - b[5]) / n:.2f}")
if os.path.exists(syscalls):
    for line in open(syscalls):
        parts = line.split()
        if len(parts) >= 2 and parts[0].replace(",", "").isdigit():
            count = int(parts[0].replace(",", ""))
            if count / n >= 0.05:
                print(f"  {parts[1].removeprefix('syscalls:sys_enter_')}: {count / n:.2f} per webhook")
PY
