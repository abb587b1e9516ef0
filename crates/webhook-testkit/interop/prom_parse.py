"""Parse Prometheus text format from stdin with the official client's parser and print one
JSON line per sample: {"name", "labels", "value"}. Exits non-zero if the text does not parse.
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value}))
