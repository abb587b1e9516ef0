# Helpers for .ci/test: check a service is up, start it when it is down. Sourced.
# Addresses come from WEBHOOK_TEST_<SERVICE>_URL with loopback defaults; when CI=true a
# service that cannot be started is a failure, never a silent skip.

wait_tcp() { # host port seconds
  local deadline=$((SECONDS + ${3:-20}))
  while ((SECONDS < deadline)); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  return 1
}

require_tcp() { # name host port start-command...
  local name=$1 host=$2 port=$3
  shift 3
  if wait_tcp "$host" "$port" 1; then return 0; fi
  echo "$name is not running on $host:$port: starting it" >&2
  "$@" || true
  if ! wait_tcp "$host" "$port" 30; then
    echo "error: $name could not be started on $host:$port" >&2
    exit 1
  fi
}
