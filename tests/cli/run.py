#!/usr/bin/python3
"""run.py BUILD: `kimifix log` (the relay's log files, rotation, escaping,
-f) and the one policy for a broken rules file as `kimifix explain`,
`check --names`/`--rule` and `status` report it (docs/rules.md, "When the
rules file is broken"). No relay runs: the log files are written here, as
the relay writes them (RUNDIR/relay.log, rotated once to relay.log.1).
Prints one line per test and "N passed, N failed, N skipped"."""
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(sys.argv[1])
K = os.path.join(BUILD, "kimifix")
HANG = 60  # seconds: a hang guard, never a speed requirement

results = {"passed": 0, "failed": 0, "skipped": 0}


def verdict(name, problems):
    results["failed" if problems else "passed"] += 1
    print("%s %s%s" % ("FAIL" if problems else "PASS", name,
                       (": " + "; ".join(problems)) if problems else ""), flush=True)


class World:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kf-cli.")
        self.run = os.path.join(self.dir, "run")
        os.mkdir(self.run, 0o700)
        os.mkdir(os.path.join(self.dir, "home"), 0o700)
        self.env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": os.path.join(self.dir, "home"),
                    "XDG_RUNTIME_DIR": self.run, "XDG_DATA_HOME": os.path.join(self.dir, "data")}
        self.log = os.path.join(self.run, "kimifix", "relay.log")

    def mkrun(self):
        os.makedirs(os.path.dirname(self.log), 0o700, exist_ok=True)

    def write(self, name, data, mode="wb"):
        self.mkrun()
        with open(os.path.join(self.run, "kimifix", name), mode) as f:
            f.write(data)

    def k(self, *args, env=None):
        p = subprocess.run([K] + list(args), env=dict(self.env, **(env or {})), capture_output=True,
                           timeout=HANG)
        return p.returncode, p.stdout.decode("utf-8", "surrogateescape"), p.stderr.decode(errors="replace")

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def lines(prefix, a, b):
    return b"".join(b"%s %d\n" % (prefix, i) for i in range(a, b))


# ---- kimifix log ----

def t_log_none():
    w = World()
    try:
        rc, out, err = w.k("log")
        verdict("log/no-log-yet", [] if rc == 0 and out.startswith("kimifix log: no relay log yet") else
                ["exit %d: %r %r" % (rc, out, err)])
    finally:
        w.close()


def t_log_tail():
    """The last N lines come from relay.log.1 then relay.log."""
    w = World()
    try:
        w.write("relay.log.1", lines(b"old", 0, 30))
        w.write("relay.log", lines(b"new", 0, 5))
        rc, out, _ = w.k("log", "-n", "8")
        want = "".join("old %d\n" % i for i in range(27, 30)) + "".join("new %d\n" % i for i in range(5))
        verdict("log/last-lines-across-the-rotated-file", [] if rc == 0 and out == want else
                ["exit %d, got %r" % (rc, out)])
        rc, out, _ = w.k("log")
        want = "".join("old %d\n" % i for i in range(25, 30)) + "".join("new %d\n" % i for i in range(5))
        verdict("log/ten-by-default", [] if out == want else ["got %r" % out])
        rc, out, _ = w.k("log", "-n", "1000")
        verdict("log/more-than-there-is", [] if out.count("\n") == 35 and out.startswith("old 0\n") else
                ["%d lines, starts %r" % (out.count("\n"), out[:20])])
        rc, out, _ = w.k("log", "-n0")
        verdict("log/none", [] if rc == 0 and out == "" else ["exit %d, got %r" % (rc, out)])
        # only the rotated file; a last line without its newline
        os.unlink(w.log)
        w.write("relay.log.1", b"a\nb\nc")
        rc, out, _ = w.k("log", "-n", "2")
        verdict("log/only-the-rotated-file-partial-last-line", [] if out == "b\nc\n" else ["got %r" % out])
        rc, out, err = w.k("log", "-n", "x")
        verdict("log/bad-count", [] if rc == 2 and not out else ["exit %d %r" % (rc, out)])
    finally:
        w.close()


def t_log_big():
    """Lines found backwards across read blocks (64 KiB) of a large file."""
    w = World()
    try:
        w.write("relay.log", lines(b"x" * 100, 0, 5000))
        rc, out, _ = w.k("log", "-n", "1500")
        got = out.splitlines()
        verdict("log/large-file", [] if len(got) == 1500 and got[0] == "x" * 100 + " 3500" and
                got[-1] == "x" * 100 + " 4999" else ["%d lines, first %r" % (len(got), got[:1])])
    finally:
        w.close()


def t_log_escape():
    w = World()
    try:
        w.write("relay.log", b"esc \x1b[31mred\x1b[0m bell\x07 cr\r del\x7f tab\tok\n"
                             b"utf8 \xc3\xa9 \xe6\xbc\xa2 c1 \xc2\x9b2J \xc2\x85 bad \xff\xc3 end\n")
        rc, out, _ = w.k("log")
        want = ("esc \\x1B[31mred\\x1B[0m bell\\x07 cr\\x0D del\\x7F tab\tok\n"
                "utf8 \u00e9 \u6f22 c1 \\xC2\\x9B2J \\xC2\\x85 bad \\xFF\\xC3 end\n")
        verdict("log/control-bytes-escaped", [] if out == want else ["got %r" % out])
    finally:
        w.close()


def read_until(p, want, deadline):
    buf = b""
    while want not in buf and time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if r:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
    return buf


def t_log_follow():
    """-f: new lines as they come, then across a rotation: the rest of the
    old file first, then the new one from its start."""
    w = World()
    p = None
    try:
        w.write("relay.log", lines(b"before", 0, 3))
        p = subprocess.Popen([K, "log", "-f", "-n", "1"], env=w.env, stdout=subprocess.PIPE)
        deadline = time.monotonic() + HANG
        got = read_until(p, b"before 2\n", deadline)
        with open(w.log, "ab") as f:  # the relay's descriptor: O_APPEND
            f.write(lines(b"more", 0, 2))
            f.flush()
            got += read_until(p, b"more 1\n", deadline)
            # rotation as the relay does it: rename, then a new file; a line
            # still written to the old one lands in relay.log.1
            os.rename(w.log, w.log + ".1")
            f.write(b"late in the old file\n")
        w.write("relay.log", lines(b"rotated", 0, 2))
        got += read_until(p, b"rotated 1\n", deadline)
        with open(w.log, "ab") as f:
            f.write(b"last\n")
        got += read_until(p, b"last\n", deadline)
        want = (b"before 2\nmore 0\nmore 1\nlate in the old file\nrotated 0\nrotated 1\nlast\n")
        verdict("log/follow-across-a-rotation", [] if got == want else ["got %r" % got])
    finally:
        if p:
            p.kill()
            p.wait()
        w.close()


def t_log_follow_from_nothing():
    """-f before the relay ever logged: the file is picked up when it appears."""
    w = World()
    p = None
    try:
        p = subprocess.Popen([K, "log", "-f"], env=w.env, stdout=subprocess.PIPE)
        w.write("relay.log", b"first line\n")
        got = read_until(p, b"first line\n", time.monotonic() + HANG)
        verdict("log/follow-a-log-that-appears", [] if got == b"first line\n" else ["got %r" % got])
    finally:
        if p:
            p.kill()
            p.wait()
        w.close()


# ---- a broken rules file: built-ins in effect, the error said ----

BAD = "disable kimi-coding-double-v1\nrule x\n  bogus\n"


def t_policy():
    w = World()
    try:
        bad = os.path.join(w.dir, "bad.rules")
        open(bad, "w").write(BAD)
        line = "%s:3: error: unknown directive 'bogus'" % bad
        rc, out, err = w.k("explain", "-f", bad, "POST", "https://api.kimi.com/coding/v1/v1/messages")
        first = out.splitlines()[0] if out else ""
        problems = [] if rc == 1 else ["exit %d, want 1" % rc]
        if not first.startswith("rules: built-in defaults only -- " + line) or \
                "the file is ignored, the built-in rules are in effect" not in first:
            problems.append("rules line %r" % first)
        if "fired: kimi-coding-double-v1 (builtin:" not in out:
            problems.append("the built-in rule the broken file disables did not fire: %r" % out[-300:])
        if line not in err:
            problems.append("no error on stderr: %r" % err)
        verdict("policy/explain-runs-the-built-ins-and-says-why", problems)

        rc, out, err = w.k("check", "--names", bad)
        names = out.split()
        verdict("policy/check-names-lists-the-built-ins", [] if rc == 1 and "kimi-coding-double-v1" in names and
                "x" not in names and line in err else ["exit %d, %r, %r" % (rc, names, err)])
        rc, out, err = w.k("check", bad)
        verdict("policy/check-fails-listing-the-errors", [] if rc == 1 and line in err and
                "kimifix ignores this file and runs with the built-in rules" in err and not out else
                ["exit %d, %r, %r" % (rc, out[:200], err)])
        rc, out, err = w.k("status", env={"KIMIFIX_SHELL": "bash shim", "KIMIFIX_SHELL_UNDO": "",
                                          "LD_PRELOAD": os.path.join(BUILD, "libkimifix.so"),
                                          "KIMIFIX_RULES": bad})
        verdict("policy/status-says-the-file-is-ignored",
                [] if rc == 0 and ("  rules:    " + line) in out and "built-in rules are in effect" in out else
                ["exit %d: %r" % (rc, out)])
    finally:
        w.close()


def t_check_rule():
    w = World()
    try:
        good = os.path.join(w.dir, "good.rules")
        open(good, "w").write("disable kimi-squash-slashes\nrule mine\n  host api.kimi.com\n  add-header X-A 1\n")
        rc, out, _ = w.k("check", "--rule", "kimi-squash-slashes", good)
        verdict("check/rule-disabled-shows-why", [] if rc == 0 and out.startswith(
            "# disabled by %s:1\n# rule kimi-squash-slashes    # builtin:" % good) else ["exit %d: %r" % (rc, out)])
        rc, out, _ = w.k("check", "--rule", "mine", good)
        verdict("check/rule-from-the-file", [] if rc == 0 and out == "rule mine    # %s:2\n    host api.kimi.com\n"
                "    add-header X-A 1\n" % good else ["exit %d: %r" % (rc, out)])
        rc, out, err = w.k("check", "--rule", "nope", good)
        verdict("check/rule-unknown", [] if rc == 1 and not out and "no rule named 'nope'" in err else
                ["exit %d: %r %r" % (rc, out, err)])
        rc, out, _ = w.k("check", "--names", good)
        names = out.split()
        verdict("check/names", [] if rc == 0 and names[-1] == "mine" and "kimi-squash-slashes" in names and
                len(names) == len(set(names)) else ["exit %d: %r" % (rc, names)])
    finally:
        w.close()


def main():
    t_log_none()
    t_log_tail()
    t_log_big()
    t_log_escape()
    t_log_follow()
    t_log_follow_from_nothing()
    t_policy()
    t_check_rule()
    print("cli: %(passed)d passed, %(failed)d failed, %(skipped)d skipped" % results)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
