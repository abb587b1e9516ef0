"""Read COUNT messages from a RabbitMQ queue with pika and print each as a JSON line.

usage: rabbit_consume.py URL QUEUE COUNT [SECONDS [keep]]
(with `keep` the queue is left in place, for more reads)
"""
import base64
import json
import sys
import time

import pika

url, queue, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 20
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
# Passive: the gateway declared it (perhaps with arguments this script does not know).
channel.queue_declare(queue=queue, passive=True)
deadline = time.monotonic() + seconds
received = 0
while received < count and time.monotonic() < deadline:
    method, properties, body = channel.basic_get(queue=queue, auto_ack=True)
    if method is None:
        time.sleep(0.05)
        continue
    headers = {}
    for key, value in (properties.headers or {}).items():
        headers[key] = value.decode("latin-1") if isinstance(value, bytes) else value
    print(json.dumps({
        "body": base64.b64encode(body).decode(),
        "headers": headers,
        "content_type": properties.content_type,
        "delivery_mode": properties.delivery_mode,
        "message_id": properties.message_id,
    }), flush=True)
    received += 1
# Report what is left, so a test can tell "exactly N" from "at least N".
left = channel.queue_declare(queue=queue, passive=True).method.message_count
print(json.dumps({"left": left}), flush=True)
# Test queues are single-use: leave nothing behind in the broker.
if not (len(sys.argv) > 5 and sys.argv[5] == "keep"):
    channel.queue_delete(queue=queue)
connection.close()
