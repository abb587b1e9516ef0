"""Read a Redis stream from its start with XREAD until COUNT entries arrived; print each as
a JSON line {"id": ..., "fields": {name: base64(value)}}.

usage: redis_xread.py URL STREAM COUNT [SECONDS]
"""
import base64
import json
import sys
import time

import redis

url, stream, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + (float(sys.argv[4]) if len(sys.argv) > 4 else 30)
client = redis.Redis.from_url(url)
last, received = "0-0", 0
while received < count:
    if time.monotonic() > deadline:
        sys.exit(f"only {received} of {count} entries arrived")
    for _, entries in client.xread({stream: last}, count=1000, block=500) or []:
        for entry_id, fields in entries:
            last = entry_id
            received += 1
            print(json.dumps({
                "id": entry_id.decode(),
                "fields": {k.decode(): base64.b64encode(v).decode() for k, v in fields.items()},
            }), flush=True)
