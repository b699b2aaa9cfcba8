#!/usr/bin/python3
"""End-to-end harness: real clients against build/fakeup, without and with
kimifix. Usage: tests/e2e/run.py --build BUILD_DIR [--filter PAT] [--without-only] [-v]

The runner re-executes itself inside `unshare -mn` (private mount and network
namespace), brings lo up, binds a hosts file mapping the Kimi names to
127.0.0.1 over /etc/hosts and runs fakeup on ports 443 and 80, so clients use
the real URLs unmodified. One line per test (PASS/FAIL/SKIP name: reason), then
'N passed, N failed, N skipped'. Exit 1 on a failure or on a SKIP that
tests/e2e/allowed-skips does not list. Details: tests/e2e/README.md."""
import argparse
import fnmatch
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import matrix  # noqa: E402
import records  # noqa: E402

HOSTS = ["api.kimi.com", "api.kimi.ai", "api.moonshot.ai", "api.moonshot.cn",
         "auth.kimi.com", "auth.kimi.ai", "api.example.com"]
SSE_DELAY_MS = records.SSE_DELAY_MS


def suite_tests(env):
    out = []
    for path in sorted(glob.glob(os.path.join(HERE, "suites", "*.py"))):
        name = os.path.basename(path)[:-3]
        spec = importlib.util.spec_from_file_location("e2e_suite_" + name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out += mod.tests(env)
    return out


def all_tests(env):
    return matrix.all_tests(env) + suite_tests(env)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--filter", default="*", help="fnmatch pattern on test names (substring if no wildcard)")
    ap.add_argument("--without-only", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--repeat-check", action="store_true",
                    help="also run each case without kimifix a second time (NAME/again) and compare it "
                         "with the first as the with-kimifix case is compared: validates the "
                         "volatile-header lists and the comparator")
    ap.add_argument("--list", action="store_true", help="print the client x scenario matrix and exit")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    if not any(ch in a.filter for ch in "*?["):
        a.filter = "*" + a.filter + "*"
    return a


class Result:
    def __init__(self, verbose):
        self.n = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        self.bad_skips = []
        self.seen = set()
        self.allowed = load_allowed()
        self.verbose = verbose

    def report(self, verdict, name, reason=""):
        self.n[verdict] += 1
        self.seen.add(name)
        if verdict == "SKIP" and not self.skip_allowed(name, reason):
            self.bad_skips.append(name)
            reason += " [not in tests/e2e/allowed-skips]"
        print("%s %s%s" % (verdict, name, ": " + reason if reason else ""), flush=True)

    def skip_allowed(self, name, reason):
        return any(fnmatch.fnmatch(name, pat) and reason.startswith(why) for pat, why in self.allowed)


def load_allowed():
    out = []
    with open(os.path.join(HERE, "allowed-skips")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                pat, _, why = line.partition(" ")
                out.append((pat, why.strip()))
    return out


def outer(a):
    """Re-execute inside a private mount + network namespace (as root, or
    as root of a new user namespace when run unprivileged)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return no_namespace(a, "unshare(1) or ip(8) missing (util-linux, iproute2)")
    ns = ["unshare", "-mn"] if os.geteuid() == 0 else ["unshare", "-rmn"]
    probe = subprocess.run(ns + ["true"], capture_output=True)
    if probe.returncode != 0:
        return no_namespace(a, "cannot create a mount+network namespace (need root or user "
                               "namespaces): " + probe.stderr.decode().strip())
    cmd = ns + ["--", sys.executable, os.path.abspath(__file__), "--inner"] + sys.argv[1:]
    return subprocess.call(cmd)


def print_matrix(a):
    env = matrix.Env(a.build, None, None)
    cl = matrix.clients(env)
    names = list(matrix.scenarios())
    print("| client | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for c in cl:
        if c.scenarios or c.skip:
            print("| %s | " % c.name + " | ".join("x" if n in c.scenarios else "" for n in names) + " |")
    return 0


def no_namespace(a, why):
    print("e2e: SKIPPING EVERY TEST: " + why, file=sys.stderr)
    res = Result(a.verbose)
    for t in all_tests(matrix.Env(a.build, None, None)):
        if fnmatch.fnmatch(t.name, a.filter):
            res.report("SKIP", t.name, "no namespace: " + why)
    return finish(res)


def finish(res):
    print("%d passed, %d failed, %d skipped" % (res.n["PASS"], res.n["FAIL"], res.n["SKIP"]), flush=True)
    if res.bad_skips:
        print("e2e: %d skip(s) outside the allowed set" % len(res.bad_skips), file=sys.stderr)
    return 1 if res.n["FAIL"] or res.bad_skips else 0


def sh(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


class Fakeup:
    def __init__(self, build, certs, work, name, ports):
        self.record = os.path.join(work, name + ".jsonl")
        ready = os.path.join(work, name + ".ready")
        open(self.record, "w").close()
        cmd = [os.path.join(build, "fakeup"), "--certs", certs, "--record", self.record,
               "--bind", "127.0.0.1", "--ready", ready, "--sse-delay-ms", str(SSE_DELAY_MS)]
        if ports:
            cmd += ["--https", str(ports[0]), "--http", str(ports[1])]
        self.log = open(os.path.join(work, name + ".log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        t = time.monotonic()
        while time.monotonic() - t < 60:  # hang guard
            if os.path.exists(ready) and open(ready).read().strip():
                line = open(ready).read().split()
                self.http = int(line[1].split("=")[1])
                self.https = int(line[2].split("=")[1])
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("fakeup did not start (see %s.log)" % name)

    def mark(self):
        return os.path.getsize(self.record)

    def since(self, mark):
        with open(self.record, "rb") as f:
            f.seek(mark)
            return [json.loads(x) for x in f.read().decode().splitlines() if x.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def setup_namespace(env, work):
    sh("mount", "--make-rprivate", "/")
    sh("ip", "link", "set", "lo", "up")
    share = env.node18_share()
    if share:  # Debian's node 18 loads its unbundled JS from /usr/share/nodejs
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s:/usr/share" % share,
                            "/usr/share"], capture_output=True)
        if r.returncode != 0:
            env.node18_problem = "cannot overlay /usr/share/nodejs: " + r.stderr.decode().strip()


def bind_hosts(work):
    path = os.path.join(work, "hosts")
    with open(path, "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
        f.write("127.0.0.1 %s\n" % " ".join(HOSTS))
    sh("mount", "--bind", path, "/etc/hosts")


def inner(a):
    res = Result(a.verbose)
    work = tempfile.mkdtemp(prefix="kimifix-e2e.")
    env = matrix.Env(a.build, work, a)
    every = all_tests(env)
    picked = {t.name for t in every if fnmatch.fnmatch(t.name, a.filter)}
    # a with-kimifix case is compared with its without case: run that too
    picked |= {t.name.rsplit("/", 1)[0] + "/without" for t in every
               if t.name in picked and t.mode != "without" and t.group == "main"}
    tests = [t for t in every if t.name in picked]
    if a.without_only:
        tests = [t for t in tests if t.mode in ("without", "again")]
    fakes = []
    try:
        return run_all(a, res, env, work, tests, fakes)
    except (OSError, subprocess.SubprocessError, RuntimeError) as e:
        # a broken harness is a failure of every test not yet run, never a pass
        for t in tests:
            if t.name not in res.seen:
                res.report("FAIL", t.name, "harness: %s" % e)
        return finish(res)
    finally:
        for f in fakes:
            f.stop()
        if a.verbose:
            print("e2e: work directory kept: " + work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_all(a, res, env, work, tests, fakes):
    setup_namespace(env, work)
    missing = [p for p in (os.path.join(a.build, "fakeup"), env.mkcerts) if not os.path.exists(p)]
    if missing:
        for t in tests:
            res.report("SKIP", t.name, "fake upstream not built: " + ", ".join(missing))
        return finish(res)
    certs = os.path.join(work, "certs")
    subprocess.run(["sh", env.mkcerts, certs], check=True, stdout=subprocess.DEVNULL)
    env.cacert = os.path.join(certs, "ca.pem")
    # 1. connect-to group: no hosts file yet, so the names resolve only
    #    through the shim's connect-to rule (fakeup on kernel ports).
    ct = [t for t in tests if t.group == "connect-to"]
    if ct:
        fk = Fakeup(a.build, certs, work, "connect-to", None)
        fakes.append(fk)
        env.fakeup = fk
        for t in ct:
            matrix.run_test(t, env, fk, res)
    # 2. everything else: names -> 127.0.0.1 through /etc/hosts, real ports
    bind_hosts(work)
    fk = Fakeup(a.build, certs, work, "main", (443, 80))
    fakes.append(fk)
    env.fakeup = fk
    for t in tests:
        if t.group == "suite":
            run_suite_test(t, env, fk, res)
        elif t.group != "connect-to":
            matrix.run_test(t, env, fk, res)
    return finish(res)


def run_suite_test(t, env, fk, res):
    before = res.n["PASS"] + res.n["FAIL"] + res.n["SKIP"]
    try:
        t.run(env, fk, res)
    except Exception as e:  # noqa: BLE001 - a broken test fails alone
        res.report("FAIL", t.name, "harness: %r" % e)
        return
    if res.n["PASS"] + res.n["FAIL"] + res.n["SKIP"] == before:
        res.report("FAIL", t.name, "the test reported nothing")


if __name__ == "__main__":
    args = parse_args()
    sys.exit(print_matrix(args) if args.list else inner(args) if args.inner else outer(args))
