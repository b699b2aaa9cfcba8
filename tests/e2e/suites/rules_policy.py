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
ignored as a whole).

The relay follows the file (docs/relay.md, "Rules"): through the proxy
front end (CONNECT api.kimi.com:443, TLS with the kimifix CA), each
connection after an edit has the edited rules, a broken edit the built-ins
and one more error line, and `kimifix relay status` counts per rule."""
import os
import socket
import ssl
import subprocess

import matrix
from proxycase import (BASE, HANG, any_client_or_skip, auth_header, clean_env, relay_log,
                       relay_port, relay_token, rules_file, run, verdict)

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


def _errors(text):
    return [l for l in text.splitlines() if ": error: " in l]


def t_case(env, fake, res, name):
    carrier = name.split("/")[1]
    cname, in_relay, in_client = CASES[carrier]
    c = any_client_or_skip(env, res, name, cname)
    if not c:
        return
    rules = rules_file(env, "rules-policy", "broken.rules", BROKEN)
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


def _connect_request(env, port, tok, header):
    """CONNECT api.kimi.com:443 through the relay, TLS trusting the kimifix
    CA, one doubled-/v1 request; returns the status line."""
    s = socket.create_connection(("127.0.0.1", port), timeout=HANG)
    s.sendall(b"CONNECT api.kimi.com:443 HTTP/1.1\r\nHost: api.kimi.com:443\r\n" + auth_header(tok) +
              b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b:
            raise AssertionError("CONNECT: no answer")
        head += b
    if not head.startswith(b"HTTP/1.1 200"):
        raise AssertionError("CONNECT answered %r" % head[:80])
    ctx = ssl.create_default_context(cafile=os.path.join(env.private("home"), ".local", "share",
                                                         "kimifix", "ca.pem"))
    t = ctx.wrap_socket(s, server_hostname="api.kimi.com")
    body = b'{"model":"kimi-for-coding","max_tokens":16,"messages":[]}'
    t.sendall(b"POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\nx-api-key: sk-kimi-x\r\n"
              b"X-Test-Case: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n%s" % (header.encode(), len(body), body))
    out = b""
    while True:
        b = t.recv(65536)
        if not b:
            break
        out += b
    t.close()
    return out.split(b"\r\n", 1)[0].decode()


def t_follows_edits(env, fake, res, name):
    rd = env.private("run-rules-policy-edits")
    rules = os.path.join(env.private("rules-policy"), "edited.rules")
    edit = "rule edited\n    host api.kimi.com\n    add-header X-Kimifix-Edited %s\n"
    with open(rules, "w") as f:
        f.write(edit % "one")
    e = clean_env(env, rd, KIMIFIX_RULES=rules)
    subprocess.run([env.kimifix, "relay", "start"], env=e, capture_output=True, timeout=HANG)
    problems = []
    try:
        port, tok = relay_port(rd), relay_token(rd)
        if not port:
            return verdict(res, name, ["the relay did not start: " + relay_log(rd)[-300:]])

        def one(tag):
            mark = fake.mark()
            status = _connect_request(env, port, tok, tag)
            recs = [r for r in fake.since(mark) if tag in str(r.get("headers"))]
            if not recs or status != "HTTP/1.1 200 OK":
                raise AssertionError("%s: status %r, %d records" % (tag, status, len(recs)))
            r = recs[-1]  # headers: [[name, value], ...] as they arrived
            return r["target"], [v for k, v in r["headers"] if k.lower() == "x-kimifix-edited"]

        target, hv = one("first")
        if target != "/coding/v1/messages" or not any("one" in v for v in hv):
            problems.append("first connection: target %s, header %r" % (target, hv))
        with open(rules, "w") as f:
            f.write(edit % "two-after-the-edit")
        target, hv = one("second")
        if not any("two-after-the-edit" in v for v in hv):
            problems.append("the connection after the edit: header %r (not the edited rule)" % hv)
        before = len(_errors(relay_log(rd)))
        with open(rules, "w") as f:
            f.write(edit % "three" + "rule broken\n    bogus x\n")
        target, hv = one("third")
        one("fourth")
        if target != "/coding/v1/messages" or hv:
            problems.append("after a broken edit: target %s, header %r (want the built-ins only)"
                            % (target, hv))
        errs = _errors(relay_log(rd))[before:]
        if len(errs) != 1 or "edited.rules:5: error:" not in errs[0]:
            problems.append("after a broken edit: %d new error lines for two connections: %r"
                            % (len(errs), errs[:3]))
        st = subprocess.run([env.kimifix, "relay", "status"], env=e, capture_output=True,
                            timeout=HANG).stdout.decode()
        counts = {l.split()[0]: l.split()[1] for l in st.splitlines() if l.startswith("    ")}
        if counts.get("kimi-coding-double-v1") != "4" or counts.get("edited") != "2":
            problems.append("relay status per rule: %r" % counts)
    except (AssertionError, OSError, ssl.SSLError) as ex:
        problems.append(str(ex))
    finally:
        subprocess.run([env.kimifix, "relay", "stop"], env=e, capture_output=True, timeout=HANG)
    verdict(res, name, problems)


def tests(env):
    out = [matrix.SuiteTest("rules-policy/%s/broken-file-builtins" % carrier,
                            lambda env, fake, res, n="rules-policy/%s/broken-file-builtins" % carrier:
                            t_case(env, fake, res, n))
           for carrier in CASES]
    n = "rules-policy/proxy/relay-follows-edits"
    out.append(matrix.SuiteTest(n, lambda env, fake, res: t_follows_edits(env, fake, res, n)))
    return out
