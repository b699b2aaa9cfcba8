#!/usr/bin/python3
"""run.py BUILD: `kimifix shell` / `off` / `status` and the completions,
under real bash, zsh and fish (docs/shell.md).

Each case runs one shell script in a private world (HOME, XDG_RUNTIME_DIR,
XDG_DATA_HOME: its own relay and CA, stopped at the end): the environment
before `eval "$(kimifix shell)"`, what the shell exports while on (seen
without the shim changing it: KIMIFIX_MODE=off for that one `env`), a
program that has libkimifix.so mapped, `kimifix status`, then `kimifix off`
and the environment after, which must equal the one before exactly
(a user LD_PRELOAD, HTTPS_PROXY and SSL_CERT_FILE included). Prints one
line per test and "N passed, N failed, N skipped"."""
import os
import shutil
import subprocess
import sys
import tempfile

BUILD = os.path.abspath(sys.argv[1])
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
K = os.path.join(BUILD, "kimifix")
LIB = os.path.join(BUILD, "libkimifix.so")
HANG = 120  # seconds: a hang guard, never a speed requirement
SHELLS = {"bash": ["bash", "--norc", "--noprofile", "-c"],
          "zsh": ["zsh", "-f", "-c"],
          "fish": ["fish", "--no-config", "-c"]}
# A user proxy with the characters quoting must survive: ' space \ $ ` "
USER_PROXY = "http://al'ice:p w\\$`x\"@127.0.0.1:9"
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
# The user's CA file, named with what breaks naive quoting in each shell:
# ' (bash, zsh), \' and a final \ (fish), $ and ` (double quotes).
USER_CA_NAME = "my ca's \\'$`x\\"
USER_PRELOAD = "libm.so.6 libdl.so.2"

results = {"passed": 0, "failed": 0, "skipped": 0}


def report(verdict, name, why=""):
    results[{"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}[verdict]] += 1
    print("%s %s%s" % (verdict, name, (": " + why) if why else ""), flush=True)


def verdict(name, problems):
    report("FAIL" if problems else "PASS", name, "; ".join(problems))


class World:
    def __init__(self, extra=None):
        self.dir = tempfile.mkdtemp(prefix="kf-shell.")
        for d in ("run", "data", "home"):
            os.mkdir(os.path.join(self.dir, d), 0o700)
        self.env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                    "HOME": os.path.join(self.dir, "home"), "SHELL": "/bin/sh",
                    "XDG_RUNTIME_DIR": os.path.join(self.dir, "run"),
                    "XDG_DATA_HOME": os.path.join(self.dir, "data")}
        self.env.update(extra or {})

    def path(self, name):
        return os.path.join(self.dir, name)

    def run(self, sh, script):
        p = subprocess.run(SHELLS[sh] + [script], env=self.env, cwd=self.dir,
                           capture_output=True, timeout=HANG)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def close(self):
        subprocess.run([K, "relay", "stop"], env=self.env, capture_output=True, timeout=HANG)
        shutil.rmtree(self.dir, ignore_errors=True)


def read_env(path):
    try:
        data = open(path, "rb").read()
    except OSError:
        return None
    env = {}
    for item in data.split(b"\0"):
        if item:
            k, _, v = item.partition(b"=")
            env[k.decode()] = v.decode(errors="surrogateescape")
    env.pop("_", None)  # the shell's last argument
    return env


def env_diff(a, b):
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append("%s: %r -> %r" % (k, a.get(k), b.get(k)))
    return out


def q(s):
    """Single-quoted for all three shells (no ' or \\ in our paths)."""
    assert "'" not in s and "\\" not in s
    return "'" + s + "'"


# Per-shell pieces of the one script every case runs.
def script(sh, world, on="eval \"$(%(k)s shell)\"", between="", off="kimifix off"):
    d, k = world.dir, K
    v = {"k": q(k), "d": q(d)}
    on, off = on % v, off % v
    if sh == "fish":
        status = "kimifix status > %(d)s/status; echo $status > %(d)s/status.rc" % v
        func = "functions -q kimifix; and echo defined > %(d)s/func; or echo none > %(d)s/func" % v
    else:
        status = "kimifix status > %(d)s/status; echo $? > %(d)s/status.rc" % v
        probe = "declare -F kimifix" if sh == "bash" else "whence -w kimifix | grep -q function"
        func = "if %s >/dev/null; then echo defined; else echo none; fi > %s/func" % (probe, q(d))
    return "\n".join([
        "/usr/bin/env -0 > %(d)s/before" % v,
        on,
        "KIMIFIX_MODE=off /usr/bin/env -0 > %(d)s/during" % v,
        "grep -c libkimifix.so /proc/self/maps > %(d)s/maps" % v,
        status,
        between,
        off,
        "/usr/bin/env -0 > %(d)s/after" % v,
        func,
    ])


def check_round_trip(world, problems, want_func="none"):
    before, after = read_env(world.path("before")), read_env(world.path("after"))
    if before is None or after is None:
        problems.append("the script did not get to the end")
        return
    problems += ["after off: " + d for d in env_diff(before, after)]
    try:
        func = open(world.path("func")).read().strip()
        if func != want_func:
            problems.append("the kimifix function is %s after off, want %s" % (func, want_func))
    except OSError:
        problems.append("no function probe")


def check_on(world, problems, carrier):
    during = read_env(world.path("during")) or {}
    during.pop("KIMIFIX_MODE", None)
    before = read_env(world.path("before")) or {}
    pre = during.get("LD_PRELOAD", "")
    if not pre.startswith(LIB):
        problems.append("LD_PRELOAD while on is %r, want %s first" % (pre, LIB))
    user_pre = before.get("LD_PRELOAD")
    if user_pre and pre.split(":")[1:] != user_pre.split():
        problems.append("the user's preloads are not kept after ours: %r" % pre)
    if during.get("KIMIFIX_SHELL", "").split(" ")[1:] != [carrier]:
        problems.append("KIMIFIX_SHELL=%r, want carrier %s" % (during.get("KIMIFIX_SHELL"), carrier))
    try:
        if int(open(world.path("maps")).read().split()[0]) < 1:
            problems.append("a command of the shell does not have libkimifix.so mapped")
    except (OSError, ValueError, IndexError):
        problems.append("no maps probe")
    status = open(world.path("status")).read() if os.path.exists(world.path("status")) else ""
    rc = open(world.path("status.rc")).read().strip() if os.path.exists(world.path("status.rc")) else "?"
    if rc != "0" or not status.startswith("kimifix: on in this shell") or "carrier:  " + carrier not in status:
        problems.append("kimifix status (exit %s): %r" % (rc, status[:300]))
    if "relay:    running" not in status:
        problems.append("kimifix status names no running relay: %r" % status[:300])
    return during


def t_plain(sh):
    """No proxy: the shim carrier, LD_PRELOAD only."""
    name = "shell/%s/on-off-plain" % sh
    w = World()
    try:
        rc, out, err = w.run(sh, script(sh, w))
        problems = [] if rc == 0 else ["exit %d: %s" % (rc, err[-300:])]
        during = check_on(w, problems, "shim")
        for k in ("HTTPS_PROXY", "SSL_CERT_FILE"):
            if k in during:
                problems.append("%s set with the shim carrier: %r" % (k, during[k]))
        check_round_trip(w, problems)
        verdict(name, problems)
    finally:
        w.close()


def t_user_env(sh):
    """A user LD_PRELOAD, HTTPS_PROXY (hard to quote) and SSL_CERT_FILE: the
    proxy carrier's variables while on, every one of the user's back after."""
    name = "shell/%s/on-off-user-preload-proxy-ca" % sh
    w = World({"LD_PRELOAD": USER_PRELOAD, "HTTPS_PROXY": USER_PROXY, "NO_PROXY": "internal.corp"})
    USER_CA = w.env["SSL_CERT_FILE"] = w.path(USER_CA_NAME)
    shutil.copy(SYSTEM_CA, USER_CA)
    try:
        rc, out, err = w.run(sh, script(sh, w))
        problems = [] if rc == 0 else ["exit %d: %s" % (rc, err[-300:])]
        during = check_on(w, problems, "proxy")
        hp = during.get("HTTPS_PROXY", "")
        if not hp.startswith("http://kimifix:") or "@127.0.0.1:" not in hp:
            problems.append("HTTPS_PROXY while on is %r, want the relay" % hp)
        if during.get("KIMIFIX_ORIG_HTTPS_PROXY") != USER_PROXY:
            problems.append("KIMIFIX_ORIG_HTTPS_PROXY=%r, want the user's exactly"
                            % during.get("KIMIFIX_ORIG_HTTPS_PROXY"))
        if during.get("KIMIFIX_ORIG_SSL_CERT_FILE") != USER_CA or during.get("SSL_CERT_FILE") == USER_CA:
            problems.append("SSL_CERT_FILE=%r ORIG=%r: want a combined file and the user's saved"
                            % (during.get("SSL_CERT_FILE"), during.get("KIMIFIX_ORIG_SSL_CERT_FILE")))
        if during.get("NO_PROXY") != "internal.corp":
            problems.append("NO_PROXY changed: %r" % during.get("NO_PROXY"))
        check_round_trip(w, problems)
        verdict(name, problems)
    finally:
        w.close()


def t_eval_off_and_refresh(sh):
    """`eval "$(kimifix off)"` without the function; `kimifix shell` run
    twice (a refresh) is still undone by one off."""
    name = "shell/%s/refresh-then-eval-off" % sh
    w = World({"HTTPS_PROXY": "http://127.0.0.1:9"})
    if sh == "fish":
        on = "eval \"$(%(k)s shell)\"; eval \"$(%(k)s shell)\""
        off = "functions -e kimifix; %(k)s off | source"
    else:
        on = "eval \"$(%(k)s shell)\"; eval \"$(%(k)s shell)\""
        off = "unset -f kimifix; eval \"$(%(k)s off)\""
    try:
        rc, out, err = w.run(sh, script(sh, w, on=on, off=off))
        problems = [] if rc == 0 else ["exit %d: %s" % (rc, err[-300:])]
        check_on(w, problems, "proxy")
        check_round_trip(w, problems)
        verdict(name, problems)
    finally:
        w.close()


def t_user_changes(sh):
    """Changed while on: the user's HTTPS_PROXY stays theirs, a preload they
    added stays (only libkimifix.so leaves), the rest is put back."""
    name = "shell/%s/off-keeps-what-the-user-changed" % sh
    w = World({"LD_PRELOAD": "libm.so.6", "HTTPS_PROXY": "http://127.0.0.1:9"})
    if sh == "fish":
        between = "set -gx HTTPS_PROXY http://mine:1; set -gx LD_PRELOAD \"$LD_PRELOAD:libdl.so.2\""
    else:
        between = "export HTTPS_PROXY=http://mine:1; export LD_PRELOAD=\"${LD_PRELOAD}:libdl.so.2\""
    try:
        rc, out, err = w.run(sh, script(sh, w, between=between))
        problems = [] if rc == 0 else ["exit %d: %s" % (rc, err[-300:])]
        before, after = read_env(w.path("before")) or {}, read_env(w.path("after")) or {}
        want = dict(before, HTTPS_PROXY="http://mine:1", LD_PRELOAD="libm.so.6:libdl.so.2")
        problems += ["after off: " + d for d in env_diff(want, after)]
        if "HTTPS_PROXY was changed after `kimifix shell`: left as it is" not in err:
            problems.append("off did not say it left HTTPS_PROXY: %r" % err[-300:])
        verdict(name, problems)
    finally:
        w.close()


def t_status_off(sh):
    name = "shell/%s/status-when-off" % sh
    w = World()
    try:
        rc, out, err = w.run(sh, "%s status" % q(K))
        verdict(name, [] if rc == 1 and out.startswith("kimifix: off in this shell") else
                ["exit %d: %r" % (rc, out)])
    finally:
        w.close()


def t_refusals():
    w = World()
    try:
        p = subprocess.run([K, "shell", "tcsh"], env=w.env, capture_output=True, timeout=HANG)
        verdict("shell/unknown-shell-refused", [] if p.returncode == 2 and not p.stdout else
                ["exit %d, stdout %r" % (p.returncode, p.stdout[:200])])
        bad = w.path("bad.rules")
        open(bad, "w").write("rule x\n  bogus\n")
        p = subprocess.run([K, "shell", "-f", bad, "bash"], env=w.env, capture_output=True, timeout=HANG)
        verdict("shell/broken-rules-file-prints-nothing",
                [] if p.returncode == 1 and not p.stdout and b"bad.rules:2: error" in p.stderr else
                ["exit %d, stdout %r, stderr %r" % (p.returncode, p.stdout[:200], p.stderr[-200:])])
        p = subprocess.run([K, "off", "bash"], env=w.env, capture_output=True, timeout=HANG)
        verdict("shell/off-when-not-on", [] if p.returncode == 1 and not p.stdout else
                ["exit %d, stdout %r" % (p.returncode, p.stdout[:200])])
        env = dict(w.env, KIMIFIX_SHELL="bash shim", KIMIFIX_SHELL_UNDO="garbage%%",
                   LD_PRELOAD="%s:libm.so.6" % LIB)
        p = subprocess.run([K, "off", "bash"], env=env, capture_output=True, timeout=HANG)
        out = p.stdout.decode()
        verdict("shell/off-with-a-damaged-record",
                [] if p.returncode == 0 and "export LD_PRELOAD='libm.so.6'" in out and
                "unset KIMIFIX_SHELL\n" in out else ["exit %d: %r" % (p.returncode, out)])
    finally:
        w.close()


# ---- completions ----

def t_bash_completion():
    comp = os.path.join(ROOT, "completions", "kimifix.bash")
    cases = [(["kimifix", "sh"], "shell"), (["kimifix", "check", "--rule", "kimi-sq"], "kimi-squash-slashes"),
             (["kimifix", "relay", "st"], "start"), (["kimifix", "-v", "--mode", "pro"], "proxy"),
             (["kimifix", "shell", "f"], "fish")]
    for with_bc in (False, True):
        lines = []
        if with_bc:
            if not os.path.exists("/usr/share/bash-completion/bash_completion"):
                report("SKIP", "completion/bash/with-bash-completion", "bash-completion not installed")
                continue
            lines.append(". /usr/share/bash-completion/bash_completion")
        lines += [". %s || exit 9" % q(comp), "complete -p kimifix || exit 8",
                  't() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                  'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=(); _kimifix; '
                  'printf "%s\\n" "${COMPREPLY[*]}"; }']
        for words, _ in cases:
            lines.append("t " + " ".join(q(x) for x in words))
        env = {"PATH": BUILD + ":/usr/bin:/bin", "HOME": tempfile.gettempdir(), "KIMIFIX_RULES": "/dev/null"}
        p = subprocess.run(["bash", "--norc", "--noprofile", "-c", "\n".join(lines)], env=env,
                           capture_output=True, timeout=HANG)
        out = p.stdout.decode().splitlines()
        name = "completion/bash/%s" % ("with-bash-completion" if with_bc else "plain")
        problems = [] if p.returncode == 0 else ["exit %d: %s" % (p.returncode, p.stderr.decode()[-300:])]
        if not out or out[0] != "complete -F _kimifix kimifix":
            problems.append("complete -p: %r" % out[:1])
        for (words, want), got in zip(cases, out[1:]):
            if want not in got.split():
                problems.append("%s -> %r, want %s" % (" ".join(words), got[:120], want))
        if len(out) != len(cases) + 1:
            problems.append("%d answers for %d cases" % (len(out) - 1, len(cases)))
        verdict(name, problems)


def t_zsh_completion():
    """A real interactive zsh in a pseudo-terminal (zsh/zpty), compinit, TAB."""
    cases = [("kimifix sh", "shell"), ("kimifix check --rule kimi-sq", "kimi-squash-slashes"),
             ("kimifix relay st", "start"), ("kimifix off ", "fish")]
    env = {"PATH": BUILD + ":/usr/bin:/bin", "HOME": tempfile.mkdtemp(prefix="kf-zsh."),
           "KIMIFIX_RULES": "/dev/null", "TERM": "dumb"}
    try:
        for line, want in cases:
            name = "completion/zsh/%s" % line.strip().replace(" ", "_")
            p = subprocess.run(["zsh", "-f", os.path.join(HERE, "zcomp.zsh"), os.path.join(ROOT, "completions"),
                                line], env=env, capture_output=True, timeout=HANG)
            got = p.stdout.decode(errors="replace").split()
            verdict(name, [] if p.returncode == 0 and want in got else
                    ["exit %d, candidates %r, want %s" % (p.returncode, got[:12], want)])
    finally:
        shutil.rmtree(env["HOME"], ignore_errors=True)


def t_fish_completion():
    comp = os.path.join(ROOT, "completions", "kimifix.fish")
    cases = [("kimifix sh", "shell"), ("kimifix check --rule kimi-sq", "kimi-squash-slashes"),
             ("kimifix relay st", "start"), ("kimifix shell ", "zsh")]
    env = {"PATH": BUILD + ":/usr/bin:/bin", "HOME": tempfile.mkdtemp(prefix="kf-fish."),
           "KIMIFIX_RULES": "/dev/null"}
    try:
        for line, want in cases:
            name = "completion/fish/%s" % line.strip().replace(" ", "_")
            p = subprocess.run(["fish", "--no-config", "-c", "source %s; complete -C %s" % (q(comp), q(line))],
                               env=env, capture_output=True, timeout=HANG)
            got = [x.split("\t")[0] for x in p.stdout.decode().splitlines()]
            verdict(name, [] if p.returncode == 0 and want in got else
                    ["exit %d, candidates %r, want %s" % (p.returncode, got[:12], want)])
    finally:
        shutil.rmtree(env["HOME"], ignore_errors=True)


def main():
    for sh in SHELLS:
        if not shutil.which(SHELLS[sh][0]):
            report("SKIP", "shell/%s" % sh, "%s is not installed (scripts/deps/shell.list)" % sh)
            continue
        t_plain(sh)
        t_user_env(sh)
        t_eval_off_and_refresh(sh)
        t_user_changes(sh)
        t_status_off(sh)
    t_refusals()
    t_bash_completion()
    if shutil.which("zsh"):
        t_zsh_completion()
    if shutil.which("fish"):
        t_fish_completion()
    print("shell: %(passed)d passed, %(failed)d failed, %(skipped)d skipped" % results)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
