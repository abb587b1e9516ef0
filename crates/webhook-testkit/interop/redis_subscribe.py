"""Subscribe to a Redis channel, print READY, then print each message base64-encoded.

usage: redis_subscribe.py URL CHANNEL COUNT [SECONDS]
"""
import base64
import sys
import time

import redis

url, channel, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
pubsub = redis.Redis.from_url(url).pubsub()
pubsub.subscribe(channel)
deadline = time.monotonic() + (float(sys.argv[4]) if len(sys.argv) > 4 else 30)
while True:
    message = pubsub.get_message(timeout=1)
    if message and message["type"] == "subscribe":
        break
    if time.monotonic() > deadline:
        sys.exit("no subscribe confirmation")
print("READY", flush=True)
received = 0
while received < count:
    if time.monotonic() > deadline:
        sys.exit(f"only {received} of {count} messages arrived")
    message = pubsub.get_message(timeout=1)
    if message and message["type"] == "message":
        print(base64.b64encode(message["data"]).decode(), flush=True)
        received += 1
