"""Figure 12: the receive hooks (src/hooks/libc_recv.c, issue 13).

Budgets: on every fd that is not a DNS socket the receive hooks cost no more
than the write hooks' fast path (<= 3 ns per call, figure 1's measure:
callgrind instructions added per call / this run's instructions per ns; the
write row of the same run is shown, and, for reference, a sendto() with an
address, which checks for port 53 to mark resolvers' unconnected sockets);
a DNS answer that names no rule host costs <= 200 ns more per datagram
(the hook reads the question and asks the rules). Both are measured with
bench/recvpath (one datagram per round, only the read is counted), next to
a 1-byte write() in the same run. The wall-clock of a round (send + read) is
shown as figure 1 does: a system call's noise is larger than the budget.

Port 53 is bound on 127.83.83.83 (root) or inside `unshare -rn` (otherwise).
"""
import os
import subprocess

FIG = "12"
ADDR = "127.83.83.83"

CASES = (  # mode, what, budget ns (None: reference)
    ("write", "1-byte write() to /dev/null (figure 1's fast path, this run)", 3.0),
    ("recv", "recv() of a datagram, not a DNS socket", 3.0),
    ("recvfrom", "recvfrom(src NULL), not a DNS socket", 3.0),
    ("recvfrom-addr", "recvfrom(src wanted), not a DNS socket", 3.0),
    ("recvmsg", "recvmsg(no name), not a DNS socket", 3.0),
    ("recvmsg-addr", "recvmsg(msg_name set), not a DNS socket", 3.0),
    ("sendto-addr", "sendto() with an address, not port 53 (the write family's hook, plus the port-53 "
                    "check: 25 -> 31 instructions when it was added)", None),
    ("dns-other", "recv() of a DNS answer about www.example.org on a port-53 socket", 200.0),
    ("dns-rule", "recv() of a DNS answer about api.kimi.com (learned: address table)", None),
)


def prefix():
    """How to run something that binds port 53."""
    if os.geteuid() == 0:
        return []
    return ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"']


def callgrind(ctx, cmd, shim):
    """ctx.callgrind with valgrind inside the namespace prefix."""
    out = os.path.join(ctx.W, "cg12.%d" % len(os.listdir(ctx.W)))
    vg = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, "--toggle-collect=bench_recv*"]
    r = subprocess.run(prefix() + vg + cmd, env=ctx.env_for(shim), capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        raise RuntimeError("callgrind %s: %s" % (cmd, r.stderr[-500:]))
    for line in open(out):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError("callgrind %s: no total" % cmd)


def run(ctx):
    prog = os.path.join(ctx.BB, "recvpath")
    n = 200_000 if ctx.args.quick else 1_000_000
    cn = 20_000
    for mode, what, budget in CASES:
        cmd = [prog, mode, str(n), ADDR]
        A, K = ctx.ab("fig12 " + mode, lambda: ctx.run(prefix() + cmd),
                      lambda: ctx.run(prefix() + cmd, shim=True))
        a, k = ctx.col(A, "ns_per_call"), ctx.col(K, "ns_per_call")
        c = [prog, mode, str(cn), ADDR]
        ia, ik = callgrind(ctx, c, False), callgrind(ctx, c, True)
        per = (ik - ia) / float(cn + cn // 10 + 1)  # + the warm-up rounds
        est = per / ctx.IPNS
        ok = None if budget is None else est <= budget
        ctx.rows.append(("12", what + ": ns per round (send + read)", ctx.fmt(a, " ns"), ctx.fmt(k, " ns"),
                         "wall %+.1f ns; callgrind %+.1f instr/read ≈ %+.1f ns"
                         % (ctx.med(k) - ctx.med(a), per, est),
                         "≤ +%g ns" % budget if budget is not None else "(reference)",
                         ctx.verdict(ok) if ok is not None else "—"))
        if ok is False and not prefix():
            _, prof = ctx.callgrind(c, shim=True, toggle="bench_recv*", top=8)
            ctx.misses.append(("12", "%s: callgrind of the read under the shim (self cost)" % mode, prof))
    ctx.notes.append("Figure 12: each round sends one datagram from a server socket and reads it with "
                     "the call named; only the read is counted (callgrind --toggle-collect=bench_recv), "
                     "so the instructions are the hook's own on top of libc's. The verdict uses the "
                     "callgrind estimate at this run's %.1f instructions/ns, as figure 1 does."
                     % ctx.IPNS)
