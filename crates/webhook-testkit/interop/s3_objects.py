"""List every object of a bucket with boto3 and print one JSON line per object:
key, body (base64), content type and user metadata.

usage: s3_objects.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET
"""
import base64
import json
import sys

import boto3
from botocore.config import Config

endpoint, access_key, secret_key, bucket = sys.argv[1:5]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=access_key,
    aws_secret_access_key=secret_key,
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
)
keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
    keys.extend(item["Key"] for item in page.get("Contents", []))
for key in sorted(keys):
    obj = s3.get_object(Bucket=bucket, Key=key)
    print(json.dumps({
        "key": key,
        "body": base64.b64encode(obj["Body"].read()).decode(),
        "content_type": obj.get("ContentType"),
        "metadata": obj.get("Metadata", {}),
    }), flush=True)
