#!/usr/bin/python3
"""client.py: what an Anthropic SDK does with the base URL
https://api.kimi.com/coding/v1 (it appends /v1/messages): prints the HTTP
status. Debian's python3: OpenSSL through _ssl, trust from SSL_CERT_FILE."""
import json
import urllib.error
import urllib.request

req = urllib.request.Request(
    "https://api.kimi.com/coding/v1/v1/messages", method="POST",
    data=json.dumps({"model": "kimi-for-coding", "max_tokens": 16,
                     "messages": [{"role": "user", "content": "hi"}]}).encode(),
    headers={"x-api-key": "sk-kimi-install0000", "anthropic-version": "2023-06-01",
             "content-type": "application/json"})
try:
    print(urllib.request.urlopen(req, timeout=60).status)
except urllib.error.HTTPError as e:
    print(e.code)
