"""Python HTTP driver: `python3 http_py.py urllib|requests|httpx|aiohttp`.

Each library is used the way an application uses it, with its own trust
variable (urllib: SSL_CERT_FILE via OpenSSL's defaults; requests:
REQUESTS_CA_BUNDLE; httpx: SSL_CERT_FILE; aiohttp: OpenSSL's defaults, its
TLS through asyncio's memory-BIO SSLObject). Interface: common.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

LIB = sys.argv[1] if len(sys.argv) > 1 else "urllib"
URL = common.env("E2E_URL")
HDRS = common.headers()
BODY = common.body()
METHOD = common.env("E2E_METHOD", "POST" if BODY is not None else "GET")
CHUNKED = common.env("E2E_CHUNKED") == "1"
REPEAT = int(common.env("E2E_REPEAT", "1"))
out = common.Out()


def payload():
    if BODY is None:
        return None
    return common.body_chunks(BODY) if CHUNKED else BODY


def run_urllib():
    import urllib.error
    import urllib.request
    req = urllib.request.Request(URL, data=payload(), method=METHOD)
    for k, v in HDRS:
        req.add_header(k, v)
    try:
        resp = urllib.request.urlopen(req, timeout=30)
    except urllib.error.HTTPError as e:
        resp = e
    out.statuses.append(resp.status if hasattr(resp, "status") else resp.code)
    data = b""
    while True:
        c = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
        if not c:
            break
        out.chunk(c)
        data += c
    out.body = data


def run_requests():
    import requests
    s = requests.Session()
    for _ in range(REPEAT):
        r = s.request(METHOD, URL, data=payload(), headers=dict(HDRS), stream=True, timeout=30)
        out.statuses.append(r.status_code)
        data = b""
        for c in r.iter_content(chunk_size=None):
            out.chunk(c)
            data += c
        out.body = data
    pools = s.get_adapter(URL).poolmanager.pools
    out.facts["connections"] = sum(p.num_connections for p in pools._container.values())


def run_httpx():
    import httpx
    with httpx.Client(timeout=30) as c:
        for _ in range(REPEAT):
            with c.stream(METHOD, URL, content=payload(), headers=HDRS) as r:
                out.statuses.append(r.status_code)
                data = b""
                for chunk in r.iter_raw():
                    out.chunk(chunk)
                    data += chunk
                out.body = data
        out.facts["connections"] = len(c._transport._pool.connections)


def run_aiohttp():
    import asyncio

    import aiohttp

    async def chunks():
        for c in common.body_chunks(BODY):
            yield c

    async def main():
        conn = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=conn, auto_decompress=False) as s:
            for _ in range(REPEAT):
                data = chunks() if BODY is not None and CHUNKED else BODY
                async with s.request(METHOD, URL, data=data, headers=HDRS,
                                     timeout=aiohttp.ClientTimeout(total=30)) as r:
                    out.statuses.append(r.status)
                    got = b""
                    async for c in r.content.iter_any():
                        out.chunk(c)
                        got += c
                    out.body = got
            out.facts["connections"] = sum(len(v) for v in conn._conns.values())

    asyncio.run(main())


{"urllib": run_urllib, "requests": run_requests, "httpx": run_httpx, "aiohttp": run_aiohttp}[LIB]()
out.done()
