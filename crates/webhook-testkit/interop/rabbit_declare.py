"""Declare a durable queue with pika and the given arguments; print "ok", or "refused CODE"
when the broker refuses it (406: it exists with other arguments).

usage: rabbit_declare.py URL QUEUE ARGUMENTS_JSON
"""
import json
import sys

import pika

url, queue, arguments = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
try:
    channel.queue_declare(queue=queue, durable=True, arguments=arguments or None)
    print("ok")
except pika.exceptions.ChannelClosedByBroker as err:
    print(f"refused {err.reply_code}")
connection.close()
