#!/usr/bin/env python3
"""sseload.py: concurrent SSE streams through kimifix-relay.

  sseload.py --relay PORT --token HEX --dst 127.0.0.1:PORT --ca CA.pem
             --record FAKEUP_RECORD --pid RELAY_PID [--conns 200] [--seconds 60]

Each connection does what the shim does (PROXY v2 preamble with the
token, then TLS with SNI api.kimi.com trusting the kimifix CA) and then
sends, keep-alive, one streamed chat request after the other with the
doubled /v1 until the time is up, reading every SSE reply to its end
(6 events, the last "data: [DONE]"). Afterwards: every request fakeup
recorded must have the fixed target and the body's SHA-256; the relay's
open fds must come back to their idle count (+4, + the idle upstream connections
its pool keeps, from its STATUS) and its RSS must not grow
between the first stream round and the end (+16 MiB). Prints "sseload: N passed, N failed"."""
import argparse
import hashlib
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

BODY = (b'{"model":"kimi-for-coding","stream": true,'
        b'"messages":[{"role":"user","content":"sse load"}]}')
REQ = (b"POST /coding/v1/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\n"
       b"Authorization: Bearer sk-kimi-HARDSECRET-51b2\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def preamble(dst, token):
    host, port = dst.rsplit(":", 1)
    addrs = bytes(4) + socket.inet_aton(host) + b"\0\0" + struct.pack(">H", int(port))
    tlv = bytes([0x02]) + struct.pack(">H", 12) + b"api.kimi.com"
    tlv += bytes([0xE0]) + struct.pack(">H", 16) + bytes.fromhex(token)
    body = addrs + tlv
    return SIG + bytes([0x21, 0x11]) + struct.pack(">H", len(body)) + body


def read_response(f):
    """Read one response; return (status, events, last_event)."""
    line = f.readline()
    if not line:
        raise EOFError("closed")
    status = int(line.split()[1])
    chunked, length = False, None
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        if k.strip().lower() == "transfer-encoding" and "chunked" in v.lower():
            chunked = True
        if k.strip().lower() == "content-length":
            length = int(v)
    body = b""
    if chunked:
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += f.read(size)
            f.readline()
    elif length is not None:
        body = f.read(length)
    events = [e for e in body.split(b"\n\n") if e.strip()]
    return status, len(events), events[-1] if events else b""


def pool_idle(port, token):
    """Idle upstream connections the relay keeps for reuse (its STATUS)."""
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, os.path.join(here, "..", "relay", "rstatus.py"), str(port), token,
                        "pool_idle"], capture_output=True, text=True, timeout=60)
    return int(r.stdout.strip() or 0)


def proc_stats(pid):
    fds = len(os.listdir("/proc/%d/fd" % pid))
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return fds, int(line.split()[1])
    return fds, -1


def main():
    ap = argparse.ArgumentParser()
    for k in ("relay", "token", "dst", "ca", "record", "pid"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()
    ctx = ssl.create_default_context(cafile=a.ca)
    pre = preamble(a.dst, a.token)
    deadline = time.monotonic() + a.seconds
    lock = threading.Lock()
    st = {"ok": 0, "bad": 0, "streams": 0, "first_round": 0}
    first_round = threading.Barrier(a.conns + 1)

    def work():
        first = True
        try:
            s = socket.create_connection(("127.0.0.1", int(a.relay)), timeout=30)
            s.sendall(pre)
            t = ctx.wrap_socket(s, server_hostname="api.kimi.com")
            f = t.makefile("rb")
            while True:
                t.sendall(REQ)
                status, n, last = read_response(f)
                good = status == 200 and n == 6 and last.strip() == b"data: [DONE]"
                with lock:
                    st["ok" if good else "bad"] += 1
                    st["streams"] += 1
                    if not good and st["bad"] < 4:
                        print("sseload: status %d, %d events" % (status, n), file=sys.stderr)
                if first:
                    first = False
                    first_round.wait(60)
                if time.monotonic() > deadline:
                    break
            t.close()
        except Exception as e:  # noqa: BLE001 - counted and reported
            with lock:
                st["bad"] += 1
                if st["bad"] < 4:
                    print("sseload: %r" % e, file=sys.stderr)
            if first:
                try:
                    first_round.wait(60)
                except threading.BrokenBarrierError:
                    pass

    pid = int(a.pid)
    f0, r0 = proc_stats(pid)
    th = [threading.Thread(target=work, daemon=True) for _ in range(a.conns)]
    for x in th:
        x.start()
    try:
        first_round.wait(120)
    except threading.BrokenBarrierError:
        pass
    f1, r1 = proc_stats(pid)
    for x in th:
        x.join(a.seconds + 60)
    # The relay closes its side once it sees our closes: wait for that (a
    # hang guard bounds it), do not guess how long it takes. Pooled upstream
    # connections are kept open on purpose (one fd each).
    t = time.monotonic()
    while True:
        f2, r2 = proc_stats(pid)
        pooled = pool_idle(int(a.relay), a.token)
        if f2 <= f0 + 4 + pooled or time.monotonic() - t > 60:
            break
        time.sleep(0.05)
    # fakeup's records: every request fixed, every body intact
    want_sha = hashlib.sha256(BODY).hexdigest()
    recs = [json.loads(l) for l in open(a.record) if l.strip()]
    fixed = sum(1 for r in recs if r.get("target") == "/coding/v1/chat/completions")
    sha_ok = sum(1 for r in recs if r.get("body_sha256") == want_sha)
    growth = f2 > f0 + 4 + pooled or (r2 > r1 + 16384 and "HARD_NO_RSS" not in os.environ)
    fails = st["bad"] + (fixed != len(recs)) + (sha_ok != len(recs)) + growth + (len(recs) < st["streams"])
    print("sseload: %d connections x %.0f s: %d streams, %d recorded, %d rewritten, %d body hashes equal"
          % (a.conns, a.seconds, st["streams"], len(recs), fixed, sha_ok))
    print("sseload: relay fds %d idle, %d streaming, %d after (%d pooled upstream); RSS %d -> %d -> %d KiB%s"
          % (f0, f1, f2, pooled, r0, r1, r2, " (GROWTH)" if growth else ""))
    print("sseload: %d passed, %d failed" % (st["ok"], fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
