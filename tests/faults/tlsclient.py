#!/usr/bin/env python3
"""tlsclient.py PORT CAFILE BODYBYTES [QUERY]: the TLS client of tests/faults/tlsfault.py.

Python's ssl module (OpenSSL's SSL_write_ex, interposed by libkimifix.so)
on a non-blocking socket: handshake, the kfreq.h request (doubled /v1,
kimi-code's platform header) in one send() retried after every
SSLWantWrite/ReadError, then reads the whole response (so the connection
ends cleanly). QUERY ("c=17") goes after the target, so fakeup's record
says which case it belongs to. Exit 0 when the response came, 3 on an error."""
import select
import socket
import ssl
import sys

port, ca, nbody = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
query = (b"?" + sys.argv[4].encode()) if len(sys.argv) > 4 else b""
fake = b"POST /coding/v1/v1/messages HTTP/1.1\r\n"
body = bytes(fake[i % len(fake)] for i in range(nbody))
req = (b"POST /coding/v1/v1/messages" + query + b" HTTP/1.1\r\nHost: api.kimi.com\r\nUser-Agent: kftest/1\r\n"
       b"X-Msh-Platform: kimi_code_cli\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n" % nbody) + body


def wait(t, e):
    r, w = ([t], []) if isinstance(e, ssl.SSLWantReadError) else ([], [t])
    select.select(r, w, [], 5)


try:
    s = socket.create_connection(("127.0.0.1", port), timeout=60)  # hang guard
    s.setblocking(False)
    t = ssl.create_default_context(cafile=ca).wrap_socket(
        s, server_hostname="api.kimi.com", do_handshake_on_connect=False)
    while True:
        try:
            t.do_handshake()
            break
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as e:
            wait(t, e)
    off = 0
    while off < len(req):
        try:
            off += t.send(req[off:])
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as e:
            wait(t, e)
        except InterruptedError:
            pass
    resp = b""
    while b"\r\n\r\n" not in resp or len(resp.split(b"\r\n\r\n", 1)[1]) < int(
            [l.split(b":")[1] for l in resp.split(b"\r\n\r\n")[0].split(b"\r\n")
             if l.lower().startswith(b"content-length:")][0]):
        try:
            d = t.recv(65536)
            if not d:
                break
            resp += d
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as e:
            wait(t, e)
        except IndexError:
            pass
    t.close()
    sys.exit(0 if resp.startswith(b"HTTP/1.1 ") else 3)
except (OSError, ssl.SSLError) as e:
    print("tlsclient: %r" % e, file=sys.stderr)
    sys.exit(3)
