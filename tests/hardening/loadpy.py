#!/usr/bin/env python3
"""loadpy.py PORT THREADS REQUESTS: Python threads through libkimifix.so.

THREADS threads, one keep-alive http.client connection each, send REQUESTS
POSTs of the doubled-/v1 request (Host api.kimi.com) to fakeup's plain
listener on 127.0.0.1:PORT. Fixed by kimifix they get 200, otherwise 404.
Samples its own fds and RSS after a tenth and at the end (no growth:
fds +2, RSS +8 MiB). Prints "loadpy: N passed, N failed"."""
import http.client
import os
import sys
import threading

BODY = b'{"model":"kimi-for-coding","messages":[{"role":"user","content":"hi"}]}'
HDRS = {"Host": "api.kimi.com", "Content-Type": "application/json",
        "Authorization": "Bearer sk-kimi-HARDSECRET-51b2"}


def fds():
    return len(os.listdir("/proc/self/fd"))


def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def main():
    port, nthreads, nreq = (int(x) for x in sys.argv[1:4])
    ok = [0] * nthreads
    bad = [0] * nthreads
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(nthreads)]

    def work(t, n):
        c = conns[t]
        for _ in range(n):
            try:
                c.request("POST", "/coding/v1/v1/chat/completions", body=BODY, headers=HDRS)
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    ok[t] += 1
                else:
                    bad[t] += 1
            except Exception as e:  # noqa: BLE001 - counted and reported
                bad[t] += 1
                print("loadpy: %r" % e, file=sys.stderr)
                c.close()

    def phase(n):
        th = [threading.Thread(target=work, args=(t, n)) for t in range(nthreads)]
        for x in th:
            x.start()
        for x in th:
            x.join()

    warm = max(1, nreq // 10)
    phase(warm)
    f1, r1 = fds(), rss()
    phase(nreq - warm)
    f2, r2 = fds(), rss()
    # under sanitizers RSS says nothing (shadow memory, quarantine)
    growth = f2 > f1 + 2 or (r2 > r1 + 8192 and "HARD_NO_RSS" not in os.environ)
    print("loadpy: %d threads x %d requests: fds %d -> %d, RSS %d -> %d KiB%s"
          % (nthreads, nreq, f1, f2, r1, r2, " (GROWTH)" if growth else ""))
    print("loadpy: %d passed, %d failed" % (sum(ok), sum(bad) + growth))
    return 1 if sum(bad) or growth else 0


if __name__ == "__main__":
    sys.exit(main())
