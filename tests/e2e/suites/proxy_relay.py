"""The proxy carrier (issue 11; docs/relay.md "Proxy carrier"): requests
through the relay's HTTP proxy front end. A static Go client fixed, other
hosts byte-identical through a blind tunnel, plain http:// in absolute form;
clients behind a proxy of their own (tests/e2e/recproxy.py as the user's
HTTPS_PROXY: Claude Code, official Node 24 with NODE_USE_ENV_PROXY=1, Bun,
python requests, Go) fixed, and the user's proxy saw the relay's CONNECTs;
NO_PROXY naming the rule host leaves it unfixed (as doctor says); 407 without
the token; a foreign uid refused; bad input (malformed line, 16 KiB, slow
head, the relay's own port, ports outside 1-65535, an IPv6 literal, a user
proxy that refuses, resets or never answers; a name that resolves to the
relay itself). Tunnels, the absolute form and the relay's own NO_PROXY in
detail: proxy_tunnel.py."""
import socket
import subprocess
import threading
import time

import matrix
from proxycase import (BASE, HANG, NO_USER_PROXY, auth_header, client_or_skip, clients, raw,
                       relay_log, relay_token, run, start_relay, verdict)
from recproxy import RecProxy

def t_go_fixed(env, fake, res, name):
    scn = name.split("/")[2]
    c = client_or_skip(env, res, name)
    if not c:
        return
    if ("go-static", scn) not in BASE:  # run alone (--filter): make the baseline
        problems, _ = run(env, fake, c, scn, "without", name + "/without")
        if problems:
            return verdict(res, name, ["without kimifix: " + x for x in problems])
    # absolute form goes upstream with Connection: close (one request per
    # proxy connection: httpproxy_head.c)
    vol = ("connection",) if scn == "double-v1-http" else ()
    verdict(res, name, run(env, fake, c, scn, "with", name, volatile=vol)[0])


def chain_case(cname):
    def t(env, fake, res, name):
        c = client_or_skip(env, res, name, cname)
        if not c:
            return
        rp = RecProxy(user="alice", password="s3cret")
        problems = []
        try:
            # both spellings, as users set them: an empty https_proxy (the
            # suite blanks the machine's) makes Python and Node ignore HTTPS_PROXY
            extra = {"HTTPS_PROXY": rp.url, "https_proxy": rp.url}
            p0, _ = run(env, fake, c, "double-v1", "without", name + "/without", extra)
            problems += ["without: " + x for x in p0]
            seen0 = len(rp.seen)
            if not rp.targets():
                problems.append("without kimifix the client did not use its proxy: %s" % rp.seen)
            p1, done = run(env, fake, c, "double-v1", "with", name + "/with", extra)
            problems += p1
            later = rp.seen[seen0:]
            if not any(k == "CONNECT" and t.startswith("api.kimi.com:") and a for k, t, a in later):
                problems.append("the user's proxy saw no authenticated CONNECT api.kimi.com from the "
                                "relay: %s" % later)
            if done and (b"s3cret" in done.stderr or b"s3cret" in done.stdout):
                problems.append("the proxy's password reached the client's output")
        finally:
            rp.close()
        verdict(res, name, problems)
    return t


def t_go_noproxy(env, fake, res, name):
    """NO_PROXY naming the rule host: Go goes there directly, unfixed, as
    doctor says (the proxy carrier cannot see it)."""
    c = client_or_skip(env, res, name)
    if not c:
        return
    scn = matrix.scenarios()["double-v1"]
    t = matrix.Test(name, c, scn, "with")
    req = matrix.request_for(scn, c)
    e = dict(NO_USER_PROXY, NO_PROXY="api.kimi.com")
    mark = fake.mark()
    done, err, _ = matrix.run_client(t, env, req, True, e)
    time.sleep(0.05)
    recs = fake.since(mark)
    problems = [err] if err else []
    if not err and [r["target"] for r in recs] != ["/coding/v1/v1/messages"]:
        problems.append("upstream got %s, want the request unfixed" % [r["target"] for r in recs])
    verdict(res, name, problems)


def t_auth(env, fake, res, name):
    rd, port = start_relay(env, "auth")
    try:
        tok = relay_token(rd)
        head = b"CONNECT api.kimi.com:443 HTTP/1.1\r\nHost: api.kimi.com:443\r\n"
        problems = []
        for what, extra in (("no token", b""), ("wrong token", auth_header("0" * 32)),
                            ("right token, wrong user", auth_header(tok, "alice"))):
            a = raw(port, head + extra + b"\r\n")
            if not a.startswith(b"HTTP/1.1 407 ") or b"Proxy-Authenticate: Basic" not in a:
                problems.append("%s: %r" % (what, a[:120]))
        a = raw(port, head + auth_header(tok) + b"\r\n", then=lambda s: s.shutdown(socket.SHUT_WR))
        if not a.startswith(b"HTTP/1.1 200 "):
            problems.append("right token: %r" % a[:120])
    finally:
        matrix.stop_relay(rd)
    verdict(res, name, problems)


def t_foreign_uid(env, fake, res, name):
    rd, port = start_relay(env, "uid")
    try:
        tok = relay_token(rd)
        code = ("import socket,sys; s=socket.create_connection(('127.0.0.1',%d),timeout=30); "
                "s.sendall(sys.stdin.buffer.read()); print(repr(s.recv(200)))" % port)
        data = b"CONNECT api.kimi.com:443 HTTP/1.1\r\n" + auth_header(tok) + b"\r\n"
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            matrix.SYS_PY, "-c", code], input=data, capture_output=True, timeout=HANG)
        out = p.stdout.decode()
        problems = [] if ("b''" in out or "Error" in p.stderr.decode()) else \
            ["another uid got an answer: %s %s" % (out[:200], p.stderr.decode()[-200:])]
    finally:
        matrix.stop_relay(rd)
    verdict(res, name, problems)


def t_bad_input(env, fake, res, name):
    rd, port = start_relay(env, "bad")
    problems = []
    try:
        tok = relay_token(rd)
        ah = auth_header(tok)

        def expect(what, data, status, then=None):
            a = raw(port, data, then=then)
            if not a.startswith(b"HTTP/1.1 %d " % status):
                problems.append("%s: want %d, got %r" % (what, status, a[:100]))
        expect("malformed request line", b"CONNECT api.kimi.com:443 HTTP/1.1 x\r\n\r\n", 400)
        expect("head over 16 KiB", b"CONNECT a.org:443 HTTP/1.1\r\n" + ah + b"X-Pad: " + b"x" * 17000 + b"\r\n\r\n", 431)
        expect("CONNECT to the relay's own port", b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n" % port + ah + b"\r\n", 403)
        expect("port 0", b"CONNECT api.kimi.com:0 HTTP/1.1\r\n" + ah + b"\r\n", 400)
        expect("port 70000", b"CONNECT api.kimi.com:70000 HTTP/1.1\r\n" + ah + b"\r\n", 400)
        expect("slow head", b"CONNECT api.kimi.com:443 HTTP/1.1\r\n", 408)
        # api.example.com is 127.0.0.1 in the namespace: a name that is the relay
        expect("CONNECT to a name that resolves to the relay",
               b"CONNECT api.example.com:%d HTTP/1.1\r\n" % port + ah + b"\r\n", 403)
        # an IPv6 literal: a blind tunnel to an echo server on [::1]
        try:
            echo = socket.socket(socket.AF_INET6)
            echo.bind(("::1", 0))
            echo.listen(1)
            ep = echo.getsockname()[1]

            def serve():
                c, _ = echo.accept()
                c.sendall(c.recv(100))
                c.close()
            threading.Thread(target=serve, daemon=True).start()
            a = raw(port, b"CONNECT [::1]:%d HTTP/1.1\r\n" % ep + ah + b"\r\nping")
            if a != b"HTTP/1.1 200 Connection established\r\n\r\nping":
                problems.append("IPv6 literal tunnel: %r" % a[:120])
            echo.close()
        except OSError as ex:
            problems.append("IPv6 loopback unavailable in the namespace: %s" % ex)
        # one clear log line for each refusal
        log = relay_log(rd)
        for what, n in (("=> 400", 3), ("=> 431", 1), ("=> 403", 2), ("=> 408", 1)):
            if log.count(what) != n:
                problems.append("the log has %d lines with %r, want %d" % (log.count(what), what, n))
    finally:
        matrix.stop_relay(rd)
    # user proxies that refuse, reset, never answer: clear statuses naming
    # the proxy by host:port only; the relay keeps serving afterwards
    c = clients(env)["go-static"]
    if not c.skip:
        for mode, status in (("refuse", 502), ("reset", 502), ("silent", 504)):
            rp = RecProxy(mode=mode, user="alice", password="s3cret")
            try:
                scn = matrix.scenarios()["double-v1"]
                t = matrix.Test(name + "/" + mode, c, scn, "with")
                done, err, _ = matrix.run_client(t, env, matrix.request_for(scn, c), True,
                                                 dict(NO_USER_PROXY, HTTPS_PROXY=rp.url))
                out = done.stdout if done else b""
                if err or b"status: %d" % status not in out or rp.shown.encode() not in out \
                        or b"s3cret" in out or b"alice" in out:
                    problems.append("user proxy that does %s: want %d naming %s only, got %r %s" % (
                        mode, status, rp.shown, out[:300], err or ""))
            finally:
                rp.close()
        p, _ = run(env, fake, c, "double-v1", "with", name + "/after")
        problems += ["after the bad input: " + x for x in p]
    verdict(res, name, problems)

def tests(env):
    T = matrix.SuiteTest
    out = []

    def b(n, fn):
        out.append(T(n, lambda env, fake, res, n=n, fn=fn: fn(env, fake, res, n)))
    for scn in ("double-v1", "double-v1-http", "neg-unrelated-host"):
        b("proxy/go-static/%s/with" % scn, t_go_fixed)
    for cname in ("go-static", "py-requests", "node24-fetch", "bun-fetch", "claude-code"):
        b("proxy/chain/%s/double-v1" % cname, chain_case(cname))
    b("proxy/no-proxy-rule-host/go-static-unfixed", t_go_noproxy)
    b("proxy/auth/407-without-the-token", t_auth)
    b("proxy/foreign-uid-refused", t_foreign_uid)
    b("proxy/bad-input", t_bad_input)
    return out
