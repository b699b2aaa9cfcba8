"""Figure 13: the proxy carrier (issue 11; docs/relay.md "Proxy carrier"),
the relay as a client's HTTP proxy. Three rows, each against a baseline in
the same run, arms interleaved (bench/run.py's ab()):

  a. blind tunnel: a 1 GiB upload, TLS end to end with the sink, through
     `CONNECT 127.0.0.1:SINK` (an IP literal no rule names: the relay only
     copies bytes) vs straight to the sink; budget >= 0.9x;
  b. CONNECT setup: N connections, each TCP connect + CONNECT + the
     relay's upstream connect + `200`, vs a direct TCP connect to the sink;
     budget: p50 added <= 150 us;
  c. rewritten requests on one connection, `CONNECT api.kimi.com:SINK`
     (the relay terminates TLS and rewrites) vs connect() steering (the
     PROXY v2 preamble the shim writes, figure 5's relay arm); budget: the
     same request rate within 10 %.

The figure runs a relay of its own (own runtime dir; rules with a
`connect-to api.kimi.com:SINK 127.0.0.1:SINK`, since CONNECT names a host
the relay resolves).
"""
import os
import signal
import subprocess
import time

FIG = "13"


def _relay(ctx):
    run_dir = os.path.join(ctx.W, "fig13-run")
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    rules = os.path.join(ctx.W, "fig13.rules")
    with open(rules, "w") as f:
        f.write("connect-to api.kimi.com:%d 127.0.0.1:%d\n" % (ctx.SINK, ctx.SINK))
    st = os.path.join(run_dir, "kimifix", "relay.state")
    p = ctx.start([ctx.RELAY, "--idle", "0"], log_name="relay-fig13",
                  extra={"KIMIFIX_UPSTREAM_CA": ctx.CA, "XDG_RUNTIME_DIR": run_dir, "KIMIFIX_RULES": rules},
                  ready=lambda: "token" in ctx.read_file(st))
    kv = dict(line.split(None, 1) for line in ctx.read_file(st).splitlines() if " " in line)
    return int(kv["port"]), kv["token"].strip(), p.pid


def _cpu_s(pid):
    """User + system CPU seconds of a process so far."""
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _tunnel_profile(ctx, pid, upload):
    """perf of the relay (self cost) while `upload` runs through it."""
    data = os.path.join(ctx.W, "perf.fig13")
    pr = subprocess.Popen(["perf", "record", "-q", "-F", "2000", "-p", str(pid), "-o", data],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    upload()
    pr.send_signal(signal.SIGINT)
    pr.wait(timeout=60)
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym"],
                         capture_output=True, text=True).stdout
    lines = [l.rstrip() for l in rep.splitlines() if l.strip() and not l.startswith("#") and "%" in l]
    return "\n".join(lines[:16]) or "(perf report empty)"


def run(ctx):
    port, tok, rpid = _relay(ctx)
    hc = [os.path.join(ctx.BB, "hclient")]
    relay = "127.0.0.1:%d" % port
    sink = "127.0.0.1:%d" % ctx.SINK
    cred = "kimifix:" + tok
    rca = os.path.join(ctx.W, "xdgdata", "kimifix", "ca.pem")
    med, fmt, col = ctx.med, ctx.fmt, ctx.col

    # a. blind tunnel throughput
    size = ctx.GIB
    relay_cpu = []  # the relay's CPU seconds per GiB, per round

    def tunneled():
        c0 = _cpu_s(rpid)
        r = ctx.run(hc + ["-a", relay, "-x", sink, "-u", cred, "-c", ctx.CA, "up", str(size)])
        relay_cpu.append((_cpu_s(rpid) - c0) * (1 << 30) / size)
        return r
    A, K = ctx.ab("fig13 tunnel", lambda: ctx.run(hc + ["-a", sink, "-c", ctx.CA, "up", str(size)]), tunneled)
    a, k = col(A, "mib_s"), col(K, "mib_s")
    ratio = med(k) / med(a)
    ctx.rows.append(("13", "blind tunnel: %d MiB upload through the proxy carrier vs direct: MiB/s (the "
                     "relay's CPU: %.2f s per GiB)" % (size >> 20, med(relay_cpu)), fmt(a, " MiB/s"),
                     fmt(k, " MiB/s"), "ratio %.3f" % ratio, "≥ 0.9×", ctx.verdict(ratio >= 0.9)))
    if ratio < 0.9:
        ctx.misses.append(("13", "blind tunnel: perf profile of the relay during a %d MiB upload (self cost)"
                           % (size >> 20), _tunnel_profile(ctx, rpid, tunneled)))

    # b. CONNECT setup
    n = 200 if ctx.args.quick else 1000
    A, K = ctx.ab("fig13 connect",
                  lambda: ctx.run(hc + ["-a", sink, "conn", str(n)]),
                  lambda: ctx.run(hc + ["-a", relay, "-x", sink, "-u", cred, "conn", str(n)]))
    a, k = col(A, "p50_us"), col(K, "p50_us")
    added = med(k) - med(a)
    ctx.rows.append(("13", "CONNECT setup (TCP connect + CONNECT + the relay's upstream connect + 200) "
                     "vs a direct TCP connect, %d each: p50" % n, fmt(a, " µs"), fmt(k, " µs"),
                     "added %+.0f µs" % added, "≤ +150 µs", ctx.verdict(added <= 150)))

    # c. rewritten requests: proxy carrier vs connect() steering
    nl = 500 if ctx.args.quick else 2000
    A, K = ctx.ab("fig13 rewritten",
                  lambda: ctx.run(hc + ["-a", relay, "-c", rca, "-t", tok, "-d", str(ctx.SINK), "lat", str(nl)]),
                  lambda: ctx.run(hc + ["-a", relay, "-x", "api.kimi.com:%d" % ctx.SINK, "-u", cred, "-c", rca,
                                        "-s", "api.kimi.com", "lat", str(nl)]))
    a, k = col(A, "rps"), col(K, "rps")
    ratio = med(k) / med(a)
    fixed = min(int(x["ok"]) for x in K)
    ok = abs(ratio - 1) <= 0.10 and fixed == nl
    ctx.rows.append(("13", "rewritten requests on one connection, %d each: proxy carrier vs connect() "
                     "steering: requests/s" % nl, fmt(a, " req/s", 0), fmt(k, " req/s", 0),
                     "ratio %.3f; rewritten %d/%d" % (ratio, fixed, nl), "within 10 %", ctx.verdict(ok)))
    ctx.notes.append("Figure 13: one client (`bench/hclient.c`, `-x HOST:PORT -u kimifix:TOKEN` for the "
                     "proxy arms) and the sink of figures 3 and 5; the relay is a second instance with its "
                     "own runtime dir and a `connect-to` rule for api.kimi.com. Row a's TLS runs end to end "
                     "between client and sink (the relay never terminates it: a blind tunnel).")
