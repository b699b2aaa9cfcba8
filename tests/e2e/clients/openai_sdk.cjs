// openai (npm) as a user sets it up: baseURL from E2E_BASE_URL (the SDK
// appends /chat/completions), key E2E_API_KEY, extra headers through the
// SDK's defaultHeaders (E2E_HEADERS), streaming when E2E_STREAM=1.
// maxRetries 0: each test sees exactly the user's first try.
'use strict';
const c = require('./common.cjs');
const OpenAI = require('openai').default;
(async () => {
  const out = new c.Out();
  const client = new OpenAI({
    baseURL: c.env('E2E_BASE_URL'), apiKey: c.env('E2E_API_KEY'), maxRetries: 0, timeout: 30000,
    defaultHeaders: Object.fromEntries(c.headers()),
  });
  const params = { model: c.env('E2E_MODEL', 'kimi-for-coding'), messages: [{ role: 'user', content: 'hi' }] };
  try {
    if (c.env('E2E_STREAM') === '1') {
      const { data: stream, response } = await client.chat.completions.create({ ...params, stream: true }).withResponse();
      out.statuses.push(response.status);
      const ev = [];
      for await (const e of stream) { out.chunk([1]); ev.push(JSON.stringify(e.choices[0].delta)); }
      out.body = Buffer.from(ev.join('\n') + '\n');
    } else {
      const { data, response } = await client.chat.completions.create(params).withResponse();
      out.statuses.push(response.status);
      out.body = Buffer.from(JSON.stringify(data));
    }
  } catch (e) {
    if (e.status === undefined) throw e;
    out.statuses.push(e.status);
    out.body = Buffer.from(JSON.stringify(e.error));
  }
  out.done();
})().catch((e) => { console.log(`error: ${e && e.cause ? e.cause.code || e.cause.message : e}`); process.exit(3); });
