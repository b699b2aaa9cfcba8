#!/usr/bin/env python3
"""tlsfault.py BUILD_DIR: faults under the OpenSSL hook (SSL_write).

The fault layer (libkffault.so, below libkimifix.so) makes the socket
writes OpenSSL does return EAGAIN, EINTR or short counts, so SSL_write
itself answers SSL_ERROR_WANT_WRITE (or writes part of a record and keeps
the rest) at every point of the connection, handshake included; EPIPE and
a reset at every point are hard errors. The client is tlsclient.py:
Debian's python3 (SSL_write_ex in a privately loaded libssl, moving write
buffer) on a non-blocking socket, retrying after every WANT_READ/WANT_WRITE;
the server is fakeup over TLS, which records
each request's exact head and body hash.

Soft faults: the client succeeds and fakeup recorded exactly the fixed
request. Each case's request carries its own query (?c=N), so a record that
fakeup writes after the client of a failed case exited is told apart from
the next case's, however slow the machine (fakeup writes a record before it
answers, so a successful client's record is always there already). Hard faults: the client fails as it does without kimifix (exit
!= 0) or succeeds, and nothing fakeup recorded differs from the fixed
request (never a corrupted one). Prints "tlsfault: N passed, N failed"."""
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

B = os.path.abspath(sys.argv[1])
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(B, "tests/tls/ossl_client")
PYCLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tlsclient.py")
# ossl_client cannot read fakeup's answer to its end (-n): it closes with
# the server's session tickets unread, the kernel answers with a RST, and
# fakeup then sometimes loses the request - with or without kimifix. It is
# kept for the error cases; the exact-bytes cases use tlsclient.py.
MODES = os.environ.get("TLSFAULT_MODES", "python").split()
PRE = os.environ.get("KF_PRELOAD_PREFIX")
FAULT = os.path.join(B, "tests/faults/libkffault.so")
LIB = ((PRE + ":") if PRE else "") + os.path.join(B, "libkimifix.so") + ":" + FAULT
BODY = 300


def kfreq(path, platform):
    fake = b"POST /coding/v1/v1/messages HTTP/1.1\r\n"
    head = (b"POST %s HTTP/1.1\r\nHost: api.kimi.com\r\nUser-Agent: kftest/1\r\n"
            b"X-Msh-Platform: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (path, platform, BODY))
    body = bytes(fake[i % len(fake)] for i in range(BODY))
    return head, body


def main():
    if "python" not in MODES and not os.access(CLIENT, os.X_OK):
        print("tlsfault: %s not built (make check-tls builds it)" % CLIENT)
        print("tlsfault: 0 passed, 0 failed, 1 skipped")
        return 0
    work = tempfile.mkdtemp(prefix="kimifix-tlsfault.")
    certs = os.path.join(work, "certs")
    subprocess.run(["sh", os.path.join(SRC, "tests/fakeup/mkcerts.sh"), certs],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    rec, ready = os.path.join(work, "rec"), os.path.join(work, "ready")
    fu = subprocess.Popen([os.path.join(B, "fakeup"), "--certs", certs, "--record", rec,
                           "--ready", ready], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
    for _ in range(1200):  # hang guard: 60 s
        if os.path.exists(ready) and os.path.getsize(ready):
            break
        time.sleep(0.05)
    port = open(ready).read().split("https=")[1].split()[0]
    _, body = kfreq(b"/coding/v1/messages", b"kimi_cli")
    want_sha = hashlib.sha256(body).hexdigest()
    seen = [0]
    case = [0]
    stray = []  # records of earlier cases that came late: checked, not counted

    def new_records():
        lines = open(rec).read().splitlines() if os.path.exists(rec) else []
        out = [json.loads(l) for l in lines[seen[0]:] if l.strip()]
        seen[0] = len(lines)
        return out

    def tag_of(r):
        return r["target"].partition("?")[2]

    def wait_records(want, tag):
        """This case's records. fakeup records before it answers: a
        successful client's record is there; the deadline is a hang guard."""
        got = []
        for _ in range(3000):
            for r in new_records():
                (got if tag_of(r) == tag else stray).append(r)
            if len(got) >= want:
                break
            time.sleep(0.02)
        return got

    def run(mode, kind, at, report, want=1):
        case[0] += 1
        tag = "c=%d" % case[0]
        env = dict(os.environ, LD_PRELOAD=LIB, KIMIFIX_RULES=os.path.join(work, "none"),
                   KIMIFIX_LOG=os.path.join(work, "kimifix.log"), HOME=work, KFFAULT_PORT=port,
                   KFFAULT_KIND=kind, KFFAULT_AT=str(at), KFFAULT_REPORT=report)
        open(env["KIMIFIX_RULES"], "w").close()
        env.pop("KIMIFIX_MODE", None)
        try:
            p = subprocess.run(["/usr/bin/python3", PYCLIENT, port, os.path.join(certs, "ca.pem"),
                                str(BODY), tag] if mode == "python" else
                               [CLIENT, "-p", port, "-s", "api.kimi.com", "-c",
                                os.path.join(certs, "ca.pem"), "-m", mode, "-H", "api.kimi.com",
                                "-P", "/coding/v1/v1/messages?" + tag, "-b", str(BODY), "-n"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = -1
        pts = 0
        try:
            pts = int(open(report).read().split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return rc, wait_records(want if rc == 0 else 0, tag), pts

    def exact(r):
        """The fixed request of the case the record names (?c=N)."""
        want_head = kfreq(b"/coding/v1/messages?" + tag_of(r).encode(), b"kimi_cli")[0]
        return (base64.b64decode(r["head_b64"]) == want_head and r["body_sha256"] == want_sha)

    passed = failed = cases = 0
    report = os.path.join(work, "report")
    for mode in MODES:
        rc, recs, points = run(mode, "none", 0, report)
        ok = rc == 0 and len(recs) == 1 and exact(recs[0]) and points > 0
        passed, failed = passed + ok, failed + (not ok)
        if not ok:
            print("FAIL %s baseline: rc %d, %d records, %d points" % (mode, rc, len(recs), points))
            continue
        for kind in ("eagain", "eintr", "short1", "shorthalf"):
            for at in range(1, points + 2):
                rc, recs, _ = run(mode, kind, at, report)
                cases += 1
                ok = rc == 0 and len(recs) == 1 and exact(recs[0])
                passed, failed = passed + ok, failed + (not ok)
                if not ok:
                    print("FAIL %s %s at %d/%d: rc %d, records %s" % (
                        mode, kind, at, points, rc, [r.get("target") for r in recs]))
        for kind in ("epipe", "reset"):
            for at in range(1, points + 1):
                rc, recs, _ = run(mode, kind, at, report)
                cases += 1
                ok = rc != -1 and all(exact(r) for r in recs) and (rc != 0 or len(recs) == 1)
                passed, failed = passed + ok, failed + (not ok)
                if not ok:
                    print("FAIL %s %s at %d/%d: rc %d, records %s" % (
                        mode, kind, at, points, rc, [r.get("target") for r in recs]))
    for r in stray + [r for r in new_records()]:  # late records: never a corrupted one
        if not exact(r):
            failed += 1
            print("FAIL late record of an earlier case: %s" % r.get("target"))
    log = open(os.path.join(work, "kimifix.log")).read() if os.path.exists(
        os.path.join(work, "kimifix.log")) else ""
    fu.terminate()
    fu.wait()
    print("tlsfault: %d cases (%s x 6 kinds x every point)" % (cases, "/".join(MODES)))
    print("tlsfault: %d passed, %d failed" % (passed, failed))
    if not failed:
        subprocess.run(["rm", "-rf", work])
    else:
        print("kept", work, "log:", log[-500:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
