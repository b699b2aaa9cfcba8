// node_resolve4.cjs HOST PATH: resolve HOST with dns.Resolver#resolve4
// (c-ares inside Node, asking 127.0.0.1:53 directly: neither getaddrinfo
// nor /etc/hosts) as a custom `lookup`, then POST the Anthropic-wire body
// to https://HOST PATH. Prints "status: N". Key: $E2E_API_KEY.
'use strict';
const dns = require('dns');
const https = require('https');

const [host, path] = process.argv.slice(2);
const resolver = new dns.Resolver({ timeout: 3000, tries: 2 });
resolver.setServers(['127.0.0.1']);

function lookup(name, opts, cb) {
  resolver.resolve4(name, (err, addrs) => {
    if (err) return cb(err);
    if (opts && opts.all) return cb(null, addrs.map((a) => ({ address: a, family: 4 })));
    cb(null, addrs[0], 4);
  });
}

const body = JSON.stringify({ model: 'kimi-for-coding', max_tokens: 64,
                              messages: [{ role: 'user', content: 'hi' }] });
const req = https.request({
  host, port: 443, path, method: 'POST', lookup, agent: false, timeout: 30000,
  headers: { 'Content-Type': 'application/json', 'anthropic-version': '2023-06-01',
             'x-api-key': process.env.E2E_API_KEY || '', 'Content-Length': Buffer.byteLength(body) },
}, (res) => {
  res.resume();
  res.on('end', () => console.log('status: ' + res.statusCode));
});
req.on('error', (e) => { console.log('status: -1'); console.error(String(e)); });
req.on('timeout', () => req.destroy(new Error('timeout')));
req.end(body);
