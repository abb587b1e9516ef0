#!/usr/bin/env bash
# Benchmark: end-to-end webhooks/s into each broker destination, with broker
# acknowledgements (RabbitMQ publisher confirms, Redis replies, Kafka produce acks), next to
# the `log` destination, a bare hyper server and RabbitMQ's own publish ceiling in the same
# run. Release build, wrk over
# loopback, 2.2 KB JSON body, brokers on the same 2-core machine.
#
#   bash bench/destinations.sh      # DURATION=10 CONNECTIONS=64 by default
#
# Needs what `bash .ci/test` starts: Redis :6379, RabbitMQ :5672, tansu :9092, NATS :4222,
# Mosquitto :1883, PostgreSQL :5432, MariaDB :3306, the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/services.sh

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-9103}
BARE_PORT=${BARE_PORT:-9104}
TARGET_PORT=${TARGET_PORT:-9105}
S3_PORT=${S3_PORT:-9106}

ensure_python_venv
ensure_redis
ensure_rabbitmq
ensure_kafka
ensure_s3s
ensure_nats
ensure_mosquitto
ensure_postgres
ensure_mariadb
source bench/common.sh

run_id=$(date +%s)
topic="bench-$run_id"
queue="bench-$run_id"
"$WEBHOOK_TEST_PYTHON" - "$topic" <<'PY'
import sys
from kafka.admin import KafkaAdminClient, NewTopic
admin = KafkaAdminClient(bootstrap_servers="127.0.0.1:9092")
admin.create_topics([NewTopic(sys.argv[1], num_partitions=1, replication_factor=1)])
admin.close()
PY
# A JetStream stream for the nats row (file storage, as in production).
"$WEBHOOK_TEST_PYTHON" crates/webhook-testkit/interop/nats_tool.py stream nats://127.0.0.1:4222 "BENCH_$run_id" "bench.$run_id"
table="bench_$run_id"

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
cat > "$work/webhooks.json" <<JSON
{
  "log": {"ack": "delivered", "module": "log"},
  "redis_publish": {"ack": "delivered", "module": "redis_publish", "connection": "redis", "module-config": {"channel": "bench-$run_id"}},
  "redis_rq": {"ack": "delivered", "module": "redis_rq", "connection": "redis", "module-config": {"function": "bench.handle", "queue_name": "$queue"}},
  "rabbitmq": {"ack": "delivered", "module": "rabbitmq", "connection": "rabbit", "module-config": {"queue_name": "$queue"}},
  "rabbitmq_cqv2": {"ack": "delivered", "module": "rabbitmq", "connection": "rabbit", "module-config": {"queue_name": "$queue-v2", "queue_arguments": {"x-queue-version": 2}}},
  "rabbitmq_quorum": {"ack": "delivered", "module": "rabbitmq", "connection": "rabbit", "module-config": {"queue_name": "$queue-quorum", "queue_arguments": {"x-queue-type": "quorum"}}},
  "kafka": {"ack": "delivered", "module": "kafka", "connection": "kafka", "module-config": {"topic": "$topic"}},
  "http_webhook": {"ack": "delivered", "module": "http_webhook", "module-config": {"url": "http://127.0.0.1:$TARGET_PORT/hook"}},
  "s3": {"ack": "delivered", "module": "s3", "connection": "s3", "module-config": {"bucket": "bench"}},
  "redis_stream": {"ack": "delivered", "module": "redis_stream", "connection": "redis", "module-config": {"stream": "bench-$run_id"}},
  "nats": {"ack": "delivered", "module": "nats", "connection": "nats", "module-config": {"subject": "bench.$run_id", "jetstream": true}},
  "mqtt": {"ack": "delivered", "module": "mqtt", "connection": "mqtt", "module-config": {"topic": "bench/$run_id", "qos": 1}},
  "postgresql": {"ack": "delivered", "module": "postgresql", "connection": "pg", "module-config": {"table": "$table"}},
  "mysql": {"ack": "delivered", "module": "mysql", "connection": "mariadb", "module-config": {"table": "$table"}}
}
JSON
cat > "$work/connections.json" <<JSON
{
  "redis": {"type": "redis-rq", "host": "127.0.0.1", "port": 6379},
  "rabbit": {"type": "rabbitmq", "host": "127.0.0.1", "port": 5672, "user": "guest", "pass": "guest"},
  "kafka": {"type": "kafka", "bootstrap_servers": "127.0.0.1:9092"},
  "s3": {"type": "s3", "aws_access_key_id": "bench", "aws_secret_access_key": "benchsecret", "endpoint_url": "http://127.0.0.1:$S3_PORT"},
  "nats": {"type": "nats", "url": "nats://127.0.0.1:4222"},
  "mqtt": {"type": "mqtt", "host": "127.0.0.1", "port": 1883, "client_id": "bench-$run_id"},
  "pg": {"type": "postgresql", "host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres", "pool_max_size": 10},
  "mariadb": {"type": "mysql", "host": "127.0.0.1", "port": 3306, "database": "test", "user": "root", "pool_max_size": 10}
}
JSON
export BODY_FILE="$work/body.json"

wait_tcp 127.0.0.1 "$PORT" 0 2>/dev/null && { echo "port $PORT is busy" >&2; exit 1; }
RUST_LOG=warn ./target/release/webhook-server --host 127.0.0.1 --port "$PORT" \
  --webhooks-config "$work/webhooks.json" --connections-config "$work/connections.json" \
  --data-dir "$work" --spool-dir "$work/spool" >"$work/server.log" 2>&1 & pids+=($!)
wait_tcp 127.0.0.1 "$PORT" 20 || { cat "$work/server.log" >&2; exit 1; }
./target/release/bare-hyper "$BARE_PORT" unused & pids+=($!)
wait_tcp 127.0.0.1 "$BARE_PORT" 20
# The http_webhook target: the same bare server answering 200 after reading the body.
./target/release/bare-hyper "$TARGET_PORT" - & pids+=($!)
wait_tcp 127.0.0.1 "$TARGET_PORT" 20
# The S3-compatible store (s3s-fs: SigV4 checked, one file per object) on a scratch dir.
mkdir -p "$work/s3/bench"
"$WEBHOOK_TEST_TOOLS/s3s-fs" --host 127.0.0.1 --port "$S3_PORT" --access-key bench \
  --secret-key benchsecret "$work/s3" >/dev/null 2>&1 & pids+=($!)
wait_tcp 127.0.0.1 "$S3_PORT" 20

measure() { # name url
  wrk -t1 -c"$CONNECTIONS" -d2s -s "$work/post.lua" "$2" >/dev/null
  local out
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" "$2")
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '| %s | %.0f | %s | %s | %s |\n' "$1" "$rps" "$p50" "$p99" "${errors:-0}"
}

echo "wrk -t1 -c$CONNECTIONS, ${DURATION} s per destination, 2.2 KB JSON, answers after the broker acknowledged"
echo "| destination | webhooks/s | p50 | p99 | non-2xx |"
echo "|---|---:|---:|---:|---:|"
# The bare server answers 401 (no signature sent): it is the HTTP ceiling only.
measure "bare hyper (HTTP ceiling, answers 401)" "http://127.0.0.1:$BARE_PORT/" | sed 's/| [0-9]* |$/| n\/a |/'
# Each RabbitMQ row is followed by the broker's own ceiling for the same queue type: the
# same messages published straight with lapin and confirms, 64 in flight over 4 channels,
# no HTTP in between. Queues are emptied between rows so that no row pays for the backlog
# of the one before.
rabbit_ceiling() { # name queue [queue-version | quorum]
  rabbitmqctl -q purge_queue "$2" >/dev/null 2>&1 || true
  local rate
  rate=$(./target/release/rabbit-ceiling "amqp://guest:guest@127.0.0.1:5672/%2f" "$2-ceiling" "$DURATION" "$CONNECTIONS" ${3:-})
  rabbitmqctl -q delete_queue "$2-ceiling" >/dev/null 2>&1 || true
  printf '| %s ceiling (lapin publisher, no HTTP) | %s | | | n/a |\n' "$1" "$rate"
}
# The SQL rows also count statements: rows per commit shows the group insert at work.
sql() { "$WEBHOOK_TEST_PYTHON" crates/webhook-testkit/interop/sql_query.py "$@" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(list(r[0].values())[0] if r else 0)'; }
pg_url=postgresql://postgres@127.0.0.1:5432/test
my_url=mysql://root@127.0.0.1:3306/test
pg_commits() { sql "$pg_url" "SELECT xact_commit FROM pg_stat_database WHERE datname = 'test'"; }
my_inserts() { sql "$my_url" "SELECT variable_value FROM information_schema.global_status WHERE variable_name = 'COM_INSERT'"; }
notes=""
# ONLY="log postgresql" measures just those rows.
for name in ${ONLY:-log redis_publish redis_rq redis_stream rabbitmq rabbitmq_cqv2 rabbitmq_quorum kafka http_webhook s3 nats mqtt postgresql mysql}; do
  case $name in
    postgresql) statements_before=$(pg_commits) ;;
    mysql) statements_before=$(my_inserts) ;;
  esac
  measure "$name" "http://127.0.0.1:$PORT/webhook/$name"
  case $name in
    postgresql)
      notes+="postgresql: $(sql "$pg_url" "SELECT count(*) FROM $table") rows in $(( $(pg_commits) - statements_before )) commits (all of the database's, health checks included)"$'\n' ;;
    mysql)
      notes+="mysql: $(sql "$my_url" "SELECT count(*) FROM $table") rows in $(( $(my_inserts) - statements_before )) INSERT statements"$'\n' ;;
  esac
  case $name in
    rabbitmq) rabbit_ceiling "$name" "$queue" ;;
    rabbitmq_cqv2) rabbit_ceiling "$name" "$queue-v2" 2 ;;
    rabbitmq_quorum) rabbit_ceiling "$name" "$queue-quorum" quorum ;;
  esac
done

printf '\n%s' "$notes"

# Leave nothing behind in the brokers.
redis-cli del "rq:queue:$queue" "bench-$run_id" >/dev/null
"$WEBHOOK_TEST_PYTHON" crates/webhook-testkit/interop/nats_tool.py delete nats://127.0.0.1:4222 "BENCH_$run_id" || true
"$WEBHOOK_TEST_PYTHON" crates/webhook-testkit/interop/sql_query.py postgresql://postgres@127.0.0.1:5432/test "DROP TABLE IF EXISTS $table" >/dev/null || true
"$WEBHOOK_TEST_PYTHON" crates/webhook-testkit/interop/sql_query.py mysql://root@127.0.0.1:3306/test "DROP TABLE IF EXISTS $table" >/dev/null || true
redis-cli --scan --pattern 'rq:job:*' | head -n 2000000 | xargs -r -n 1000 redis-cli del >/dev/null 2>&1 || true
"$WEBHOOK_TEST_PYTHON" - "$queue" <<'PY' || true
import sys, pika
connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
channel = connection.channel()
channel.queue_delete(queue=sys.argv[1])
for suffix in ("-ceiling", "-v2", "-v2-ceiling", "-quorum", "-quorum-ceiling"):
    channel.queue_delete(queue=sys.argv[1] + suffix)
connection.close()
PY
