#!/usr/bin/env bash
# Benchmark: the `verify` presets next to plain `hmac`, same server, same run: a 2.2 KB
# JSON body signed GitHub-style (`hmac`), Stripe-style and Standard-Webhooks-style, each
# delivered to `log`. Release build, wrk over loopback, ROUNDS alternating rounds.
#
#   bash bench/verify.sh            # ROUNDS=3 DURATION=10 CONNECTIONS=32 by default
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-9107}

source .ci/services.sh
source bench/common.sh

python3 - "$work" <<'PY'
import base64, hashlib, hmac, json, sys, time
work = sys.argv[1]
commits = [{"id": f"{i:040x}", "message": f"Fix the frobnicator, part {i}", "modified": [f"src/m{i}.rs"]} for i in range(8)]
body = {"id": "evt_1NqGv2", "type": "push", "commits": commits}
data = json.dumps(body).encode()
body["padding"] = "x" * max(0, 2200 - len(data) - 14)
data = json.dumps(body).encode()
open(f"{work}/body.json", "wb").write(data)
t = str(int(time.time()))
gh = "sha256=" + hmac.new(b"gh-secret", data, hashlib.sha256).hexdigest()
stripe_sig = hmac.new(b"whsec_stripe_secret", t.encode() + b"." + data, hashlib.sha256).hexdigest()
std_key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
std_sig = base64.b64encode(hmac.new(std_key, b"msg_1." + t.encode() + b"." + data, hashlib.sha256).digest()).decode()
headers = {
  "hmac": {"X-Hub-Signature-256": gh},
  "stripe": {"Stripe-Signature": f"t={t},v1={stripe_sig}"},
  "standard": {"webhook-id": "msg_1", "webhook-timestamp": t, "webhook-signature": f"v1,{std_sig}"},
}
for name, h in headers.items():
    lines = ['wrk.method = "POST"', f'local f = assert(io.open("{work}/body.json", "rb"))',
             "wrk.body = f:read('*a')", "f:close()", 'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in h.items()]
    open(f"{work}/{name}.lua", "w").write("\n".join(lines) + "\n")
PY
cat > "$work/webhooks.json" <<'JSON'
{
  "hmac": {"ack": "delivered", "module": "log", "hmac": {"secret": "gh-secret", "header": "X-Hub-Signature-256", "algorithm": "sha256"}},
  "stripe": {"ack": "delivered", "module": "log", "verify": {"provider": "stripe", "secret": "whsec_stripe_secret", "tolerance": 3600}},
  "standard": {"ack": "delivered", "module": "log", "verify": {"provider": "standard-webhooks", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "tolerance": 3600}}
}
JSON
wait_tcp 127.0.0.1 "$PORT" 0 2>/dev/null && { echo "port $PORT is busy" >&2; exit 1; }
RUST_LOG=warn ./target/release/webhook-server --host 127.0.0.1 --port "$PORT" \
  --webhooks-config "$work/webhooks.json" --data-dir "$work" --spool-dir "$work/spool" >"$work/server.log" 2>&1 & pids+=($!)
wait_tcp 127.0.0.1 "$PORT" 20 || { cat "$work/server.log" >&2; exit 1; }

declare -A total
for name in hmac stripe standard; do
  out=$(wrk -t1 -c"$CONNECTIONS" -d1s -s "$work/$name.lua" "http://127.0.0.1:$PORT/webhook/$name")
  if grep -q "Non-2xx" <<<"$out"; then echo "$name: non-2xx answers" >&2; cat "$work/server.log" >&2; exit 1; fi
  total[$name]=0
done
echo "| round | hmac | stripe | standard-webhooks |"
echo "|---|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
  row="| $round"
  for name in hmac stripe standard; do
    out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/$name.lua" "http://127.0.0.1:$PORT/webhook/$name")
    if grep -q "Non-2xx" <<<"$out"; then echo "$name: non-2xx answers" >&2; exit 1; fi
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
    total[$name]=$(( ${total[$name]} + rps ))
    row="$row | $rps"
  done
  echo "$row |"
done
h=${total[hmac]} s=${total[stripe]} w=${total[standard]}
echo "| mean | $((h / ROUNDS)) | $((s / ROUNDS)) ($((100 * s / h)) %) | $((w / ROUNDS)) ($((100 * w / h)) %) |"
