// Global fetch (undici) of whichever node runs it. Trust: NODE_EXTRA_CA_CERTS.
// E2E_CHUNKED=1 sends the body as a ReadableStream (chunked on HTTP/1.1);
// E2E_REPEAT=N sends it N times (undici keeps the connection alive).
'use strict';
const c = require('./common.cjs');
// undici reports each new connection on this channel (Node 18 and later)
let connects = 0;
require('diagnostics_channel').channel('undici:client:connected').subscribe(() => { connects++; });
(async () => {
  const out = new c.Out();
  const data = c.body();
  const method = c.env('E2E_METHOD', data ? 'POST' : 'GET');
  for (let i = 0; i < Number(c.env('E2E_REPEAT', '1')); i++) {
    // undici returns a connection to its pool a tick after the body ends;
    // without this yield the second request opens a second connection
    if (i) await new Promise((r) => setTimeout(r, 10));
    const init = { method, headers: c.headers() };
    if (data && c.env('E2E_CHUNKED') === '1') {
      init.duplex = 'half';
      init.body = new ReadableStream({
        start(ctl) { for (let o = 0; o < data.length; o += 4096) ctl.enqueue(data.subarray(o, o + 4096)); ctl.close(); },
      });
    } else if (data) init.body = data;
    const r = await fetch(c.env('E2E_URL'), init);
    out.statuses.push(r.status);
    const parts = [];
    if (r.body) for await (const chunk of r.body) { out.chunk(chunk); parts.push(Buffer.from(chunk)); }
    out.body = Buffer.concat(parts);
  }
  out.facts.connections = connects;
  out.done();
})().catch((e) => { console.log(`error: ${e && e.cause ? e.cause.code || e.cause.message : e}`); process.exit(3); });
