"""The relay's HTTP proxy front end in detail (issue 11; docs/relay.md "Proxy
carrier"): a blind tunnel carries bytes as they are both ways, passes a
half-close on while the other direction keeps flowing, and reads a side
only as fast as the other takes it (back-pressure); the absolute form
forwards one request per connection; through the user's proxy plain
http:// goes in absolute form (no CONNECT); the user's NO_PROXY applies to
the relay's own upstream connections. Raw sockets against a relay of the
test's own (its contexts from lease files written here, as `kimifix CMD`
writes them)."""
import hashlib
import os
import socket
import threading
import time

import matrix
from proxycase import (HANG, NO_USER_PROXY, auth_header, client_or_skip, raw, relay_token, run,
                       start_relay, verdict, write_lease)
from recproxy import RecProxy


def _listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    s.settimeout(HANG)
    return s, s.getsockname()[1]


def _tunnel(port, tok, target_port):
    """A client connection through the relay to 127.0.0.1:target_port,
    after its `200` (exactly that head, nothing more)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=HANG)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n" % target_port + auth_header(tok) + b"\r\n")
    want = b"HTTP/1.1 200 Connection established\r\n\r\n"
    got = b""
    while len(got) < len(want):
        b = s.recv(len(want) - len(got))
        if not b:
            break
        got += b
    if got != want:
        raise AssertionError("CONNECT answered %r" % got)
    return s


def _read_all(s):
    out = bytearray()
    while True:
        b = s.recv(1 << 16)
        if not b:
            return bytes(out)
        out += b


def t_bytes_and_half_close(env, fake, res, name):
    rd, port = start_relay(env, "tunnel-bytes")
    problems = []
    srv, sport = _listener()
    up, down, got = os.urandom(3 << 20), os.urandom(5 << 20), {}

    def serve():
        c, _ = srv.accept()
        c.settimeout(HANG)
        got["up"] = _read_all(c)     # until the client's FIN came through
        c.sendall(down)              # the other direction still flows
        c.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        s = _tunnel(port, relay_token(rd), sport)
        s.sendall(up)
        s.shutdown(socket.SHUT_WR)
        back = _read_all(s)
        s.close()
        th.join(HANG)
        if got.get("up") != up:
            problems.append("server got %d bytes (sha %s), sent %d" % (
                len(got.get("up") or b""), hashlib.sha256(got.get("up") or b"").hexdigest()[:12], len(up)))
        if back != down:
            problems.append("client got %d bytes after its half-close, server sent %d" % (len(back), len(down)))
    except (OSError, AssertionError) as ex:
        problems.append(str(ex))
    finally:
        srv.close()
        matrix.stop_relay(rd)
    verdict(res, name, problems)


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def t_back_pressure(env, fake, res, name):
    """The server sends 64 MiB to a client that reads nothing: the relay
    stops reading from the server (the server stalls well before 64 MiB)
    and holds no more than a buffer; then the client reads it all."""
    rd, port = start_relay(env, "tunnel-bp")
    pid = matrix.relay_pid(rd)
    problems = []
    srv, sport = _listener()
    total, chunk = 64 << 20, os.urandom(1 << 16)
    state = {"sent": 0}

    def serve():
        c, _ = srv.accept()
        c.settimeout(HANG)
        while state["sent"] < total:
            c.sendall(chunk)
            state["sent"] += len(chunk)
        c.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        s = _tunnel(port, relay_token(rd), sport)
        rss0 = _rss_kib(pid)
        # Until the server is stuck (no progress for a second): the first
        # moment that measures anything; a slow machine only measures early.
        last, still, end = -1, 0, time.monotonic() + HANG
        while still < 10 and time.monotonic() < end:
            time.sleep(0.1)
            still = still + 1 if state["sent"] == last else 0
            last = state["sent"]
        grown = _rss_kib(pid) - rss0
        if state["sent"] >= total:
            problems.append("the server sent all 64 MiB to a client that read nothing")
        if grown > 8 << 10:
            problems.append("the relay grew by %d KiB holding what the client did not read" % grown)
        h = hashlib.sha256()
        n = 0
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            h.update(b)
            n += len(b)
        want = hashlib.sha256(chunk * (total // len(chunk))).hexdigest()
        if n != total or h.hexdigest() != want:
            problems.append("the client got %d bytes (want %d), same bytes: %s" % (n, total, h.hexdigest() == want))
        s.close()
    except (OSError, AssertionError) as ex:
        problems.append(str(ex))
    finally:
        srv.close()
        matrix.stop_relay(rd)
    verdict(res, name, problems)


def t_absolute_one_request(env, fake, res, name):
    """Two requests pipelined on one absolute-form connection, to a server
    that would keep the connection for more: the first goes upstream in
    origin form, without the relay's credentials, with `Connection: close`,
    and is answered; the second never leaves the relay, and the client
    connection ends after the first answer."""
    rd, port = start_relay(env, "abs-one")
    problems = []
    srv, sport = _listener()
    got = {}

    def serve():
        c, _ = srv.accept()
        c.settimeout(HANG)
        data = b""
        while b"\r\n\r\n" not in data:
            b = c.recv(65536)
            if not b:
                break
            data += b
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # and stays open
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                data += b
        except OSError:
            pass
        got["up"] = data
        c.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        ah = auth_header(relay_token(rd))
        req = (b"GET http://127.0.0.1:%d/first HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (sport, sport) + ah +
               b"Proxy-Connection: keep-alive\r\n\r\n")
        a = raw(port, req + req.replace(b"/first", b"/second"))
        th.join(HANG)
        up = got.get("up", b"")
        if a != b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
            problems.append("the client got %r" % a[:200])
        if b"/second" in up:
            problems.append("the second request went upstream: %r" % up[:400])
        head = up.split(b"\r\n\r\n")[0].lower()
        if not head.startswith(b"get /first http/1.1\r\nhost: 127.0.0.1:%d\r\n" % sport) or \
                b"proxy-" in head or b"\r\nconnection: close" not in head:
            problems.append("upstream head: %r" % head)
    finally:
        srv.close()
        matrix.stop_relay(rd)
    verdict(res, name, problems)


def t_chain_absolute(env, fake, res, name):
    """Plain http:// through the user's proxy: absolute form with its
    credentials, fixed by the rules, no CONNECT (proxies often allow it to
    443 only)."""
    c = client_or_skip(env, res, name)
    if not c:
        return
    rp = RecProxy(user="alice", password="s3cret")
    problems = []
    try:
        url = rp.url
        extra = {"HTTP_PROXY": url, "http_proxy": url, "HTTPS_PROXY": url, "https_proxy": url}
        p0, _ = run(env, fake, c, "double-v1-http", "without", name + "/without", extra)
        problems += ["without: " + x for x in p0]
        seen0 = len(rp.seen)
        p1, _ = run(env, fake, c, "double-v1-http", "with", name + "/with", extra, volatile=("connection",))
        problems += p1
        later = rp.seen[seen0:]
        if [(k, t, a) for k, t, a in later] != [("ABSOLUTE", "http://api.kimi.com/coding/v1/messages", True)]:
            problems.append("the user's proxy saw %s, want one authenticated absolute-form request "
                            "with the fixed path" % later)
    finally:
        rp.close()
    verdict(res, name, problems)


def t_relay_noproxy(env, fake, res, name):
    """The user's NO_PROXY applies to the relay's own upstream connections:
    a tunnel to a host it names goes direct, the same tunnel for a client
    without it goes through the user's proxy."""
    rd, port = start_relay(env, "noproxy")
    rp = RecProxy(user="alice", password="s3cret")
    problems = []
    try:
        tok = relay_token(rd)
        for np, via in (("localhost,api.example.com", False), (None, True)):
            cid = write_lease(rd, rp.url, np)
            n0 = len(rp.seen)
            a = raw(port, b"CONNECT api.example.com:443 HTTP/1.1\r\n" + auth_header(tok, "kimifix-" + cid) +
                    b"\r\n", then=lambda s: s.shutdown(socket.SHUT_WR))
            seen = rp.seen[n0:]
            if not a.startswith(b"HTTP/1.1 200 "):
                problems.append("NO_PROXY %s: %r" % (np, a[:100]))
            if bool(seen) != via or (via and seen != [("CONNECT", "api.example.com:443", True)]):
                problems.append("NO_PROXY %s: the user's proxy saw %s" % (np, seen))
        # an unknown id: the relay's defaults (direct), never refused
        a = raw(port, b"CONNECT api.example.com:443 HTTP/1.1\r\n" +
                auth_header(tok, "kimifix-" + "0" * 32) + b"\r\n", then=lambda s: s.shutdown(socket.SHUT_WR))
        if not a.startswith(b"HTTP/1.1 200 "):
            problems.append("unknown client id: %r" % a[:100])
    finally:
        rp.close()
        matrix.stop_relay(rd)
    verdict(res, name, problems)


def tests(env):
    T = matrix.SuiteTest
    out = []

    def b(n, fn):
        out.append(T(n, lambda env, fake, res, n=n, fn=fn: fn(env, fake, res, n)))
    b("proxy/tunnel/bytes-both-ways-and-half-close", t_bytes_and_half_close)
    b("proxy/tunnel/back-pressure", t_back_pressure)
    b("proxy/absolute/one-request-per-connection", t_absolute_one_request)
    b("proxy/chain/go-static/double-v1-http/absolute-form", t_chain_absolute)
    b("proxy/chain/relay-honours-no-proxy", t_relay_noproxy)
    return out
