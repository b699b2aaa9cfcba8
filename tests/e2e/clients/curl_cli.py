"""Drives the curl CLI (`curl`, OpenSSL, h2 by default; E2E_HTTP=1.1 adds
--http1.1). Trust: CURL_CA_BUNDLE, which the curl tool reads. E2E_WRAP is a
command prefix (the kimifix wrapper) put in front of curl only. Repeats use
--next, so curl reuses its connection; '%{num_connects}' counts new ones."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

URL = common.env("E2E_URL")
BODY_FILE = common.env("E2E_BODY_FILE")
METHOD = common.env("E2E_METHOD", "POST" if BODY_FILE else "GET")
MARK = b"\n@@E2E "


def one():
    a = ["-sS", "-N"]
    if common.env("E2E_HTTP") == "1.1":
        a.append("--http1.1")
    if METHOD == "HEAD":
        a.append("-I")
    elif BODY_FILE and common.env("E2E_CHUNKED") == "1":
        a += ["-X", METHOD, "-T", "-"]  # unknown size from stdin: chunked upload
    elif METHOD != ("POST" if BODY_FILE else "GET"):
        a += ["-X", METHOD]
    if BODY_FILE and common.env("E2E_CHUNKED") != "1":
        a += ["--data-binary", "@" + BODY_FILE]
    for k, v in common.headers():
        a += ["-H", "%s: %s" % (k, v)]
    # curl adds 'Expect: 100-continue' by itself above a size; make it explicit
    if common.env("E2E_EXPECT100") == "1":
        a += ["-H", "Expect: 100-continue", "--expect100-timeout", "10"]
    elif BODY_FILE:
        a += ["-H", "Expect:"]
    a += ["-w", MARK.decode() + "%{http_code} %{num_connects}\n", URL]
    return a


args = one()
for _ in range(int(common.env("E2E_REPEAT", "1")) - 1):
    args += ["--next"] + one()
wrap = common.env("E2E_WRAP", "").split()
stdin = open(BODY_FILE, "rb") if BODY_FILE and common.env("E2E_CHUNKED") == "1" else subprocess.DEVNULL
p = subprocess.Popen(wrap + [common.env("E2E_CURL", "curl")] + args, stdin=stdin, stdout=subprocess.PIPE)
out = common.Out()
raw = b""
while True:
    c = os.read(p.stdout.fileno(), 65536)
    if not c:
        break
    out.chunk(c)
    raw += c
p.wait()
parts = raw.split(MARK)
bodies, connects = [parts[0]], 0
for part in parts[1:]:
    line, _, rest = part.partition(b"\n")
    code, n = line.split()
    out.statuses.append(int(code))
    connects += int(n)
    bodies.append(rest)
out.body = bodies[-2] if len(bodies) > 1 else raw
out.facts["connections"] = connects
out.facts["exit"] = p.returncode
out.done()
