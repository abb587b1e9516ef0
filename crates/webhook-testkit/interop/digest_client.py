"""HTTP Digest through Python requests (the independent client): post once with the right
password, then replay its exact Authorization header, then post with a wrong password;
print the three statuses as JSON.

usage: digest_client.py URL USER PASSWORD
"""
import json
import sys

import requests
from requests.auth import HTTPDigestAuth

url, user, password = sys.argv[1:4]
body = b'{"event": "digest"}'
headers = {"Content-Type": "application/json"}
first = requests.post(url, data=body, headers=headers, auth=HTTPDigestAuth(user, password), timeout=10)
authorization = first.request.headers.get("Authorization", "")
replay = requests.post(url, data=body, headers={**headers, "Authorization": authorization}, timeout=10)
wrong = requests.post(url, data=body, headers=headers, auth=HTTPDigestAuth(user, password + "x"), timeout=10)
print(json.dumps({
    "first": first.status_code,
    "challenged": first.history[0].status_code if first.history else None,
    "replay": replay.status_code,
    "replay_challenge": replay.headers.get("WWW-Authenticate", ""),
    "wrong": wrong.status_code,
    "sent_digest": authorization.startswith("Digest "),
}))
