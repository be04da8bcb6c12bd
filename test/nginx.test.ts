/**
 * The bundled nginx.conf with the real nginx in front of an in-process Rotor server. The
 * whole file is skipped when nginx is not installed (CI installs it).
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { checkAbResult, parseAbOutput } from '../perf/lib/http-ab.js';
import { prepareNginxPrefix, REPO_ROOT, startNginx, testNginxConfig } from '../perf/lib/http-nginx.js';
import { findTool, freePort, INSTALL_HINT, type Child } from '../perf/lib/http-process.js';
import { STATUS_MARKER } from '../src/web/status.js';
import { createClient, nextEvent } from './helpers/client.js';
import { API_KEY, startServer, tempDir, waitFor, type TestServer } from './helpers/server.js';

const nginx = findTool('nginx');
const skip = nginx === undefined ? `nginx is not installed; install it with: ${INSTALL_HINT}` : false;

describe('nginx.conf in front of Rotor', { skip }, () => {
  let rotor: TestServer;
  let prefix: { path: string; remove(): void };
  let proxy: Child | undefined;
  let base: string;

  before(async () => {
    rotor = await startServer({ client_insecure: true });
    prefix = tempDir('rotor-nginx-');
    // mkdtemp creates the folder with mode 700; workers started by root run as nobody.
    chmodSync(prefix.path, 0o755);
    const listenPort = await freePort();
    prepareNginxPrefix({ dir: prefix.path, listenPort, upstreamPort: rotor.server.address.port });
    base = `http://127.0.0.1:${listenPort}`;
  });

  after(async () => {
    await proxy?.stop();
    await rotor?.close();
    prefix?.remove();
  });

  test('nginx -t accepts the config', () => {
    const result = testNginxConfig(nginx!, prefix.path);
    assert.ok(result.ok, `nginx -t failed:\n${result.output}`);
    assert.match(result.output, /test is successful/);
  });

  test('nginx starts with the config', async () => {
    proxy = await startNginx(nginx!, prefix.path, Number(new URL(base).port));
  });

  test('static file through nginx equals the file', async () => {
    assert.ok(proxy, 'nginx did not start');
    const expected = readFileSync(join(REPO_ROOT, 'public', 'static', 'sample.html'));
    const response = await fetch(`${base}/static/sample.html`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/html; charset=utf-8');
    const body = Buffer.from(await response.arrayBuffer());
    assert.equal(body.length, expected.length);
    assert.ok(body.equals(expected), 'body differs from public/static/sample.html');
  });

  test('missing static file through nginx is 404', async () => {
    assert.ok(proxy, 'nginx did not start');
    const response = await fetch(`${base}/static/no-such-file.html`);
    await response.arrayBuffer();
    assert.equal(response.status, 404);
  });

  test('second /status request is a cache HIT', async () => {
    assert.ok(proxy, 'nginx did not start');
    // The page may be cached for one second. When the two requests end up further apart
    // than that on a loaded machine, the copy has expired by the second one; try again.
    const pair = await waitFor(
      async () => {
        const started = Date.now();
        const first = await fetch(`${base}/status`);
        const firstBody = await first.text();
        const second = await fetch(`${base}/status`);
        const secondBody = await second.text();
        const result = { first, firstBody, second, secondBody };
        return second.headers.get('x-cache-status') === 'HIT' || Date.now() - started < 900 ? result : false;
      },
      10_000,
      'two /status requests within one second',
    );
    assert.equal(pair.first.status, 200);
    assert.ok(pair.firstBody.includes(STATUS_MARKER), 'the first response is not the status page');
    assert.equal(pair.second.status, 200);
    assert.equal(pair.second.headers.get('x-cache-status'), 'HIT');
    assert.equal(pair.secondBody, pair.firstBody, 'a cache hit must return the cached page unchanged');
  });

  test('/status query string does not bypass the cache', async () => {
    assert.ok(proxy, 'nginx did not start');
    await (await fetch(`${base}/status`)).text();
    const response = await fetch(`${base}/status?nocache=${Date.now()}`);
    await response.text();
    assert.notEqual(response.headers.get('x-cache-status'), 'MISS');
  });

  test('/api and /health are proxied to Rotor', async () => {
    assert.ok(proxy, 'nginx did not start');
    const api = await fetch(`${base}/api/info`, {
      method: 'POST',
      headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json' },
      body: '{}',
    });
    assert.equal(api.status, 200);
    const reply = (await api.json()) as { result?: unknown; error?: unknown };
    assert.equal(reply.error, undefined);
    assert.ok(reply.result !== undefined, 'the info reply has no result');

    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), '{}');
  });

  test('centrifuge client through nginx gets publications', async () => {
    assert.ok(proxy, 'nginx did not start');
    const client = createClient(base);
    try {
      const connected = await client.connect();
      assert.equal(connected.transport, 'websocket');
      const subscription = client.centrifuge.newSubscription('through-nginx');
      const subscribed = nextEvent(subscription, 'subscribed');
      subscription.subscribe();
      await subscribed;
      const received = nextEvent(subscription, 'publication');
      const reply = await rotor.api('publish', { channel: 'through-nginx', data: { via: 'nginx' } });
      assert.equal(reply.error, undefined);
      const publication = await received;
      assert.deepEqual(publication.data, { via: 'nginx' });
      assert.equal(rotor.server.node.hub.numClients, 1);
    } finally {
      client.close();
    }
  });
});

/** An ab 2.3 report of 1,000 requests that all returned 404, with a length change too. */
const AB_REPORT_WITH_ERRORS = `
Server Software:        nginx
Server Hostname:        127.0.0.1
Server Port:            8080

Document Path:          /static/sample.html
Document Length:        153 bytes

Concurrency Level:      10
Time taken for tests:   0.218 seconds
Complete requests:      1000
Failed requests:        3
   (Connect: 0, Receive: 0, Length: 3, Exceptions: 0)
Non-2xx responses:      1000
Total transferred:      451000 bytes
HTML transferred:       153003 bytes
Requests per second:    4584.34 [#/sec] (mean)
Time per request:       2.181 [ms] (mean)
Time per request:       0.218 [ms] (mean, across all concurrent requests)
Transfer rate:          2019.08 [Kbytes/sec] received

Percentage of the requests served within a certain time (ms)
  50%      1
 100%    112 (longest request)
`;

describe('ApacheBench report checks', () => {
  test('parser reads every counted field', () => {
    const result = parseAbOutput(AB_REPORT_WITH_ERRORS);
    assert.equal(result.documentLength, 153);
    assert.equal(result.completeRequests, 1000);
    assert.equal(result.failedRequests, 3);
    assert.equal(result.failedDetail, '(Connect: 0, Receive: 0, Length: 3, Exceptions: 0)');
    assert.equal(result.non2xxResponses, 1000);
    assert.equal(result.requestsPerSecond, 4584.34);
    assert.equal(result.meanRequestMs, 2.181);
    assert.equal(result.percentilesMs.get(100), 112);
    assert.equal(result.keepAliveRequests, undefined);
  });

  test('missing Non-2xx line means zero', () => {
    const clean = AB_REPORT_WITH_ERRORS.replace(/^Non-2xx responses:.*\n/m, '');
    assert.equal(parseAbOutput(clean).non2xxResponses, 0);
  });

  test('check lists every problem', () => {
    const problems = checkAbResult(parseAbOutput(AB_REPORT_WITH_ERRORS), 1000, 325);
    assert.ok(problems.some((problem) => problem.includes('1000 non-2xx')), problems.join('; '));
    assert.ok(problems.some((problem) => problem.includes('3 failed requests')), problems.join('; '));
    assert.ok(problems.some((problem) => problem.includes('document length 153 bytes, expected 325')), problems.join('; '));
  });

  test('check accepts a clean run', () => {
    const clean = AB_REPORT_WITH_ERRORS.replace(/^Non-2xx responses:.*\n/m, '')
      .replace(/^Failed requests:.*\n.*\n/m, 'Failed requests:        0\n')
      .replace(/^HTML transferred:.*$/m, 'HTML transferred:       153000 bytes');
    assert.deepEqual(checkAbResult(parseAbOutput(clean), 1000, 153), []);
  });
});
