# The load of the HMAC benchmarks (sourced after common.sh): a 2.2 KB GitHub-like push
# payload signed with $SECRET, wrk's post.lua, and `measure NAME PORT PATH PID`.
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

# measure NAME PORT PATH PID -> "rps p50 p99 rss_kb" (wrk pinned to $WRK_CPU when set)
measure() {
  local url="http://127.0.0.1:$2$3"
  # shellcheck disable=SC2086 # WRK_CPU: wrk on these CPUs (taskset), when set
  ${WRK_CPU:+taskset -c $WRK_CPU} wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s "$work/post.lua" "$url" >/dev/null
  local out
  # shellcheck disable=SC2086
  out=$(${WRK_CPU:+taskset -c $WRK_CPU} wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" "$url")
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


# ack_configs MODE...: $work/<MODE>.json, the HMAC + `log` webhook `bench` with `ack: MODE`.
ack_configs() {
  for mode in "$@"; do
    cat > "$work/$mode.json" <<JSON
{"bench": {"data_type": "json", "module": "log", "ack": "$mode",
           "hmac": {"secret": "$SECRET", "header": "X-Hub-Signature-256", "algorithm": "sha256"}}}
JSON
  done
}
