// Shared by the Node drivers: the environment interface and the output
// format every driver prints (tests/e2e/README.md, "Driver interface").
'use strict';
const fs = require('fs');
const T0 = process.hrtime.bigint();
const ms = () => Number((process.hrtime.bigint() - T0) / 1000000n);
const env = (n, d) => (process.env[n] === undefined || process.env[n] === '' ? d : process.env[n]);

function headers() { // E2E_HEADERS: 'Name: value' per line, order and case kept
  return env('E2E_HEADERS', '').split('\n').filter((l) => l.trim()).map((l) => {
    const i = l.indexOf(':');
    return [l.slice(0, i).trim(), l.slice(i + 1).trim()];
  });
}
const body = () => (env('E2E_BODY_FILE') ? fs.readFileSync(env('E2E_BODY_FILE')) : null);

class Out {
  constructor() { this.statuses = []; this.facts = {}; this.body = Buffer.alloc(0); this.first = null; }
  chunk(c) { if (c && c.length && this.first === null) this.first = ms(); }
  done() {
    let s = this.statuses.map((x) => `status: ${x}\n`).join('');
    if (this.first !== null && !('first-byte-ms' in this.facts)) this.facts['first-byte-ms'] = this.first;
    this.facts['total-ms'] = ms();
    for (const [k, v] of Object.entries(this.facts)) s += `${k}: ${v}\n`;
    process.stdout.write(Buffer.concat([Buffer.from(s + 'body:\n'), Buffer.from(this.body)]));
  }
}
module.exports = { env, headers, body, Out, ms };
