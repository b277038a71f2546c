// Prometheus metrics at /metrics: the text format, request counts and durations by route and status, open
// connections, the loop's lag, and prom-client's default process metrics.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { RawClient, listen, portOf, testApp } from './helpers.js';

test('/metrics serves the Prometheus text format with requests, durations, connections and loop lag', async (t) => {
  const app = testApp({ metrics: { lagInterval: 0.05 } });
  app.get('/kv/:key', (req) => ({ key: req.params.key }));
  const url = await listen(t, app);
  await request(url).get('/kv/a').expect(200);
  await request(url).get('/kv/b').expect(200);
  await request(url).post('/kv/b').expect(405);
  await request(url).get('/missing').expect(404);
  const open = await RawClient.connect(portOf(url), t);
  open.write('GET /kv/c HTTP/1.1\r\nHost: x\r\n\r\n');
  await open.response();
  await new Promise((r) => setTimeout(r, 120));
  const res = await request(url).get('/metrics').expect(200);
  assert.match(res.headers['content-type']!, /^text\/plain; version=0\.0\.4/);
  const text = res.text;
  // Every sample line is `name{labels} value`; every metric has HELP and TYPE.
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+|NaN$/, line);
  }
  assert.match(text, /# TYPE http_requests_total counter/);
  assert.match(text, /http_requests_total\{method="GET",route="\/kv\/:key",status_code="200"\} 3/);
  assert.match(text, /http_requests_total\{method="POST",route="<unmatched>",status_code="405"\} 1/);
  assert.match(text, /http_requests_total\{method="GET",route="<unmatched>",status_code="404"\} 1/);
  assert.match(text, /# TYPE http_request_duration_seconds histogram/);
  assert.match(text, /http_request_duration_seconds_count\{method="GET",route="\/kv\/:key",status_code="200"\} 3/);
  assert.match(
    text,
    /http_request_duration_seconds_bucket\{le="\+Inf",method="GET",route="\/kv\/:key",status_code="200"\} 3/,
  );
  const conns = /^http_open_connections (\d+)$/m.exec(text);
  assert.ok(conns !== null && Number(conns[1]) >= 2, 'the raw client and the scrape connection are open');
  assert.match(text, /^loopwork_loop_lag_seconds \d/m);
  assert.match(text, /^process_cpu_seconds_total /m);
  assert.match(text, /^nodejs_eventloop_lag_seconds /m);
});

test('metrics: false turns them off', async () => {
  const app = testApp({ metrics: false });
  assert.equal((await app.inject('/metrics')).statusCode, 404);
  assert.equal(app.metricsRegistry, null);
});

test('methods no route can have are answered 501 and counted as one _OTHER series, however many a client invents', async (t) => {
  const app = testApp();
  app.get('/kv/:key', (req) => ({ key: req.params.key }));
  const url = await listen(t, app);
  const client = await RawClient.connect(portOf(url), t);
  for (let i = 0; i < 20; i++) {
    client.write(`M${i}X /kv/a HTTP/1.1\r\nHost: x\r\n\r\n`);
    const res = await client.response();
    assert.equal(res.status, 501);
    assert.deepEqual(JSON.parse(res.body.toString()), {
      statusCode: 501,
      error: 'Not Implemented',
      message: `Method M${i}X is not implemented`,
    });
  }
  const text = (await request(url).get('/metrics').expect(200)).text;
  assert.match(text, /http_requests_total\{method="_OTHER",route="<unmatched>",status_code="501"\} 20/);
  assert.doesNotMatch(text, /method="M\d+X"/);
});
