"""Figure 15: the relay's per-connection rules check (src/relay/rules.c).

Every relayed connection that needs rules first asks whether the rules file
changed (its path and stat() identity, under a mutex), so that the first
connection after an edit has the new rules. Budget: the check (get + put)
costs at most a quarter of a bare loopback TCP connect + accept + close in
the same run (the cheapest part of any relayed connection, before its
preamble and TLS handshake). Two rows: KIMIFIX_RULES naming a file (one
stat) and the default lookup (access() of ~/.config/kimifix/rules and
/etc/kimifix/rules, then stat). bench/rulescheck does both in a loop.
"""
import os

FIG = "15"
BUDGET = 0.25


def run(ctx):
    prog = os.path.join(ctx.BB, "rulescheck")
    n = 20_000 if ctx.args.quick else 200_000
    na = 2_000 if ctx.args.quick else 20_000
    rules = os.path.join(ctx.W, "fig15.rules")
    with open(rules, "w") as f:
        f.write("rule fig15\n    host api.kimi.com\n    set-header X-Fig 15\n")
    for mode, what, extra in (("check", "KIMIFIX_RULES names a file", [rules]),
                              ("lookup", "the default lookup (~/.config, /etc)", [])):
        A, K = ctx.ab("fig15 " + mode, lambda: ctx.run([prog, "accept", str(na)]),
                      lambda: ctx.run([prog, mode, str(n)] + extra))
        a, k = ctx.col(A, "ns_per_call"), ctx.col(K, "ns_per_call")
        ratios = [x / y for x, y in zip(k, a)]
        ok = ctx.med(ratios) <= BUDGET
        ctx.rows.append(("15", "rules check per connection (%s) vs loopback connect+accept+close: ns"
                         % what, ctx.fmt(a, " ns"), ctx.fmt(k, " ns"),
                         "ratio %s" % ctx.fmt(ratios, "", 3), "≤ %.2f" % BUDGET, ctx.verdict(ok)))
    ctx.notes.append("Figure 15: the relay checks its rules file once per connection that needs rules "
                     "(relay_rules_get: kf_rules_default_path, stat, a mutex; put: an atomic "
                     "decrement), so an edit takes effect on the next connection by construction; the "
                     "baseline is the same process's loopback connect + accept + close, interleaved "
                     "round by round.")
