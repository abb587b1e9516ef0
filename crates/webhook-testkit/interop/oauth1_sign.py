"""Sign a request with oauthlib (the independent OAuth 1.0 client) and print its
Authorization header.

usage: oauth1_sign.py URL BODY CONTENT_TYPE CONSUMER_KEY CONSUMER_SECRET METHOD [TIMESTAMP]
METHOD is HMAC-SHA1 or PLAINTEXT.
"""
import sys

from oauthlib import oauth1

url, body, content_type, key, secret, method = sys.argv[1:7]
timestamp = sys.argv[7] if len(sys.argv) > 7 else None
client = oauth1.Client(key, client_secret=secret, signature_method=method, timestamp=timestamp)
_, headers, _ = client.sign(url, http_method="POST", body=body, headers={"Content-Type": content_type})
print(headers["Authorization"])
