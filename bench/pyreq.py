"""figure 4: N small keep-alive POSTs from Python requests (Debian python3,
OpenSSL via _ssl: the shim's SSL_write_ex hook) to the fake upstream.

    pyreq.py PORT CAFILE N [good]      prints: rps=X n200=K n=N

api.kimi.com resolves to 127.0.0.1 (patched socket.getaddrinfo, same in
both arms); TLS is verified against CAFILE with SNI api.kimi.com.
"""
import socket
import sys
import time

import requests

port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
good = len(sys.argv) > 4 and sys.argv[4] == "good"
_gai = socket.getaddrinfo


def gai(host, *a, **k):
    return _gai("127.0.0.1" if host == "api.kimi.com" else host, *a, **k)


socket.getaddrinfo = gai
url = "https://api.kimi.com:%d/coding/v1/%smessages" % (port, "" if good else "v1/")
body = b'{"model":"kimi-for-coding","max_tokens":16,"messages":[]}'
hdr = {"x-api-key": "sk-kimi-bench", "Content-Type": "application/json"}
s = requests.Session()
s.trust_env = False  # no proxies or CA bundles from the environment
n200 = 0
t0 = time.perf_counter()
for _ in range(n):
    r = s.post(url, data=body, headers=hdr, verify=ca)
    n200 += r.status_code == 200
t1 = time.perf_counter()
print("rps=%.0f n200=%d n=%d" % (n / (t1 - t0), n200, n))
