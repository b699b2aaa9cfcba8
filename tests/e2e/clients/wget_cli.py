"""Drives wget (Debian's, GnuTLS; HTTP/1.1 only). Trust: --ca-certificate
(wget reads no CA variable; a user puts it in .wgetrc). E2E_WRAP prefixes wget
only. E2E_REPEAT=N gives wget the URL N times: it reuses its connection
(-d prints 'Reusing existing connection', which is counted). wget cannot send
a body of unknown length, so no chunked scenario. The body goes to stdout
(-O -), read here as it arrives."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

URL = common.env("E2E_URL")
BODY_FILE = common.env("E2E_BODY_FILE")
METHOD = common.env("E2E_METHOD", "POST" if BODY_FILE else "GET")
n = int(common.env("E2E_REPEAT", "1"))
a = ["-d", "-S", "--content-on-error", "--tries=1", "--timeout=30",
     "--ca-certificate=" + common.env("E2E_CACERT", ""), "-O", "-", "--method=" + METHOD]
if BODY_FILE:
    a.append("--body-file=" + BODY_FILE)
for k, v in common.headers():
    a.append("--header=%s: %s" % (k, v))
wrap = common.env("E2E_WRAP", "").split()
out = common.Out()
with tempfile.TemporaryFile() as err:
    p = subprocess.Popen(wrap + [common.env("E2E_WGET", "wget")] + a + [URL] * n,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    data = b""
    while True:
        c = os.read(p.stdout.fileno(), 65536)
        if not c:
            break
        out.chunk(c)
        data += c
    p.wait()
    err.seek(0)
    log = err.read().decode("latin1")
out.body = data
out.statuses = [int(s) for s in re.findall(r"^  HTTP/1\.[01] (\d{3})", log, re.M)]
out.facts["connections"] = n - log.count("Reusing existing connection")
out.facts["exit"] = p.returncode
if common.env("E2E_DEBUG") == "1":
    sys.stderr.write(log)
out.done()
