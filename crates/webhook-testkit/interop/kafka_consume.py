"""Read COUNT records from a Kafka topic with kafka-python and print each as a JSON line,
with the partition kafka-python's default partitioner would pick for its key.

usage: kafka_consume.py BOOTSTRAP TOPIC COUNT [SECONDS]
"""
import base64
import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 20
consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
partitions = sorted(consumer.partitions_for_topic(topic) or [])
consumer.assign([TopicPartition(topic, p) for p in partitions])
consumer.seek_to_beginning()
b64 = lambda data: None if data is None else base64.b64encode(data).decode()
received = 0
deadline = time.monotonic() + seconds
while received < count and time.monotonic() < deadline:
    for records in consumer.poll(timeout_ms=500).values():
        for record in records:
            # kafka-python's DefaultPartitioner for a keyed record
            expected = partitions[(murmur2(record.key) & 0x7FFFFFFF) % len(partitions)] if record.key is not None else None
            print(json.dumps({
                "partition": record.partition,
                "expected_partition": expected,
                "key": b64(record.key),
                "value": b64(record.value),
                "headers": {k: b64(v) for k, v in record.headers},
            }), flush=True)
            received += 1
consumer.close()
