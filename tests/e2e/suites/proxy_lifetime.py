"""The relay's lifetime for proxy-carrier clients (issue 11; docs/relay.md
"Proxy carrier", "Relay lifetime"): such a client holds the relay's URL -
port and token - in its environment for its whole life, and a static one
has no shim that could re-point it. So a restarted relay listens on the
same port when it is free and answers the same token (RUNDIR/relay.keep),
and the relay does not exit idle while a proxy-carrier client is alive
(its lease, RUNDIR/clients/ID: pid and start time). Every wait is for an
event (a file, a log line, a process gone) under a generous hang guard."""
import os
import socket
import subprocess
import time

import matrix
from proxycase import HANG, auth_header, clean_env, raw, relay_port, relay_token, verdict


def _relay(env, rd, *args):
    p = subprocess.run([env.kimifix, "relay", "start"] + list(args), env=clean_env(env, rd),
                       capture_output=True, timeout=HANG)
    return p.returncode, relay_port(rd), relay_token(rd)


def _stop(env, rd):
    subprocess.run([env.kimifix, "relay", "stop"], env=clean_env(env, rd), capture_output=True,
                   timeout=HANG)


def _until(what, cond, secs=HANG):
    """Wait for cond() (a hang guard, not a timing assumption)."""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("gave up waiting (%d s) for %s" % (secs, what))


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _log(rd):
    try:
        with open(os.path.join(rd, "kimifix", "relay.log")) as f:
            return f.read()
    except OSError:
        return ""


def t_port_and_token_kept(env, fake, res):
    name = "proxy/lifetime/port-and-token-kept"
    rd = env.private("run-proxy-keep")
    problems = []
    blocker = None
    try:
        _, port, tok = _relay(env, rd)
        keep = os.path.join(rd, "kimifix", "relay.keep")
        if not port or not tok:
            return verdict(res, name, ["the relay did not start"])
        if not os.path.exists(keep) or os.stat(keep).st_mode & 0o077:
            problems.append("relay.keep missing or readable by others")
        _stop(env, rd)
        _, port2, tok2 = _relay(env, rd)
        if (port2, tok2) != (port, tok):
            problems.append("restart: port %s token %s..., want %s %s..." % (port2, (tok2 or "")[:6], port,
                                                                          tok[:6]))
        # the old URL still works: a CONNECT with the old token is not refused
        a = raw(port, b"CONNECT api.kimi.com:443 HTTP/1.1\r\n" + auth_header(tok) + b"\r\n",
                then=lambda s: s.shutdown(socket.SHUT_WR))
        if not a.startswith(b"HTTP/1.1 200 "):
            problems.append("the old URL after a restart: %r" % a[:80])
        _stop(env, rd)
        # the port taken by someone else meanwhile: a new port, the same token, said in the log
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        _, port3, tok3 = _relay(env, rd)
        if port3 == port or not port3 or tok3 != tok:
            problems.append("port taken: port %s token kept %s" % (port3, tok3 == tok))
        if "the last relay's port %d is taken" % port not in _log(rd):
            problems.append("no log line about the taken port")
    finally:
        if blocker:
            blocker.close()
        matrix.stop_relay(rd)
    verdict(res, name, problems)


def t_stays_while_a_client_lives(env, fake, res):
    """--idle 2, a proxy-carrier client (`kimifix --mode proxy sleep`):
    the relay says it stays, and exits once the client is gone."""
    name = "proxy/lifetime/stays-while-a-client-lives"
    rd = env.private("run-proxy-lease")
    problems = []
    client = hold = lst = None
    try:
        _, port, tok = _relay(env, rd, "--idle", "2")
        rpid = matrix.relay_pid(rd)
        # A tunnel holds the relay busy until the client has its lease (a
        # loaded machine may take longer than the idle time to start it).
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        hold = socket.create_connection(("127.0.0.1", port), timeout=HANG)
        hold.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n" % lst.getsockname()[1] + auth_header(tok) + b"\r\n")
        if not hold.recv(100).startswith(b"HTTP/1.1 200 "):
            return verdict(res, name, ["the holding tunnel was refused"])
        client = subprocess.Popen([env.kimifix, "--mode", "proxy", "sleep", "600"],
                                  env=clean_env(env, rd), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        leases = os.path.join(rd, "kimifix", "clients")

        def leased():
            for n in os.listdir(leases) if os.path.isdir(leases) else []:
                try:
                    if "lease %d " % client.pid in open(os.path.join(leases, n)).read():
                        return True
                except OSError:
                    pass
            return False
        _until("the client's lease", leased)
        hold.close()  # and the far end: a half-closed tunnel stays open
        lst.close()
        hold = lst = None
        line = "but 1 proxy-carrier client is alive (pid %d): staying" % client.pid
        try:
            _until("'%s' in relay.log" % line, lambda: line in _log(rd))
        except AssertionError as ex:
            raise AssertionError("%s; relay.log: %s" % (ex, _log(rd)[-600:]))
        if not _alive(rpid):
            problems.append("the relay exited while its client lived")
        client.kill()
        client.wait(timeout=HANG)
        _until("the relay's exit after its client", lambda: not _alive(rpid))
        if "relay: idle for" not in _log(rd).split(line, 1)[-1] or "exiting" not in _log(rd):
            problems.append("no 'idle ... exiting' line after the client went")
    except AssertionError as ex:
        problems.append(str(ex))
    finally:
        for s in (hold, lst):
            if s:
                s.close()
        if client and client.poll() is None:
            client.kill()
            client.wait()
        matrix.stop_relay(rd)
    verdict(res, name, problems)


def tests(env):
    T = matrix.SuiteTest
    return [
        T("proxy/lifetime/port-and-token-kept", t_port_and_token_kept),
        T("proxy/lifetime/stays-while-a-client-lives", t_stays_while_a_client_lives),
    ]
