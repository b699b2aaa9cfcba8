#!/usr/bin/python3
"""shim_test.py BUILD: the shim's side of the proxy carrier (src/hooks/carrier.c,
docs/relay.md "Proxy carrier") under real programs with LD_PRELOAD alone.

Each test has a private world (XDG_RUNTIME_DIR, XDG_DATA_HOME, HOME); most
have a fake relay (a relay.state naming this process, its run lock held
by this process and a loopback listener of ours: what kf_relay_live()
asks of a live relay) and a fake CA file, so no real relay runs. The first-run
tests start the real relay (build/kimifix-relay, through the shim's own
`kimifix relay start`) in their world and stop it by the pid in its state
file. Prints one line per test and "N passed, N failed, N skipped"."""
import fcntl
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.path.abspath(sys.argv[1])
LIB = os.path.join(BUILD, "libkimifix.so")
ENVPRINT = os.path.join(BUILD, "tests", "proxy", "envprint")
ENVPRINT_SSL = ENVPRINT + "-ssl"
PY = "/usr/bin/python3"
TOKEN = bytes(range(0xa0, 0xb0))
TOKHEX = TOKEN.hex()
HANG = 60  # seconds: a hang guard, never a speed requirement
USER = "http://alice:pw0rd@proxy.corp:3128"
HEAD = (b"GET http://api.kimi.com/coding/v1/v1/messages HTTP/1.1\r\n"
        b"Host: api.kimi.com\r\n\r\n")
FIXED = HEAD.replace(b"/v1/v1/", b"/v1/")

results = {"passed": 0, "failed": 0, "skipped": 0}


def report(ok, name, why=""):
    results["passed" if ok else "failed"] += 1
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, "" if ok else ": " + why), flush=True)


class World:
    def __init__(self, relay_port=None, ca=True):
        self.dir = tempfile.mkdtemp(prefix="kf-proxy-shim.")
        self.run = os.path.join(self.dir, "run")
        self.data = os.path.join(self.dir, "data")
        for d in (self.run, self.data, os.path.join(self.dir, "home")):
            os.mkdir(d, 0o700)
        if ca:
            os.mkdir(os.path.join(self.data, "kimifix"), 0o700)
            for f in ("ca.pem", "ca-bundle.pem"):
                with open(os.path.join(self.data, "kimifix", f), "w") as fh:
                    fh.write("-----BEGIN CERTIFICATE-----\nKIMIFIX-TEST\n-----END CERTIFICATE-----\n")
        if relay_port:
            os.mkdir(os.path.join(self.run, "kimifix"), 0o700)
            path = os.path.join(self.run, "kimifix", "relay.state")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, ("kimifix-relay 1\nport %d\nv6 0\npid %d\nstarted 1\ntoken %s\n"
                          % (relay_port, os.getpid(), TOKHEX)).encode())
            os.close(fd)
            # A live relay holds its run lock and listens on its port.
            self.lock = os.open(os.path.join(self.run, "kimifix", "relay.run.lock"),
                                os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self.lock, fcntl.LOCK_EX)
            self.listener = socket.socket()
            try:
                self.listener.bind(("127.0.0.1", relay_port))
                self.listener.listen(8)
            except OSError:  # a Recorder of this test listens there already
                self.listener.close()
        self.rules = os.path.join(self.dir, "empty.rules")
        open(self.rules, "w").close()

    def env(self, **extra):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("KIMIFIX_", "LD_PRELOAD")) and "proxy" not in k.lower()
             and k not in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")}
        e.update(XDG_RUNTIME_DIR=self.run, XDG_DATA_HOME=self.data, HOME=os.path.join(self.dir, "home"),
                 KIMIFIX_RULES=self.rules, LD_PRELOAD=LIB, PYTHONDONTWRITEBYTECODE="1")
        e.update(extra)
        return e

    def stop_relay(self):
        try:
            with open(os.path.join(self.run, "kimifix", "relay.state")) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "pid" and int(v) != os.getpid():
                        os.kill(int(v), signal.SIGTERM)
        except (OSError, ValueError):
            pass

    def close(self):
        self.stop_relay()
        if getattr(self, "lock", None) is not None:
            os.close(self.lock)
            self.listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def ours(port):
    return "http://kimifix:%s@127.0.0.1:%d" % (TOKHEX, port)


class Leased:
    """Compares equal to the relay's URL with a client id (`kimifix-ID`)
    whose lease file (RUNDIR/kimifix/clients/ID, 0600) holds the given
    lines: the process took a lease (kf_lease.h)."""
    def __init__(self, world, port, *lines):
        self.world, self.port, self.lines = world, port, lines

    def __eq__(self, got):
        m = re.fullmatch(r"http://kimifix-([0-9a-f]{32}):%s@127\.0\.0\.1:%d" % (TOKHEX, self.port), got or "")
        if not m:
            return False
        path = os.path.join(self.world.run, "kimifix", "clients", m.group(1))
        try:
            text = open(path).read()
            return not os.stat(path).st_mode & 0o077 and all(x + "\n" in text for x in self.lines)
        except OSError:
            return False

    def __repr__(self):
        return "http://kimifix-ID:TOKEN@127.0.0.1:%d with a lease holding %s" % (self.port, self.lines)


def envprint(world, prog, names, **extra):
    p = subprocess.run([prog] + names, env=world.env(**extra), capture_output=True, timeout=HANG)
    out = {}
    for line in p.stdout.decode().splitlines():
        k, eq, v = line.partition("=")
        out[k if eq else line.split()[0]] = v if eq else None
    return out, p.stderr.decode()


def expect(name, got, want):
    bad = ["%s=%r (want %r)" % (k, got.get(k), v) for k, v in want.items() if got.get(k) != v]
    report(not bad, name, "; ".join(bad))


# ---------------------------------------------------------------- the choice

def t_user_proxy_gets_the_relay():
    w = World(relay_port=40001)
    try:
        names = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                 "KIMIFIX_ORIG_HTTPS_PROXY", "KIMIFIX_ORIG_https_proxy"]
        got, err = envprint(w, ENVPRINT, names, HTTPS_PROXY=USER, NO_PROXY="internal.corp",
                            KIMIFIX_LOG="stderr")
        leased = Leased(w, 40001, "proxy " + USER, "noproxy internal.corp")
        expect("LD_PRELOAD alone, a user proxy: the relay is the proxy", got, {
            "HTTPS_PROXY": leased, "https_proxy": got.get("HTTPS_PROXY"), "HTTP_PROXY": leased,
            "http_proxy": got.get("HTTPS_PROXY"), "NO_PROXY": "internal.corp",
            "KIMIFIX_ORIG_HTTPS_PROXY": USER, "KIMIFIX_ORIG_https_proxy": ""})
        report("carrier: proxy -- HTTPS_PROXY names your proxy http://proxy.corp:3128" in err
               and err.count("carrier:") == 1, "one log line names the carrier", err)
        report("pw0rd" not in err and TOKHEX not in err, "the log shows no credentials", err)
    finally:
        w.close()


def t_no_proxy_changes_nothing():
    w = World(relay_port=40002)
    try:
        got, _ = envprint(w, ENVPRINT, ["HTTPS_PROXY", "KIMIFIX_ORIG_HTTPS_PROXY"])
        expect("no proxy in the environment: no proxy variable set", got,
               {"HTTPS_PROXY": None, "KIMIFIX_ORIG_HTTPS_PROXY": None})
    finally:
        w.close()


def t_inherited_given_back_where_tls_is_seen():
    w = World(relay_port=40003)
    try:
        env = dict(HTTPS_PROXY=ours(40003), KIMIFIX_ORIG_HTTPS_PROXY=USER, https_proxy=ours(40003),
                   KIMIFIX_ORIG_https_proxy="")
        names = ["HTTPS_PROXY", "https_proxy", "KIMIFIX_ORIG_HTTPS_PROXY"]
        got, _ = envprint(w, ENVPRINT_SSL, names, **env)
        expect("shared libssl at start-up: the user's proxy given back", got,
               {"HTTPS_PROXY": USER, "https_proxy": None, "KIMIFIX_ORIG_HTTPS_PROXY": USER})
        got, _ = envprint(w, ENVPRINT, names, **env)
        expect("no TLS seen in-process: the relay stays the proxy", got,
               {"HTTPS_PROXY": ours(40003), "https_proxy": ours(40003)})
        got, _ = envprint(w, ENVPRINT_SSL, names, KIMIFIX_MODE="proxy")
        expect("KIMIFIX_MODE=proxy: the relay even where TLS is seen", got,
               {"HTTPS_PROXY": Leased(w, 40003), "KIMIFIX_ORIG_HTTPS_PROXY": ""})
    finally:
        w.close()


def t_relay_moved():
    w = World(relay_port=40005)
    try:
        got, _ = envprint(w, ENVPRINT, ["HTTPS_PROXY", "KIMIFIX_ORIG_HTTPS_PROXY"],
                          HTTPS_PROXY=ours(40004), KIMIFIX_ORIG_HTTPS_PROXY=USER)
        expect("an inherited relay URL follows the running relay", got,
               {"HTTPS_PROXY": ours(40005), "KIMIFIX_ORIG_HTTPS_PROXY": USER})
        cid = "0123456789abcdef0123456789abcdef"
        mine = "http://kimifix-%s:%s@127.0.0.1:%%d" % (cid, TOKHEX)
        got, _ = envprint(w, ENVPRINT, ["HTTPS_PROXY"], HTTPS_PROXY=mine % 40005,
                          KIMIFIX_ORIG_HTTPS_PROXY=USER)
        expect("an inherited client id is kept (the parent holds the lease)", got,
               {"HTTPS_PROXY": mine % 40005})
        got, _ = envprint(w, ENVPRINT, ["HTTPS_PROXY"], HTTPS_PROXY=mine % 40004,
                          KIMIFIX_ORIG_HTTPS_PROXY=USER)
        expect("an inherited client id follows the running relay", got, {"HTTPS_PROXY": mine % 40005})
        leases = os.path.join(w.run, "kimifix", "clients")
        report(not os.path.isdir(leases) or not os.listdir(leases),
               "a process with an inherited id takes no lease of its own",
               str(os.listdir(leases)) if os.path.isdir(leases) else "")
    finally:
        w.close()


def t_dead_relay_given_back():
    """A relay a parent named is gone and cannot be started: the process
    gets the user's own proxy back, never a dead one."""
    w = World(relay_port=None)
    try:
        got, _ = envprint(w, ENVPRINT, ["HTTPS_PROXY", "https_proxy"], HTTPS_PROXY=ours(40009),
                          KIMIFIX_ORIG_HTTPS_PROXY=USER, https_proxy=ours(40009), KIMIFIX_ORIG_https_proxy="",
                          KIMIFIX_RELAY="/nonexistent/kimifix-relay")
        expect("a parent's relay gone for good: the user's proxy given back", got,
               {"HTTPS_PROXY": USER, "https_proxy": None})
    finally:
        w.close()


# ---------------------------------------------------------------- the relay's port

class Recorder:
    """A loopback listener recording the bytes of each connection (TLS
    terminated when ctx is given)."""

    def __init__(self, ctx=None):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(8)
        self.port = self.s.getsockname()[1]
        self.ctx, self.got, self.done = ctx, [], threading.Event()
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            c.settimeout(HANG)
            data = b""
            try:
                if self.ctx:
                    c = self.ctx.wrap_socket(c, server_side=True)
                while not data.endswith(b"\r\n\r\n"):
                    b = c.recv(4096)
                    if not b:
                        break
                    data += b
            except (OSError, ssl.SSLError):
                pass
            self.got.append(data)
            c.close()
            self.done.set()

    def wait(self):
        self.done.wait(HANG)
        self.done.clear()
        return self.got[-1] if self.got else None

    def close(self):
        self.s.close()


CLIENT = r"""
import os, socket, ssl, sys
port, tls = int(sys.argv[1]), sys.argv[2] == "tls"
s = socket.create_connection(("127.0.0.1", port), timeout=60)
if tls:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s, server_hostname="api.kimi.com")
s.sendall(sys.stdin.buffer.read())
s.close()
"""


def send_as_client(w, port, tls, relay_port):
    subprocess.run([PY, "-c", CLIENT, str(port), "tls" if tls else "plain"], input=HEAD,
                   env=w.env(HTTPS_PROXY=ours(relay_port), KIMIFIX_ORIG_HTTPS_PROXY=""),
                   capture_output=True, timeout=HANG)


def t_relay_port_left_alone(tls):
    ctx = None
    kind = "TLS" if tls else "plain"
    if tls:
        d = tempfile.mkdtemp(prefix="kf-proxy-cert.")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-subj", "/CN=api.kimi.com", "-days", "2", "-keyout", d + "/k.pem",
                            "-out", d + "/c.pem"], capture_output=True)
        if r.returncode:
            report(False, "TLS to the relay's port: make a test certificate", r.stderr.decode())
            return
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(d + "/c.pem", d + "/k.pem")
        shutil.rmtree(d)
    relay, other = Recorder(ctx), Recorder(ctx)
    w = World(relay_port=relay.port)
    try:
        send_as_client(w, other.port, tls, relay.port)
        got = other.wait()
        report(got == FIXED, "%s to another loopback port: rewritten in-process (control)" % kind,
               "got %r" % got)
        send_as_client(w, relay.port, tls, relay.port)
        got = relay.wait()
        report(got == HEAD, "%s to the relay's proxy port: bytes left for the relay" % kind,
               "got %r" % got)
    finally:
        relay.close()
        other.close()
        w.close()


# ---------------------------------------------------------------- first run

def t_first_run(with_proxy):
    w = World(relay_port=None, ca=False)
    try:
        extra = {"HTTPS_PROXY": USER} if with_proxy else {}
        code = "import os; print(os.environ.get('SSL_CERT_FILE')); print(os.environ.get('HTTPS_PROXY'))"
        p = subprocess.run([PY, "-c", code], env=w.env(**extra), capture_output=True, timeout=HANG)
        lines = p.stdout.decode().splitlines() + ["", ""]
        bundle = os.path.join(w.data, "kimifix", "ca-bundle.pem")
        what = "a user proxy" if with_proxy else "no proxy"
        report(lines[0] == bundle and os.path.exists(bundle),
               "first run on a fresh account (%s): the relay made the CA before main" % what,
               "SSL_CERT_FILE=%r, stderr %r" % (lines[0], p.stderr.decode()[-400:]))
        port = None
        try:
            with open(os.path.join(w.run, "kimifix", "relay.state")) as f:
                port = int([x for x in f if x.startswith("port ")][0].split()[1])
        except (OSError, IndexError, ValueError):
            pass
        if with_proxy:
            report(port is not None and lines[1].endswith("@127.0.0.1:%d" % port)
                   and lines[1].startswith("http://kimifix-"),
                   "first run with a user proxy: HTTPS_PROXY names the relay just started",
                   "HTTPS_PROXY=%r, relay port %r" % (lines[1], port))
    finally:
        w.close()


def main():
    for p in (LIB, ENVPRINT, ENVPRINT_SSL):
        if not os.path.exists(p):
            print("shim_test: missing %s" % p)
            return 1
    t_user_proxy_gets_the_relay()
    t_no_proxy_changes_nothing()
    t_inherited_given_back_where_tls_is_seen()
    t_relay_moved()
    t_dead_relay_given_back()
    t_relay_port_left_alone(False)
    t_relay_port_left_alone(True)
    t_first_run(False)
    t_first_run(True)
    print("%d passed, %d failed, %d skipped" % (results["passed"], results["failed"], results["skipped"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
