"""py_client.py PORT CAFILE - Debian python3 over TLS (the RTLD_LOCAL trap:
_ssl loads libssl privately, only SSL_write_ex is used). Posts the test
request with urllib and with http.client to https://api.kimi.com:PORT,
resolving api.kimi.com to 127.0.0.1 inside this process."""
import http.client
import socket
import ssl
import sys
import urllib.request

port, ca = int(sys.argv[1]), sys.argv[2]
_gai = socket.getaddrinfo


def gai(host, *a, **k):
    return _gai("127.0.0.1" if host == "api.kimi.com" else host, *a, **k)


socket.getaddrinfo = gai
ctx = ssl.create_default_context(cafile=ca)
body = b'{"model":"k"}'
hdrs = {"Content-Type": "application/json", "X-Msh-Platform": "kimi_code_cli"}
url = "https://api.kimi.com:%d/coding/v1/v1/messages" % port
req = urllib.request.Request(url, data=body, headers=hdrs, method="POST")
with urllib.request.urlopen(req, context=ctx) as r:
    print("urllib", r.status, r.read().decode())
c = http.client.HTTPSConnection("api.kimi.com", port, context=ctx)
c.request("POST", "/coding/v1/v1/messages", body=body, headers=hdrs)
r = c.getresponse()
print("http.client", r.status, r.read().decode())
c.close()
