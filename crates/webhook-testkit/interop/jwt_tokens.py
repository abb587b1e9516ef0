"""Make JWTs with PyJWT (the independent signer) and print them with the public keys, as JSON.

usage: jwt_tokens.py HS_SECRET ISSUER AUDIENCE
"""
import base64
import hashlib
import hmac
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

secret, issuer, audience = sys.argv[1:4]
now = int(time.time())
claims = {"sub": "sender", "iss": issuer, "aud": audience, "iat": now, "exp": now + 600}


def pem(private):
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
rs_public = pem(rsa_key)

# HS256 signed with the RSA public key's PEM as the secret: the "algorithm confusion" attack.
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
payload = b64(json.dumps(claims).encode())
confusion_sig = hmac.new(rs_public.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()

tokens = {
    "hs_ok": jwt.encode(claims, secret, algorithm="HS256"),
    "hs_expired": jwt.encode({**claims, "exp": now - 3600}, secret, algorithm="HS256"),
    "hs_no_exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret, algorithm="HS256"),
    "hs_wrong_iss": jwt.encode({**claims, "iss": "someone-else"}, secret, algorithm="HS256"),
    "hs_wrong_aud": jwt.encode({**claims, "aud": "other-service"}, secret, algorithm="HS256"),
    "hs_wrong_key": jwt.encode(claims, secret + "x", algorithm="HS256"),
    "hs512": jwt.encode(claims, secret, algorithm="HS512"),
    "none": jwt.encode(claims, None, algorithm="none"),
    "rs_ok": jwt.encode(claims, rsa_key, algorithm="RS256"),
    "es_ok": jwt.encode(claims, ec_key, algorithm="ES256"),
    "confusion": f"{header}.{payload}.{b64(confusion_sig)}",
}
print(json.dumps({"rs_public": rs_public, "es_public": pem(ec_key), "tokens": tokens}))
