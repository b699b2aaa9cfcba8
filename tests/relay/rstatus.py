#!/usr/bin/python3
"""rstatus.py PORT TOKENHEX [FIELD]: the relay's STATUS over its control
channel (PROXY v2 LOCAL command with the token, then "STATUS"). Prints the
whole reply, or FIELD's value alone (nothing when the relay has no such
field)."""
import socket
import struct
import sys


def status(port, token):
    body = bytes([0xE0]) + struct.pack(">H", 16) + bytes.fromhex(token)
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x20\x00" + struct.pack(">H", len(body)) + body + b"STATUS\n")
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    return dict(l.partition(" ")[::2] for l in out.decode().splitlines())


if __name__ == "__main__":
    st = status(int(sys.argv[1]), sys.argv[2])
    if len(sys.argv) > 3:
        if sys.argv[3] in st:
            print(st[sys.argv[3]])
    else:
        print("\n".join("%s %s" % kv for kv in st.items()))
