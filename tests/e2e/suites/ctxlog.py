"""Each client's fixes in its own log, each client served by its own rules,
whatever the carrier (docs/relay.md, "Client contexts"; issue 15).

A real client run with `kimifix CMD` and KIMIFIX_LOG=stderr or a file gets
the relay's one-line log of its rewritten request in that destination: node
20 steered to the relay (the shim hands its stderr over as `log fd`, or
names the file), and a static Go client through the proxy carrier (the
lease names the file, or says `log stderr`: the relay opens the client's
own stderr while it lives). The client's run still ends normally: a relay
holding the client's stderr pipe would keep `communicate()` waiting until
the context expired (the harness's timeout fails the test). Two clients
through one relay: each gets its own rules (one adds a header) and only its
own lines."""
import os

import matrix
from proxycase import BASE, any_client_or_skip, relay_log, run, verdict

# (the Go client's request is what its scenario says; the line names the fix)
LINE = {"node20-fetch": "rule kimi-coding-double-v1: ", "go-static": "rule kimi-coding-double-v1: "}

CARRIERS = {"relay-steered": "node20-fetch", "proxy": "go-static"}


def _lines(text, cname):
    return [l for l in text.splitlines() if "[relay] api.kimi.com: " in l and LINE[cname] in l
            and "=> 200" in l]


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _baseline(env, fake, c, name, problems):
    if (c.name, "double-v1") not in BASE:
        p, _ = run(env, fake, c, "double-v1", "without", name + "/without")
        problems += ["without kimifix: " + x for x in p]


def t_dest(env, fake, res, name):
    _, carrier, dest = name.split("/")
    cname = CARRIERS[carrier]
    c = any_client_or_skip(env, res, name, cname)
    if not c:
        return
    problems = []
    _baseline(env, fake, c, name, problems)
    logf = os.path.join(env.private("ctxlog-" + carrier), "client.log")
    if os.path.exists(logf):
        os.unlink(logf)
    p, done = run(env, fake, c, "double-v1", "with", name,
                  extra={"KIMIFIX_LOG": "stderr" if dest == "stderr" else logf})
    problems += p
    if done is None:
        return verdict(res, name, problems)
    text = (done.stderr or b"").decode("utf-8", "replace") if dest == "stderr" else _read(logf)
    got = _lines(text, cname)
    if len(got) != 1:
        problems.append("the client's %s: %d relay rewrite lines, want 1: %r"
                        % (dest, len(got), text[-600:]))
    if "sk-kimi" in text or "Bearer " in text:
        problems.append("a secret in the client's log")
    rundir = env.private("run-" + name.replace("/", "_"))
    if not _lines(relay_log(rundir), cname):
        problems.append("the relay's own log lacks the line")
    verdict(res, name, problems)


def t_two_clients(env, fake, res, name):
    """One relay, two clients: A with the built-in rules and log file A, B
    with a rule of its own (a header) and log file B."""
    c = any_client_or_skip(env, res, name, "node20-fetch")
    if not c:
        return
    d = env.private("ctxlog-two")
    rundir = os.path.join(d, "run")
    os.makedirs(rundir, mode=0o700, exist_ok=True)
    loga, logb, rulesb = (os.path.join(d, x) for x in ("a.log", "b.log", "b.rules"))
    for f in (loga, logb):
        if os.path.exists(f):
            os.unlink(f)
    with open(rulesb, "w") as f:
        f.write("rule ctxlog-b\n    host api.kimi.com\n    add-header X-Kimifix-Client b\n")
    problems = []
    stop = matrix.stop_relay
    matrix.stop_relay = lambda *a, **k: None  # one relay for both runs
    try:
        recs = {}
        for who, extra in (("a", {"KIMIFIX_LOG": loga}),
                           ("b", {"KIMIFIX_LOG": logb, "KIMIFIX_RULES": rulesb})):
            extra["XDG_RUNTIME_DIR"] = rundir
            mark = fake.mark()
            _, done = run(env, fake, c, "double-v1", "with", name + "/" + who, extra=extra)
            if done is None:
                problems.append("client %s did not finish" % who)
            recs[who] = fake.since(mark)
        pid = matrix.relay_pid(rundir)
    finally:
        matrix.stop_relay = stop
        stop(rundir)

    def header(rs):
        return [v for r in rs for k, v in r.get("headers", []) if k.lower() == "x-kimifix-client"]
    if header(recs.get("a", [])) or header(recs.get("b", [])) != ["b"]:
        problems.append("rules per client: A's requests carry %r, B's %r (want none, ['b'])"
                        % (header(recs.get("a", [])), header(recs.get("b", []))))
    la, lb = _read(loga), _read(logb)
    ra = [l for l in la.splitlines() if "[relay] " in l and "=> " in l]
    if len(ra) != 1 or "ctxlog-b" in la:
        problems.append("client A's log: %d relay lines, want only its own: %r" % (len(ra), ra[:3]))
    if "ctxlog-b" not in lb or len([l for l in lb.splitlines() if "[relay] " in l and "=> " in l]) != 1:
        problems.append("client B's log: want exactly its own line (rules ...ctxlog-b): %r" % lb[-600:])
    if not pid:
        problems.append("no relay ran")
    verdict(res, name, problems)


def tests(env):
    out = []
    for carrier in CARRIERS:
        for dest in ("stderr", "file"):
            n = "ctxlog/%s/%s" % (carrier, dest)
            out.append(matrix.SuiteTest(n, lambda env, fake, res, n=n: t_dest(env, fake, res, n)))
    n = "ctxlog/relay-steered/two-clients"
    out.append(matrix.SuiteTest(n, lambda env, fake, res: t_two_clients(env, fake, res, n)))
    return out
