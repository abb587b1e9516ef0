"""A WebSocket server (Python `websockets`) that appends one JSON line per received frame
to OUT: {"connection": n, "type": "text"|"binary", "data": base64, "headers": {...}} (the
handshake headers, on the first frame of each connection only).

usage: ws_server.py PORT OUT MODE    MODE: reply (answer each frame with "ok") | silent
"""
import asyncio
import base64
import itertools
import json
import sys

from websockets.asyncio.server import serve

port, out_path, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = open(out_path, "a", buffering=1)
connections = itertools.count(1)


async def handler(ws):
    number = next(connections)
    headers = {k.lower(): v for k, v in ws.request.headers.raw_items()}
    first = True
    async for message in ws:
        is_text = isinstance(message, str)
        data = message.encode() if is_text else message
        record = {"connection": number, "type": "text" if is_text else "binary",
                  "data": base64.b64encode(data).decode()}
        if first:
            record["headers"] = headers
            first = False
        out.write(json.dumps(record) + "\n")
        out.flush()
        if mode == "reply":
            await ws.send("ok")


async def main():
    async with serve(handler, "127.0.0.1", port, max_size=None):
        await asyncio.get_running_loop().create_future()


asyncio.run(main())
