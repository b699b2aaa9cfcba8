"""A small HTTP CONNECT proxy for the e2e suites: the "company proxy" a
user's HTTPS_PROXY names. It records what it sees (CONNECT targets,
absolute-form requests, whether credentials came) so a test can prove the
chain is real, and can misbehave on purpose.

    p = RecProxy(mode="ok", user="alice", password="pw")  # 407 without them
    p.url                      -> "http://alice:pw@127.0.0.1:PORT"
    p.seen                     -> [("CONNECT", "api.kimi.com:443", True), ...]
    p.close()

Modes: "ok" (tunnel / forward), "refuse" (403 to everything), "reset"
(accept, read the request, close with RST), "silent" (accept, read, never
answer). Upstream names resolve through the namespace's /etc/hosts (the
suite runs inside it), so tunnels reach fakeup. Plain threads; every socket
has a timeout (a hang guard); the listener is loopback only."""
import base64
import socket
import struct
import threading

TIMEOUT = 60


class RecProxy:
    def __init__(self, mode="ok", user=None, password=None):
        self.mode, self.user, self.password = mode, user, password
        self.seen = []
        self.lock = threading.Lock()
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(64)
        self.port = self.s.getsockname()[1]
        cred = "%s:%s@" % (user, password) if user else ""
        self.url = "http://%s127.0.0.1:%d" % (cred, self.port)
        self.shown = "127.0.0.1:%d" % self.port
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def targets(self, kind="CONNECT"):
        with self.lock:
            return [t for k, t, _ in self.seen if k == kind]

    def _accept(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _head(self, c):
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            b = c.recv(4096)
            if not b:
                return None, b""
            data += b
        head, _, rest = data.partition(b"\r\n\r\n")
        return head.decode("latin-1"), rest

    def _authorized(self, head):
        if not self.user:
            return True
        want = "Basic " + base64.b64encode(("%s:%s" % (self.user, self.password)).encode()).decode()
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "proxy-authorization" and v.strip() == want:
                return True
        return False

    def _serve(self, c):
        c.settimeout(TIMEOUT)
        try:
            head, rest = self._head(c)
            if head is None:
                return
            method, target = (head.split(" ") + ["", ""])[:2]
            authed = self._authorized(head)
            with self.lock:
                self.seen.append((method if method == "CONNECT" else "ABSOLUTE", target, authed))
            if self.mode == "silent":
                c.recv(1)  # until the client gives up (or the timeout)
                return
            if self.mode == "reset":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if self.mode == "refuse":
                c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            if not authed:
                c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                          b"Proxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n"
                          b"Connection: close\r\n\r\n")
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up = socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT)
                c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    up.sendall(rest)
            else:
                up = self._forward(head, rest)
            self._pipe(c, up)
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def _forward(self, head, rest):
        """Absolute-form: to the origin in origin form, our header dropped."""
        lines = head.split("\r\n")
        method, url, ver = lines[0].split(" ")
        hostport, _, path = url[len("http://"):].partition("/")
        host, _, port = hostport.partition(":")
        up = socket.create_connection((host, int(port or 80)), timeout=TIMEOUT)
        keep = [x for x in lines[1:] if not x.lower().startswith(("proxy-authorization:", "proxy-connection:"))]
        up.sendall(("%s /%s %s\r\n" % (method, path, ver) + "\r\n".join(keep) + "\r\n\r\n").encode("latin-1")
                   + rest)
        return up

    @staticmethod
    def _pipe(a, b):
        def one(src, dst):
            try:
                while True:
                    d = src.recv(65536)
                    if not d:
                        break
                    dst.sendall(d)
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        t = threading.Thread(target=one, args=(b, a), daemon=True)
        t.start()
        one(a, b)
        t.join(TIMEOUT)
        b.close()
