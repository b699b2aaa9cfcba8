"""The proxy carrier (issue 11; docs/relay.md "Proxy carrier"), what runs
without the relay's HTTP proxy front end: the wrapper's and the shim's
carrier choice and environment, doctor, refusals, the first run on a fresh
account, and the harness itself (the Go client is static and faithful; Go
honours a recording CONNECT proxy, tests/e2e/recproxy.py). The request cases
through the relay are in proxy_relay.py."""
import os
import re
import shutil
import subprocess
import time

import matrix
import records
from proxycase import (BASE, HANG, NO_USER_PROXY, clean_env, client_or_skip, clients, doctor,
                       goclient, relay_port, run, verdict)
from recproxy import RecProxy

def t_go_static(env, fake, res):
    name = "proxy/go-static/static-binary"
    go = goclient(env)
    if not os.access(go, os.X_OK):
        return res.report("SKIP", name, "client unavailable: " + clients(env)["go-static"].skip)
    with open(go, "rb") as f:
        elf = f.read(4096)
    phoff = int.from_bytes(elf[0x20:0x28], "little")
    phentsize, phnum = int.from_bytes(elf[0x36:0x38], "little"), int.from_bytes(elf[0x38:0x3a], "little")
    types = [int.from_bytes(elf[phoff + i * phentsize:phoff + i * phentsize + 4], "little") for i in range(phnum)]
    verdict(res, name, [] if elf[:4] == b"\x7fELF" and 3 not in types and 2 not in types else
            ["not a static ELF (program header types %s)" % types])


def t_go_doctor(env, fake, res):
    name = "proxy/go-static/doctor-names-proxy"
    c = client_or_skip(env, res, name)
    if not c:
        return
    rc, out = doctor(env, "run-proxy-doctor")
    last = out.strip().splitlines()[-1] if out.strip() else ""
    problems = []
    if rc != 0 or not last.startswith("kimifix doctor: proxy -- via the relay as its HTTP proxy, Go"):
        problems.append("exit %d, last line %r" % (rc, last))
    if "statically linked, it cannot load a preload library" not in out:
        problems.append("does not say why no preload reaches it")
    verdict(res, name, problems)


def t_go_without(env, fake, res):
    for scn in ("double-v1", "double-v1-http", "neg-unrelated-host"):
        name = "proxy/go-static/%s/without" % scn
        c = client_or_skip(env, res, name)
        if c:
            verdict(res, name, run(env, fake, c, scn, "without", name)[0])


def t_go_env(env, fake, res):
    """kimifix CMD on a static program: the proxy carrier's environment."""
    name = "proxy/go-static/wrapper-sets-the-proxy-carrier"
    c = client_or_skip(env, res, name)
    if not c:
        return
    rd = env.private("run-proxy-go-env")
    names = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
             "SSL_CERT_FILE", "KIMIFIX_ORIG_HTTPS_PROXY", "KIMIFIX_ORIG_SSL_CERT_FILE", "LD_PRELOAD"]
    e = clean_env(env, rd, E2E_PRINT_ENV=",".join(names), SSL_CERT_FILE=env.cacert,
                  HTTPS_PROXY="http://alice:pw@127.0.0.1:9", NO_PROXY="internal.corp",
                  KIMIFIX_LOG="stderr")
    try:
        p = subprocess.Popen([env.kimifix, goclient(env)], env=e, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        p.stdout_b, p.stderr_b = p.communicate(timeout=HANG)
        port = relay_port(rd)
    finally:
        matrix.stop_relay(rd)
    got = {}
    for line in p.stdout_b.decode().splitlines():
        if line.startswith("env "):
            k, _, v = line[4:].partition(": ")
            got[k] = v
    problems = []
    ours = "@127.0.0.1:%s" % port
    ids = set()
    for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        m = re.match(r"http://kimifix-([0-9a-f]{32}):[0-9a-f]{32}@", got.get(k, ""))
        if not (m and got[k].endswith(ours)):
            problems.append("%s=%r, want the relay (%s) with a client id" % (k, got.get(k), ours))
        else:
            ids.add(m.group(1))
    # the lease (kf_lease.h): this program's pid and the user's proxy, 0600
    for cid in ids:
        lp = os.path.join(rd, "kimifix", "clients", cid)
        try:
            st = os.stat(lp)
            text = open(lp).read()
            if st.st_mode & 0o077 or "lease %d " % p.pid not in text or \
                    "proxy http://alice:pw@127.0.0.1:9\n" not in text or "noproxy internal.corp\n" not in text:
                problems.append("lease file %s: mode %o, %r" % (lp, st.st_mode & 0o777, text.replace("pw@", "PW@")))
        except OSError as ex:
            problems.append("no lease file for client id %s: %s" % (cid, ex))
    if len(ids) > 1:
        problems.append("the proxy variables name different client ids: %s" % ids)
    want = {"NO_PROXY": "internal.corp", "KIMIFIX_ORIG_HTTPS_PROXY": "http://alice:pw@127.0.0.1:9",
            "KIMIFIX_ORIG_SSL_CERT_FILE": env.cacert}
    problems += ["%s=%r, want %r" % (k, got.get(k), v) for k, v in want.items() if got.get(k) != v]
    if not got.get("LD_PRELOAD", "").endswith("libkimifix.so"):
        problems.append("LD_PRELOAD=%r, want it kept" % got.get("LD_PRELOAD"))
    bundle = got.get("SSL_CERT_FILE", "")
    try:
        text = open(bundle).read()
        ca = open(os.path.join(env.private("home"), ".local", "share", "kimifix", "ca.pem")).read()
        if open(env.cacert).read().strip() not in text or ca.strip() not in text:
            problems.append("SSL_CERT_FILE %s lacks the user's CA or the kimifix CA" % bundle)
    except OSError as ex:
        problems.append("SSL_CERT_FILE=%r: %s" % (bundle, ex))
    err = p.stderr_b.decode()
    if "carrier: proxy -- the program cannot load the shim; chained to your proxy http://127.0.0.1:9" not in err:
        problems.append("no carrier line in the log: %r" % err[-400:])
    if "alice" in err or "pw@" in err:
        problems.append("the log shows the user's proxy credentials")
    verdict(res, name, problems)


def t_go_chain_harness(env, fake, res):
    """Without kimifix: Go honours HTTPS_PROXY; the recording proxy works."""
    name = "proxy/go-static/double-v1/through-a-user-proxy/without"
    c = client_or_skip(env, res, name)
    if not c:
        return
    rp = RecProxy(user="alice", password="pw")
    try:
        problems, _ = run(env, fake, c, "double-v1", "without", name, {"HTTPS_PROXY": rp.url})
        if rp.targets() != ["api.kimi.com:443"] or not all(a for _, _, a in rp.seen):
            problems.append("the user's proxy saw %s" % rp.seen)
    finally:
        rp.close()
    verdict(res, name, problems)


def t_noproxy_doctor(env, fake, res):
    name = "proxy/no-proxy-rule-host/doctor-says-unfixed"
    c = client_or_skip(env, res, name)
    if not c:
        return
    _, out = doctor(env, "run-proxy-np", HTTPS_PROXY="http://u:pw@proxy.corp:3128",
                    NO_PROXY="localhost,api.kimi.com")
    problems = []
    if not any(line.startswith("! no_proxy") and "api.kimi.com" in line and "unfixed" in line
               for line in out.splitlines()):
        problems.append("no '! no_proxy ... api.kimi.com ... unfixed' line: %r" % out[-600:])
    if "u:pw" in out:
        problems.append("doctor shows the proxy's credentials")
    verdict(res, name, problems)


def t_setuid(env, fake, res):
    name = "proxy/setuid-program-refused"
    src = goclient(env) if os.access(goclient(env), os.X_OK) else "/usr/bin/true"
    d = env.private("suid")
    prog = os.path.join(d, "suid-client")
    shutil.copy(src, prog)
    os.chmod(prog, 0o4755)
    e = clean_env(env, env.private("run-proxy-suid"), E2E_PRINT_ENV="HTTPS_PROXY")
    p = subprocess.run([env.kimifix, prog], env=e, capture_output=True, timeout=HANG)
    matrix.stop_relay(e["XDG_RUNTIME_DIR"])
    err = p.stderr.decode()
    problems = []
    if p.returncode != 126:
        problems.append("exit %d, want 126" % p.returncode)
    if "setuid program" not in err or "refusing to run it under kimifix" not in err:
        problems.append("no clear message: %r" % err[-300:])
    if p.stdout:
        problems.append("the program ran: %r" % p.stdout[:200])
    verdict(res, name, problems)


def t_first_run(env, fake, res):
    """Plain LD_PRELOAD on a fresh account (no CA yet): fixed on the first
    run, not only the second (issue 11 item 5). The shim's constructor
    starts the relay (which makes the CA) before it sets the trust
    variables."""
    base = "proxy/first-run/py-requests/kimi-key-moonshot"
    c = client_or_skip(env, res, base, "py-requests")
    if not c:
        return
    problems, _ = run(env, fake, c, "kimi-key-moonshot", "without", base + "/without")
    if problems:
        return verdict(res, base, ["without kimifix: " + x for x in problems])
    fresh = env.private("home-first-run")
    scn = matrix.scenarios()["kimi-key-moonshot"]
    t = matrix.Test(base, c, scn, "with")
    req = matrix.request_for(scn, c)
    mark = fake.mark()
    p, err, secs = matrix.run_client(t, env, req, False, dict(NO_USER_PROXY, HOME=fresh, LD_PRELOAD=env.shim))
    time.sleep(0.05)
    if err:
        return verdict(res, base, [err])
    statuses, facts, body = matrix.parse_output(p.stdout)
    problems = records.judge(records.Ctx(t, req, env, statuses, facts, body, fake.since(mark), p, secs), BASE)
    if not os.path.exists(os.path.join(fresh, ".local", "share", "kimifix", "ca.pem")):
        problems.append("no kimifix CA made in the fresh account")
    verdict(res, base, problems)

def tests(env):
    T = matrix.SuiteTest
    return [
        T("proxy/go-static/static-binary", t_go_static),
        T("proxy/go-static/doctor-names-proxy", t_go_doctor),
        T("proxy/go-static/without", t_go_without),
        T("proxy/go-static/wrapper-sets-the-proxy-carrier", t_go_env),
        T("proxy/go-static/double-v1/through-a-user-proxy/without", t_go_chain_harness),
        T("proxy/no-proxy-rule-host/doctor-says-unfixed", t_noproxy_doctor),
        T("proxy/setuid-program-refused", t_setuid),
        T("proxy/first-run/py-requests/kimi-key-moonshot", t_first_run),
    ]
