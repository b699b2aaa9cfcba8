"""Figure 10: the relay under load and at rest, against nginx (issue 14 part 4).

One load generator for both arms: `h2load --h1` (Debian nghttp2-client),
TLS to the proxy, the buggy request (doubled /v1, X-Msh-Platform:
kimi_code_cli) that both proxies rewrite, upstream = bench/sink.c over TLS,
verified. h2load reaches the relay as a steered client does: the LD_PRELOAD
helper tests/relay/pp2pre.so turns its connect() to the sink's address into
a connect to the relay plus the PROXY v2 preamble (the shim's
kf_steer_connect, nothing else); the nginx arm loads the same helper (it
leaves nginx's port alone), so both arms pay the same hook.

  - keep-alive request rate and p99 at 1, 32 and 128 connections (h2load's
    per-request log gives the percentiles), arms interleaved, medians;
  - one request per connection (the client closes after its answer; 32 at a
    time): rate, and the proxy's CPU per connection (/proc, both arms);
  - RSS of 1000 idle TLS keep-alive connections (each has had one answer);
  - a perf profile of the relay at 32 connections when it is behind.
"""
import asyncio
import os
import resource
import signal
import socket
import ssl
import struct
import subprocess
import time

FIG = "10"
PATH = "/coding/v1/v1/messages"


def _h2load_env(ctx, pre, relay):
    e = ctx.env_for(False)
    e["LD_PRELOAD"] = pre
    e.update(KF_PP2_DST=str(ctx.SINK), KF_PP2_RELAY=str(relay["port"]), KF_PP2_TOKEN=relay["token"],
             KF_PP2_AUTH="api.kimi.com")
    return e


def _pctl(logf, q):
    vals = []
    with open(logf) as f:
        for line in f:
            p = line.split("\t")
            if len(p) >= 3 and p[1] == "200":
                vals.append(int(p[2]))
    vals.sort()
    return vals[min(len(vals) - 1, int(q * len(vals)))] / 1000.0 if vals else float("nan")


def _h2load(ctx, env, port, c, n, tag):
    logf = os.path.join(ctx.W, "h2load.%s.log" % tag)
    cmd = ["h2load", "--h1", "-c", str(c), "-n", str(n), "--connect-to=127.0.0.1:%d" % port,
           "-H", "X-Msh-Platform: kimi_code_cli", "-H", "x-api-key: sk-kimi-bench",
           "--log-file=" + logf, "https://api.kimi.com" + PATH]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout
    ok = fin = 0
    for line in out.splitlines():
        if line.startswith("requests:"):
            ok = int(line.split(",")[3].split()[0])  # "N succeeded"
        if line.startswith("finished in"):
            t = line.split()[2].rstrip(",")
            fin = float(t[:-2]) / 1000 if t.endswith("ms") else float(t[:-1])
    if ok != n:
        raise RuntimeError("h2load %s c=%d: %d of %d succeeded: %s" % (tag, c, ok, n, out[-400:] + r.stderr[-300:]))
    return {"rps": n / fin, "p99": _pctl(logf, 0.99), "secs": fin}


def _cpu_ms(pids):
    hz = os.sysconf("SC_CLK_TCK")
    t = 0
    for p in pids:
        try:
            f = open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])
        except OSError:
            pass
    return t * 1000.0 / hz


def _children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open("/proc/%s/stat" % d).read()
            except OSError:
                continue
            if int(st.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d))
    return kids


def _preamble(token, dport):
    body = bytes(4) + socket.inet_aton("127.0.0.1") + b"\0\0" + struct.pack(">H", dport)
    body += bytes([0x02]) + struct.pack(">H", 12) + b"api.kimi.com"
    body += bytes([0xE0]) + struct.pack(">H", 16) + bytes.fromhex(token)
    return b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack(">H", len(body)) + body


async def _hold(port, pre, n, measure):
    """n TLS keep-alive connections, one answered request each, held while
    measure() runs."""
    sc = ssl.create_default_context()
    sc.check_hostname = False
    sc.verify_mode = ssl.CERT_NONE
    sc.set_alpn_protocols(["http/1.1"])
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(64)
    held = []
    req = ("GET %s HTTP/1.1\r\nHost: api.kimi.com\r\nX-Msh-Platform: kimi_code_cli\r\n\r\n" % PATH).encode()

    async def one():
        async with sem:
            s = socket.socket()
            s.setblocking(False)
            await loop.sock_connect(s, ("127.0.0.1", port))
            if pre:
                await loop.sock_sendall(s, pre)
            r, w = await asyncio.open_connection(sock=s, ssl=sc, server_hostname="api.kimi.com")
            w.write(req)
            head = await r.readuntil(b"\r\n\r\n")
            cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            await r.readexactly(int(cl[0].split(b":")[1]) if cl else 0)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError("idle connection: %r" % head[:40])
            held.append(w)

    await asyncio.gather(*[one() for _ in range(n)])
    res = measure()
    for w in held:
        w.close()
    return res


def run(ctx):
    pre = os.path.join(ctx.B, "tests", "relay", "pp2pre.so")
    if not os.path.exists(pre) or not ctx.shutil.which("h2load"):
        raise RuntimeError("needs h2load (bench/deps.sh: nghttp2-client) and %s (make)" % pre)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
    quick = ctx.args.quick
    # Our own relay (its own runtime dir) and nginx, same sink as figure 5.
    rundir = os.path.join(ctx.W, "fig10run")
    os.makedirs(rundir, mode=0o700)
    st = os.path.join(rundir, "kimifix", "relay.state")
    rp = ctx.start([ctx.RELAY, "--idle", "0"], extra={"XDG_RUNTIME_DIR": rundir, "KIMIFIX_UPSTREAM_CA": ctx.CA},
                   ready=lambda: "token" in ctx.read_file(st), log_name="relay-fig10")
    kv = dict(l.split(None, 1) for l in ctx.read_file(st).splitlines() if " " in l)
    relay = {"port": int(kv["port"]), "token": kv["token"].strip(), "pid": rp.pid}
    ng = ctx.free_port()
    ngd = os.path.join(ctx.W, "nginx10")
    os.makedirs(os.path.join(ngd, "tmp"))
    conf = open(os.path.join(ctx.ROOT, "bench/nginx.conf.in")).read()
    conf = conf.replace("@DIR@", ngd).replace("@PORT@", str(ng)).replace("@SINK@", str(ctx.SINK)) \
               .replace("@CERTS@", ctx.CERTS)
    open(os.path.join(ngd, "nginx.conf"), "w").write(conf)
    np_ = ctx.start(["/usr/sbin/nginx", "-c", os.path.join(ngd, "nginx.conf"), "-p", ngd],
                    ready=lambda: os.path.exists(os.path.join(ngd, "nginx.pid")), log_name="nginx10")
    time.sleep(0.5)
    ngpids = [np_.pid] + _children(np_.pid)
    env = _h2load_env(ctx, pre, relay)
    port = {"relay": ctx.SINK, "nginx": ng}

    # ---- 1000 idle TLS keep-alive connections, first: fresh processes (a heap
    # grown by the load below would hide what the connections cost)
    nidle = 300 if quick else 1000

    def rss_of(pids):
        return sum(ctx.rss_kib(p) for p in pids if os.path.exists("/proc/%d" % p))

    rss = {}
    for k in ("relay", "nginx"):
        pids = [relay["pid"]] if k == "relay" else ngpids
        before = rss_of(pids)

        def measure(pids=pids):
            time.sleep(2.5)  # the relay trims its heap after a quiet second
            return rss_of(pids)

        held = asyncio.run(_hold(relay["port"] if k == "relay" else ng,
                                 _preamble(relay["token"], ctx.SINK) if k == "relay" else None, nidle, measure))
        rss[k] = (before, held)
        time.sleep(1)
    per = {k: (v[1] - v[0]) / float(nidle) for k, v in rss.items()}
    ctx.rows.append(("10", "RSS with %d idle TLS keep-alive connections (each answered once): MiB "
                     "(relay %.1f KiB per connection, nginx %.1f KiB)" % (nidle, per["relay"], per["nginx"]),
                     "nginx %.1f MiB (idle %.1f)" % (rss["nginx"][1] / 1024.0, rss["nginx"][0] / 1024.0),
                     "relay %.1f MiB (idle %.1f)" % (rss["relay"][1] / 1024.0, rss["relay"][0] / 1024.0),
                     "%.1f KiB per connection" % per["relay"], "≤ 32 KiB per connection, ≤ 40 MiB",
                     ctx.verdict(per["relay"] <= 32 and rss["relay"][1] <= 40 * 1024)))

    # ---- keep-alive request rate and p99 at c1, c32, c128
    sizes = {1: 500, 32: 4000, 128: 8000} if quick else {1: 3000, 32: 30000, 128: 40000}
    table = ["| c | relay req/s | nginx req/s | ratio | relay p99 | nginx p99 | relay CPU/request | nginx CPU/request |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    behind = False
    for c, n in sizes.items():
        res = {"relay": [], "nginx": []}
        cpu_req = {"relay": [], "nginx": []}
        for i in range(ctx.ROUNDS):
            for k in (["relay", "nginx"] if i % 2 == 0 else ["nginx", "relay"]):
                pids = [relay["pid"]] if k == "relay" else ngpids
                c0 = _cpu_ms(pids)
                res[k].append(_h2load(ctx, env, port[k], c, n, "%s.c%d.%d" % (k, c, i)))
                cpu_req[k].append((_cpu_ms(pids) - c0) * 1000.0 / n)
        rr = [x["rps"] for x in res["relay"]]
        nr = [x["rps"] for x in res["nginx"]]
        rp99 = [x["p99"] for x in res["relay"]]
        np99 = [x["p99"] for x in res["nginx"]]
        ratio = ctx.med(rr) / ctx.med(nr)
        behind |= ratio < 1.0
        p99ok = c != 128 or ctx.med(rp99) <= ctx.med(np99)
        ctx.rows.append(("10", "h2load --h1, %d connection%s, keep-alive, %s requests/round: req/s "
                         "(p99: relay %.2f ms, nginx %.2f ms)" % (c, "s" if c > 1 else "", "{:,}".format(n),
                                                                 ctx.med(rp99), ctx.med(np99)),
                         "nginx " + ctx.fmt(nr, "", 0), "relay " + ctx.fmt(rr, "", 0), "ratio %.2f" % ratio,
                         "≥ 1.0×" + (", p99 ≤ nginx" if c == 128 else ""),
                         ctx.verdict(ratio >= 1.0 and p99ok)))
        table.append("| %d | %.0f | %.0f | %.2f | %.2f ms | %.2f ms | %.0f µs | %.0f µs |"
                     % (c, ctx.med(rr), ctx.med(nr), ratio, ctx.med(rp99), ctx.med(np99),
                        ctx.med(cpu_req["relay"]), ctx.med(cpu_req["nginx"])))
        ctx.log("fig10 c=%d done (ratio %.2f)" % (c, ratio))

    # ---- one request per connection (32 at a time)
    reps = 10 if quick else 40
    one = {"relay": [], "nginx": []}
    cpu = {"relay": [], "nginx": []}
    for i in range(ctx.ROUNDS):
        for k in (["relay", "nginx"] if i % 2 == 0 else ["nginx", "relay"]):
            pids = [relay["pid"]] if k == "relay" else ngpids
            c0 = _cpu_ms(pids)
            secs = sum(_h2load(ctx, env, port[k], 32, 32, "%s.one.%d.%d" % (k, i, j))["secs"] for j in range(reps))
            one[k].append(32 * reps / secs)
            cpu[k].append((_cpu_ms(pids) - c0) * 1000.0 / (32 * reps))
    r1 = ctx.med(one["relay"]) / ctx.med(one["nginx"])
    ctx.rows.append(("10", "one request per connection (client closes after the answer, 32 at a time): "
                     "connections/s; proxy CPU per connection: relay %.0f µs, nginx %.0f µs"
                     % (ctx.med(cpu["relay"]), ctx.med(cpu["nginx"])),
                     "nginx " + ctx.fmt(one["nginx"], "", 0), "relay " + ctx.fmt(one["relay"], "", 0),
                     "ratio %.2f" % r1, "≥ 0.9×", ctx.verdict(r1 >= 0.9)))
    ctx.log("fig10 one-request connections done (ratio %.2f)" % r1)

    threads = int([l.split()[1] for l in open("/proc/%d/status" % relay["pid"]) if l.startswith("Threads:")][0])
    ctx.notes.append("Figure 10 (relay under load, `bench/figs/fig_10_relay_load.py`): h2load --h1 for both "
                     "arms, the relay reached through `tests/relay/pp2pre.so` (the shim's steering alone), "
                     "nginx as in figure 5 (own instance). %d relay threads at the end (workers + main). "
                     "Keep-alive rounds:\n\n%s" % (threads, "\n".join(table)))

    # ---- where the relay's time goes when it is behind
    if behind or r1 < 0.9:
        data = os.path.join(ctx.W, "perf.fig10")
        pr = subprocess.Popen(["perf", "record", "-q", "-g", "-F", "2000", "-p", str(relay["pid"]), "-o", data],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        _h2load(ctx, env, port["relay"], 32, sizes[32], "relay.perf")
        pr.send_signal(signal.SIGINT)
        pr.wait(timeout=60)
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                              "-g", "none"], capture_output=True, text=True).stdout
        lines = [l.rstrip() for l in rep.splitlines() if l.strip() and not l.startswith("#") and "%" in l]
        ctx.misses.append(("10", "relay at 32 keep-alive connections: perf profile (self cost)", "\n".join(lines[:24])))
