#!/usr/bin/python3
"""flood.py: many idle connections to the relay (tests/relay/load.sh).

    flood.py PORT N [TOKENHEX DSTPORT]

Opens N TCP connections to 127.0.0.1:PORT at once (non-blocking) and sends
nothing, or, with a token, one after the other, each with a valid PROXY v2
preamble and then nothing (post-token clients that never speak). When every connect has finished it
prints "connected C refused R" and holds the connections until its stdin
reaches EOF (the test decides how long), then prints "peer_closed K of N"
(connections the relay had closed by then) and exits. Runs as any user
(load.sh runs it as nobody), needs only the standard library.
"""
import errno
import os
import selectors
import socket
import struct
import sys


def preamble(token, dport):
    addrs = bytes(4) + socket.inet_aton("127.0.0.1") + b"\0\0" + struct.pack(">H", dport)
    tlv = bytes([0x02]) + struct.pack(">H", 12) + b"api.kimi.com"
    tlv += bytes([0xE0]) + struct.pack(">H", 16) + bytes.fromhex(token)
    body = addrs + tlv
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack(">H", len(body)) + body


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    pre = preamble(sys.argv[3], int(sys.argv[4])) if len(sys.argv) > 4 else None
    sel = selectors.DefaultSelector()
    socks, refused = [], 0
    for _ in range(n):
        s = socket.socket()
        if pre:
            # One after the other, each past the token before the next
            # comes: post-token connections, not pending ones.
            s.settimeout(60)
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(pre)
            except OSError:
                refused += 1
                s.close()
                continue
            socks.append(s)
            continue
        s.setblocking(False)
        e = s.connect_ex(("127.0.0.1", port))
        if e not in (0, errno.EINPROGRESS):
            refused += 1
            s.close()
            continue
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE)
    left = 0 if pre else len(socks)
    while left:
        ev = sel.select(timeout=120)
        if not ev:
            break  # hang guard: report what we have
        for key, _ in ev:
            s = key.fileobj
            sel.unregister(s)
            left -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                refused += 1
    print("connected %d refused %d" % (len(socks) - refused, refused), flush=True)
    sys.stdin.read()  # held until the test closes our stdin
    closed = 0
    for s in socks:
        try:
            closed += s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    print("peer_closed %d of %d" % (closed, n), flush=True)


if __name__ == "__main__":
    main()
