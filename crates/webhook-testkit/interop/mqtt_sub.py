"""Subscribe with paho-mqtt (QoS 1), print READY once subscribed, then each message as a
JSON line {"topic", "qos", "retain", "data": base64}; exit after COUNT messages or SECONDS.

usage: mqtt_sub.py HOST PORT TOPIC COUNT SECONDS [CLIENT_ID]
With CLIENT_ID the session is persistent (clean_session false) and survives a broker
restart: the subscriber reconnects and the broker hands over what it queued meanwhile.
MQTT_USER / MQTT_PASSWORD in the environment log in with a user.
"""
import base64
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

host, port, topic, count, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
client_id = sys.argv[6] if len(sys.argv) > 6 else ""
subscribed = threading.Event()
lock = threading.Lock()
received = 0

client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not client_id)
client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
if os.environ.get("MQTT_USER"):
    client.username_pw_set(os.environ["MQTT_USER"], os.environ.get("MQTT_PASSWORD", ""))


def on_connect(client, userdata, flags, reason_code, properties):
    if reason_code.is_failure:
        return
    client.subscribe(topic, qos=1)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    if not subscribed.is_set():
        subscribed.set()
        print("READY", flush=True)


def on_message(client, userdata, message):
    global received
    with lock:
        received += 1
        print(json.dumps({
            "topic": message.topic,
            "qos": message.qos,
            "retain": bool(message.retain),
            "data": base64.b64encode(message.payload).decode(),
        }), flush=True)


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(host, port, keepalive=10)
client.loop_start()
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    with lock:
        if received >= count:
            break
    time.sleep(0.02)
client.loop_stop()
with lock:
    sys.exit(0 if received >= count else f"only {received} of {count} messages arrived")
