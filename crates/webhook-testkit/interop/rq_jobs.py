"""Functions that RQ workers run in the interop tests: they record what they received."""
import base64
import json
import os


def record(payload, headers):
    if isinstance(payload, (bytes, bytearray)):
        entry = {"type": "bytes", "payload": base64.b64encode(payload).decode()}
    else:
        entry = {"type": type(payload).__name__, "payload": payload}
    entry["headers"] = headers
    entry["headers_type"] = type(headers).__name__
    with open(os.environ["RECORD_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")
