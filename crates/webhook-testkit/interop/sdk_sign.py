"""Sign a body with a provider's own SDK and print the headers it produces, as JSON.

usage: sdk_sign.py PROVIDER SECRET BODY_FILE
PROVIDER: stripe | standard-webhooks | svix | slack
"""
import json
import sys
import time
from datetime import datetime, timezone

provider, secret, body_file = sys.argv[1:4]
body = open(body_file, "rb").read().decode("utf-8")
now = int(time.time())

if provider == "stripe":
    from stripe import WebhookSignature
    headers = {"Stripe-Signature": WebhookSignature.generate_signature_header(body, secret, now)}
elif provider in ("standard-webhooks", "svix"):
    if provider == "svix":
        from svix.webhooks import Webhook
        prefix = "svix"
    else:
        from standardwebhooks.webhooks import Webhook
        prefix = "webhook"
    msg_id = "msg_sdk_" + str(now)
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(now, tz=timezone.utc), body)
    headers = {f"{prefix}-id": msg_id, f"{prefix}-timestamp": str(now), f"{prefix}-signature": signature}
elif provider == "slack":
    from slack_sdk.signature import SignatureVerifier
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(now), body=body)
    headers = {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(now)}
else:
    sys.exit(f"unknown provider {provider}")
print(json.dumps(headers))
