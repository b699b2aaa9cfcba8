"""A connection steered to the relay: every rule applies once.

When connect() steers a connection to the relay, the relay rewrites its
requests and the shim's TLS hooks must stand down; if both rewrite, each
rule applies twice (an `add-header` adds its header twice). The hooks tell
by the socket under the TLS session (OpenSSL's SSL_get_fd, GnuTLS's
transport), or, for TLS on a memory BIO with no socket under it (Python's
asyncio and aiohttp, a Node on the shared libssl), by the peer's
certificate: issued by the kimifix CA. Each case runs a client with
`KIMIFIX_MODE=relay` and a rules file that adds a header on api.kimi.com,
and checks what reached the upstream: the doubled /v1 fixed, the header
exactly once, and the relay's log naming the rules it applied.

Clients: py-aiohttp and node18-fetch (memory BIO), wget (GnuTLS on its
socket; GnuTLS reads no CA variable, so, as docs/relay.md tells a user in
relay mode, it is given the kimifix CA beside the test CA), py-urllib
(OpenSSL on its socket)."""
import os
import subprocess

import matrix
from proxycase import NO_USER_PROXY, any_client_or_skip, clean_env, relay_log, rules_file, verdict

RULES = "rule once\n    host api.kimi.com\n    add-header X-Kimifix-Once yes\n"
CLIENTS = ("py-aiohttp", "node18-fetch", "wget", "py-urllib")


def _with_kimifix_ca(env):
    """The test CA and the kimifix CA in one file (the CA is made by the
    run's first relay: start one if none has run yet)."""
    ca = os.path.join(env.private("home"), ".local", "share", "kimifix", "ca.pem")
    if not os.path.exists(ca):
        rd = env.private("run-steered-once-ca")
        e = clean_env(env, rd)
        subprocess.run([env.kimifix, "relay", "start"], env=e, capture_output=True, timeout=60)
        subprocess.run([env.kimifix, "relay", "stop"], env=e, capture_output=True, timeout=60)
    both = os.path.join(env.private("steered-once"), "both-cas.pem")
    with open(both, "wb") as out:
        for f in (env.cacert, ca):
            with open(f, "rb") as inp:
                out.write(inp.read())
    return both


def t_once(env, fake, res, name, cname):
    c = any_client_or_skip(env, res, name, cname)
    if not c:
        return
    rules = rules_file(env, "steered-once", "once.rules", RULES)
    scn = matrix.scenarios()["double-v1"]
    t = matrix.Test(name, c, scn, "with")
    e = dict(NO_USER_PROXY, KIMIFIX_RULES=rules, KIMIFIX_MODE="relay")
    if cname == "wget":
        e["E2E_CACERT"] = _with_kimifix_ca(env)
    mark = fake.mark()
    done, err, _ = matrix.run_client(t, env, matrix.request_for(scn, c), True, e)
    recs = fake.since(mark)
    problems = []
    if err or not recs:
        problems.append(err or "no request reached the upstream")
    else:
        r = recs[-1]  # headers: [[name, value], ...] as they arrived
        once = [v for k, v in r["headers"] if k.lower() == "x-kimifix-once"]
        if r["target"] != "/coding/v1/messages":
            problems.append("the upstream got %s" % r["target"])
        if len(once) != 1:
            problems.append("X-Kimifix-Once arrived %d times, want once" % len(once))
        log = relay_log(env.private(matrix.run_dir_name(t)))
        if "rules kimi-coding-double-v1, once" not in log:
            problems.append("the relay did not apply the rules (its log: %r)" % log[-300:])
    if problems and done is not None:
        problems.append("client stderr: %s" % done.stderr.decode("utf-8", "replace")[-400:])
    verdict(res, name, problems)


def tests(env):
    return [matrix.SuiteTest("steered-once/%s" % c,
                             lambda env, fake, res, c=c: t_once(env, fake, res, "steered-once/%s" % c, c))
            for c in CLIENTS]
