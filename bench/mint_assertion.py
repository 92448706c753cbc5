#!/usr/bin/env python3
"""Mints an identity assertion (HS256) like edge-proxy does, so the backend can be called directly.

Usage: mint_assertion.py SECRET_B64 SUB EMAIL METHOD PATH
Only for benchmarks: the direct and nginx runs need what the proxy would add.
"""
import base64, hashlib, hmac, json, sys, time


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


secret_b64, sub, email, method, path = sys.argv[1:6]
key = base64.b64decode(secret_b64.strip())
now = int(time.time())
header = {"alg": "HS256", "typ": "identity+jwt"}
claims = {"iss": "edge-proxy", "aud": "todo", "sub": sub, "email": email, "roles": ["user"],
          "jti": "bench", "htm": method, "htu": path, "iat": now, "exp": now + 60}
signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
print(signing_input + "." + b64(sig))
