# tls_memory.py - an in-memory TLS client and server in one Python process (no
# sockets): the client's SSL_write_ex goes through libssl, which Python loads
# privately (RTLD_LOCAL) via its _ssl module. Prints what the server decrypted.
# usage: python3 tls_memory.py CERT KEY
import ssl,sys
sctx=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain(sys.argv[1], sys.argv[2])
cctx=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.check_hostname=False; cctx.verify_mode=ssl.CERT_NONE
ci,co,si,so=ssl.MemoryBIO(),ssl.MemoryBIO(),ssl.MemoryBIO(),ssl.MemoryBIO()
c=cctx.wrap_bio(ci,co,server_hostname="api.kimi.com"); s=sctx.wrap_bio(si,so,server_side=True)
def pump():
    d=co.read();
    if d: si.write(d)
    d=so.read()
    if d: ci.write(d)
for _ in range(10):
    for o in (c,s):
        try: o.do_handshake()
        except ssl.SSLWantReadError: pass
    pump()
req=b"POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\nContent-Length: 2\r\n\r\n{}"
n=c.write(req); pump()
got=b""
while True:
    try: got+=s.read(65536)
    except ssl.SSLWantReadError: break
sys.stderr.write("wrote %d of %d\n" % (n, len(req)))
sys.stderr.write(repr(got)+"\n")
