"""NATS checks with nats-py (an independent client).

usage:
  nats_tool.py stream URL NAME SUBJECT...      (re)create a file-backed JetStream stream
  nats_tool.py delete URL NAME                 delete a stream (if there is one)
  nats_tool.py read URL NAME COUNT SECONDS     wait until the stream holds COUNT messages,
                                               print each as a JSON line
  nats_tool.py sub URL SUBJECT COUNT SECONDS   core subscription: print READY, then each
                                               message as a JSON line
A JSON line is {"subject": ..., "headers": {...}, "data": base64}.
"""
import asyncio
import base64
import json
import sys
import time

import nats
from nats.js.api import StreamConfig, StorageType


def line(subject, headers, data):
    print(json.dumps({
        "subject": subject,
        "headers": dict(headers or {}),
        "data": base64.b64encode(data).decode(),
    }), flush=True)


async def main():
    command, url = sys.argv[1], sys.argv[2]
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    js = nc.jetstream()
    if command == "stream":
        name, subjects = sys.argv[3], sys.argv[4:]
        try:
            await js.delete_stream(name)
        except nats.js.errors.NotFoundError:
            pass
        await js.add_stream(StreamConfig(name=name, subjects=subjects, storage=StorageType.FILE))
    elif command == "delete":
        try:
            await js.delete_stream(sys.argv[3])
        except nats.js.errors.NotFoundError:
            pass
    elif command == "read":
        name, count, seconds = sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        deadline = time.monotonic() + seconds
        while True:
            info = await js.stream_info(name)
            if info.state.messages >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        if info.state.messages:
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(name, seq)
                except nats.js.errors.NotFoundError:
                    continue
                line(msg.subject, msg.headers, msg.data)
    elif command == "sub":
        subject, count, seconds = sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        sub = await nc.subscribe(subject)
        await nc.flush()
        print("READY", flush=True)
        deadline = time.monotonic() + seconds
        received = 0
        while received < count and time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=max(0.1, deadline - time.monotonic()))
            except nats.errors.TimeoutError:
                break
            line(msg.subject, msg.headers, msg.data)
            received += 1
    await nc.close()


asyncio.run(main())
