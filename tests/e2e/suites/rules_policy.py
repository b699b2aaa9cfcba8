"""One behaviour when the rules file is broken (docs/rules.md, "When the
rules file is broken"), in every carrier: a real client run with
`kimifix CMD` and KIMIFIX_RULES naming a file with errors still gets the
built-in fix of the doubled /v1 (judged against its own run without kimifix,
like the matrix), and each kimifix process says so in exactly one
`FILE:LINE: error:` line: the shim in the client (in-process: Debian's
python3, its OpenSSL interposed), the shim and the relay for a steered
client (node 20 with OpenSSL compiled in), the relay alone for the proxy
carrier (a static Go client, CONNECT through the relay's front end). The
file also holds a rule that would add a header: it must not (the file is
ignored as a whole)."""
import os

import matrix
from proxycase import BASE, client_or_skip, relay_log, run, verdict

BROKEN = ("rule would-add\n    host api.kimi.com\n    add-header X-Kimifix-Broken yes\n"
          "rule broken\n    bogus-directive x\n"
          "rule broken-too\n    another-bogus y\n")

# carrier -> (client, relay's line expected, client's own shim line expected);
# None: either (`kimifix CMD` may start the relay for a program it serves
# in-process: its line then follows the policy too)
CASES = {
    "inprocess": ("py-urllib", None, True),
    "relay-steered": ("node20-fetch", True, True),
    "proxy": ("go-static", True, False),
}


def _client(env, res, name, cname):
    if cname == "go-static":
        return client_or_skip(env, res, name)
    c = {c.name: c for c in matrix.clients(env)}[cname]
    if c.skip:
        res.report("SKIP", name, "client unavailable: " + c.skip)
        return None
    return c


def _errors(text):
    return [l for l in text.splitlines() if ": error: " in l]


def t_case(env, fake, res, name):
    carrier = name.split("/")[1]
    cname, in_relay, in_client = CASES[carrier]
    c = _client(env, res, name, cname)
    if not c:
        return
    rules = os.path.join(env.private("rules-policy"), "broken.rules")
    with open(rules, "w") as f:
        f.write(BROKEN)
    problems = []
    if (c.name, "double-v1") not in BASE:
        p, _ = run(env, fake, c, "double-v1", "without", name + "/without")
        problems += ["without kimifix: " + x for x in p]
    mark = fake.mark()
    p, done = run(env, fake, c, "double-v1", "with", name, extra={"KIMIFIX_RULES": rules})
    problems += p
    recs = fake.since(mark)
    if any("x-kimifix-broken" in str(r.get("headers")).lower() for r in recs):
        problems.append("a rule of the broken file is in effect")
    rundir = env.private("run-" + name.replace("/", "_"))
    want = "the file is ignored, the built-in rules are in effect"
    for where, text, expected in (
            ("the relay's log", relay_log(rundir), in_relay),
            ("the client's stderr", (done.stderr or b"").decode("utf-8", "replace") if done else "",
             in_client)):
        errs = _errors(text)
        if len(errs) > 1 or (expected is not None and len(errs) != int(expected)):
            problems.append("%s: %d error lines, want %s: %r" % (where, len(errs),
                            "0 or 1" if expected is None else int(expected), errs[:4]))
        elif errs and not (want in errs[0] and "broken.rules:5: error:" in errs[0]):
            problems.append("%s: not the policy line: %r" % (where, errs[0]))
    verdict(res, name, problems)


def tests(env):
    return [matrix.SuiteTest("rules-policy/%s/broken-file-builtins" % carrier,
                             lambda env, fake, res, n="rules-policy/%s/broken-file-builtins" % carrier:
                             t_case(env, fake, res, n))
            for carrier in CASES]
