"""Shared by the Python drivers: the environment interface and the output
format every driver prints (tests/e2e/README.md, "Driver interface")."""
import os
import sys
import time

T0 = time.monotonic()


def env(name, default=None):
    v = os.environ.get(name)
    return default if v is None or v == "" else v


def headers():
    """E2E_HEADERS: one 'Name: value' per line, order and case kept."""
    out = []
    for line in env("E2E_HEADERS", "").split("\n"):
        if line.strip():
            name, _, value = line.partition(":")
            out.append((name.strip(), value.strip()))
    return out


def body():
    path = env("E2E_BODY_FILE")
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def body_chunks(data, size=4096):
    """A generator, so the library cannot know the length: it must send the
    body chunked (HTTP/1.1) as it is produced."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


class Out:
    """Collects what the runner parses: 'status: N' per response, then
    'key: value' facts, then 'body:' and the last response body."""

    def __init__(self):
        self.statuses = []
        self.facts = {}
        self.body = b""
        self.first_ms = None

    def chunk(self, data):
        if data and self.first_ms is None:
            self.first_ms = int((time.monotonic() - T0) * 1000)

    def done(self):
        w = sys.stdout.buffer
        for s in self.statuses:
            w.write(b"status: %d\n" % s)
        if self.first_ms is not None:
            self.facts.setdefault("first-byte-ms", self.first_ms)
        self.facts["total-ms"] = int((time.monotonic() - T0) * 1000)
        for k, v in self.facts.items():
            w.write(("%s: %s\n" % (k, v)).encode())
        w.write(b"body:\n" + self.body)
        w.flush()
