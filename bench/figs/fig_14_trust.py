"""Figure 14: what trust both ways costs the relay (issue "Trust both ways").

The relay verifies each upstream against its client's own trust sources
(src/relay/truststore.c), so a connection now looks its store up: the
context (ctxtab_get/put) and the cached SSL_CTX for its set of sources.
Measured in-process on the relay's own objects by build/bench/trustbench
(bench/trustbench.c), ROUNDS runs, median:
  - steady state: a cache hit per connection, against today's zero (one
    shared SSL_CTX) -- budget 5 us p50;
  - the re-validation a set gets at most once a second (a stat per source
    and of the system bundle) -- reported, no budget;
  - RSS of the default store plus 10 distinct trust sets, against today's
    single upstream SSL_CTX on the hashed directory -- budget +4 MiB; and,
    for comparison, 10 stores that each parse the system bundle.
Phase B (the event loop) re-measures this inside the running relay."""
import os
import subprocess

FIG = "14"


def run(ctx):
    prog = os.path.join(ctx.BB, "trustbench")
    if not os.path.exists(prog):
        subprocess.run(["make", "-s", "-C", ctx.ROOT, "B=" + ctx.B, prog], check=True)
    got = []
    for _ in range(ctx.ROUNDS):
        out = subprocess.run([prog], capture_output=True, text=True, check=True).stdout
        got.append({k: float(v) for k, v in (line.split() for line in out.splitlines())})
    col = lambda k: [g[k] for g in got]  # noqa: E731
    hit = col("hit_ns_p50")
    rows = ctx.rows
    rows.append((FIG, "upstream trust lookup per connection, steady state (context + cached "
                      "SSL_CTX, p50 of 200k): ns", "0 (one shared SSL_CTX)", ctx.fmt(hit, " ns", 0),
                 "+%.2f µs" % (ctx.med(hit) / 1000.0), "≤ +5 µs", ctx.verdict(ctx.med(hit) <= 5000)))
    re = col("recheck_ns_p50")
    rows.append((FIG, "the same when a set is re-validated (stat of 2 sources + the system bundle; "
                      "at most once a second per set): ns", "—", ctx.fmt(re, " ns", 0), "", "—", "—"))
    delta = [(g["rss_kib_10sets"] - g["rss_kib_today"]) / 1024.0 for g in got]
    naive = [g["rss_kib_10naive_delta"] / 1024.0 for g in got]
    rows.append((FIG, "RSS: default store + 10 distinct trust sets vs today's one upstream "
                      "SSL_CTX (bundle parsed once, shared): MiB",
                 "today %.1f MiB" % (ctx.med(col("rss_kib_today")) / 1024.0), ctx.fmt(delta, " MiB", 2),
                 "10 stores parsing the bundle each: +%.1f MiB" % ctx.med(naive), "≤ +4 MiB",
                 ctx.verdict(ctx.med(delta) <= 4.0)))
