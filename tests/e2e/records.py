"""Judging one test from what the client printed and what fakeup recorded.

Without kimifix a bug scenario must fail exactly as the real server fails
(status and error type at the client, the buggy request in the record): that
proves the fake is faithful. With kimifix the record must show the fixed
request and every other byte unchanged: the raw HTTP/1 head (head_b64) must
equal the head recorded without kimifix with only the expected edits applied,
minus the client's named volatile headers; body length and SHA-256 equal."""
import base64
from urllib.parse import urlsplit

SSE_DELAY_MS = 300
# the real server's messages (field-notes 2), for clients that show only those
MESSAGES = {404: "The requested resource was not found",
            403: "Kimi For Coding is currently only available",
            429: "The engine is currently overloaded"}
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "expect"}


class Ctx:
    def __init__(self, test, req, env, statuses, facts, body, recs, proc, secs):
        self.test, self.req, self.env = test, req, env
        self.statuses, self.facts, self.body, self.recs = statuses, facts, body, recs
        self.proc, self.secs = proc, secs


def target_of(url):
    u = urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


def hdr(rec, name):
    return [v for k, v in rec["headers"] if k.lower() == name.lower()]


def main_records(ctx, target_path):
    """The scenario's requests: agents also send a HEAD probe and side calls."""
    recs = ctx.recs
    if ctx.test.client.kind in ("claude", "kimi"):
        recs = [r for r in recs if r["method"] == "POST" and r["target"].split("?")[0] == target_path]
    return recs


def judge(ctx, baseline):
    t, scn, c = ctx.test, ctx.test.scn, ctx.test.client
    p = []
    if ctx.proc.returncode != 0 and "exit" not in ctx.facts:
        p.append("client exited %d: %s" % (ctx.proc.returncode,
                                          (ctx.proc.stdout + ctx.proc.stderr)[-300:].decode("utf-8", "replace")))
        return p
    fixing = t.mode == "with" and scn.bug
    url = ctx.req["url"]
    want_target = target_of(url)
    want_host = urlsplit(url).hostname
    if fixing and "target" in scn.fix:
        want_target = scn.fix["target"]
    if fixing and "host" in scn.fix:
        want_host = scn.fix["host"]
    want_path = want_target
    if c.kind == "claude":
        want_target += "?beta=true"  # Claude Code's own query: must be kept
    want_status = scn.bug[0] if scn.bug and not fixing else scn.status
    recs = main_records(ctx, want_path)
    n = scn.repeat
    if len(recs) != n if c.kind not in ("claude", "kimi") else len(recs) < 1:
        p.append("upstream got %d request(s) %s, want %d" % (
            len(ctx.recs), [(r["method"], r["target"]) for r in ctx.recs], n))
        return p
    # what the client saw
    if len(ctx.statuses) != len(recs) and c.kind not in ("claude", "kimi"):
        p.append("client printed %d status(es) %s for %d request(s)" % (len(ctx.statuses), ctx.statuses, len(recs)))
    agent = c.kind in ("claude", "kimi")
    if agent:  # the CLI prints its own rendering of the answer, not the status
        code = int(ctx.facts.get("exit", "0"))
        if (code == 0) != (want_status == 200):
            p.append("client exited %d, want %s" % (code, "0" if want_status == 200 else "non-zero"))
        if ctx.statuses and ctx.statuses[0] and ctx.statuses[0] != want_status:
            p.append("client reported status %s, want %d" % (ctx.statuses[0], want_status))
    elif any(s != want_status for s in ctx.statuses) or not ctx.statuses:
        p.append("client saw status %s, want %d" % (ctx.statuses, want_status))
    evidence = c.error_evidence.get(want_status, "type")
    if scn.bug and not fixing and evidence != "none":
        want = (scn.bug[1] if evidence == "type" else evidence[5:] if evidence.startswith("text:")
                else MESSAGES[scn.bug[0]]).encode()
        if want not in ctx.body:
            p.append("client did not show the server's error (%s): %r" % (want.decode(), ctx.body[:200]))
    if fixing and scn.bug[1].encode() in ctx.body:
        p.append("client still saw %s" % scn.bug[1])
    # what the upstream got
    for r in recs:
        if r["status"] != want_status:
            p.append("record #%s status %s, want %d" % (r["n"], r["status"], want_status))
        if r["target"] != want_target:
            p.append("record #%s target %s, want %s" % (r["n"], r["target"], want_target))
        host = (r.get("sni") if r["listener"] == "https" else None) or (r.get("host") or "").split(":")[0]
        if host != want_host:
            p.append("record #%s host %s, want %s" % (r["n"], host, want_host))
        for name, value in scn.headers:
            want = scn.fix.get("headers", {}).get(name.lower(), value) if fixing else value
            got = hdr(r, name)
            if got != [want]:
                p.append("record #%s %s: %s, want %s" % (r["n"], name, got, want))
        if c.kind == "raw":
            _, sha, blen = ctx.env.body(ctx.req["body"])
            if r["body_sha256"] != sha or r["body_len"] != blen:
                p.append("record #%s body %d bytes sha %s…, want %d bytes %s…" % (
                    r["n"], r["body_len"], r["body_sha256"][:12], blen, sha[:12]))
            if scn.opts.get("E2E_CHUNKED") and r["version"] == "HTTP/1.1" and not r["chunked"]:
                p.append("record #%s body not chunked" % r["n"])
            if scn.opts.get("E2E_EXPECT100") and hdr(r, "expect") != ["100-continue"]:
                p.append("record #%s no Expect: 100-continue (%s)" % (r["n"], hdr(r, "expect")))
    if n > 1 and ctx.facts.get("connections") not in (None, "1"):
        p.append("client used %s connections for %d requests, want 1" % (ctx.facts.get("connections"), n))
    if n > 1 and len({r.get("conn") for r in recs}) != 1:
        p.append("upstream saw the requests on connections %s, want one" % [r.get("conn") for r in recs])
    if scn.streamed:
        first, total = int(ctx.facts.get("first-byte-ms", -1)), int(ctx.facts.get("total-ms", 0))
        if first < 0 or total - first < 0.8 * SSE_DELAY_MS:
            p.append("SSE not streamed: first event at %s ms, end at %s ms" % (first, total))
    if t.mode in ("with", "again") and t.group == "main" and not p:
        base = baseline.get((c.name, scn.name))
        if base is None:
            p.append("no passing without-kimifix baseline to compare with")
        else:
            base = main_records_list(base, c, target_of(ctx.req["url"]).split("?")[0])
            for b, r in zip(base, recs):
                p += compare(b, r, scn.fix if fixing else {}, c)
    return p


def main_records_list(recs, c, path):
    if c.kind in ("claude", "kimi"):
        return [r for r in recs if r["method"] == "POST" and r["target"].split("?")[0] == path]
    return recs


def compare(base, got, fix, c):
    """Everything but the expected edits and the client's volatile headers
    must be unchanged."""
    p = []
    vol = c.volatile
    if c.body_stable and (base["body_sha256"], base["body_len"]) != (got["body_sha256"], got["body_len"]):
        p.append("body changed: %d bytes %s… -> %d bytes %s…" % (
            base["body_len"], base["body_sha256"][:12], got["body_len"], got["body_sha256"][:12]))
    if base["method"] != got["method"]:
        p.append("method changed %s -> %s" % (base["method"], got["method"]))
    hedits = {k.lower(): v for k, v in fix.get("headers", {}).items()}
    if "host" in fix:
        hedits["host"] = fix["host"]
    if base.get("head_b64") and got.get("head_b64"):
        want = edit_head(base64.b64decode(base["head_b64"]), fix.get("target"), hedits, vol)
        have = edit_head(base64.b64decode(got["head_b64"]), None, {}, vol)
        if want != have:
            p.append("head differs beyond the fix: " + first_diff(want.split(b"\r\n"), have.split(b"\r\n")))
        return p
    # h2 on either side (or a version change): compare the header lists
    same_version = base["version"] == got["version"]

    def norm(rec, edits):
        out = []
        for k, v in rec["headers"]:
            lk = k.lower()
            if k.startswith(":") or lk in vol or (not same_version and lk in HOP):
                continue
            out.append((k if same_version else lk, edits.get(lk, v)))
        return out
    if norm(base, hedits) != norm(got, {}):
        p.append("headers differ beyond the fix: " + first_diff(norm(base, hedits), norm(got, {})))
    return p


def first_diff(want, have):
    for i, (w, h) in enumerate(zip(want, have)):
        if w != h:
            return "line %d: want %r, got %r" % (i, w, h)
    i = min(len(want), len(have))
    return "want %d lines, got %d (first extra: %r)" % (len(want), len(have), (want[i:] or have[i:])[0])


def edit_head(raw, target, hedits, volatile):
    lines = raw.split(b"\r\n")
    if target:
        m, _, rest = lines[0].partition(b" ")
        old, _, ver = rest.rpartition(b" ")
        new = target.encode()
        if b"?" in old and b"?" not in new:  # the fixes keep the query (Claude Code's ?beta=true)
            new += b"?" + old.partition(b"?")[2]
        lines[0] = m + b" " + new + b" " + ver
    out = [lines[0]]
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        ln = name.decode("latin1").lower()
        if colon and ln in volatile:
            continue
        if colon and ln in hedits:
            lead = value[:len(value) - len(value.lstrip())]
            line = name + b":" + lead + hedits[ln].encode()
        out.append(line)
    return b"\r\n".join(out)
