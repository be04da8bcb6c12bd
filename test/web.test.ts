/** Static files under /static/ and the status page, served by Rotor itself. */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_PUBLIC_DIR } from '../src/web/pages.js';
import { STATUS_CACHE_CONTROL, STATUS_MARKER } from '../src/web/status.js';
import { startServer, tempDir, waitFor, type TestServer } from './helpers/server.js';

interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/**
 * Sends a request with the path exactly as given. fetch() would normalize dot segments
 * on the client side, so traversal attempts would never reach the server.
 */
function rawRequest(base: string, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const SAMPLE = join(DEFAULT_PUBLIC_DIR, 'static', 'sample.html');
const PACKAGE_JSON = readFileSync(new URL('../package.json', import.meta.url), 'utf8');

describe('static files from the installation public folder', () => {
  let rotor: TestServer;

  before(async () => {
    rotor = await startServer();
  });

  after(async () => {
    await rotor?.close();
  });

  test('GET sample.html returns the file', async () => {
    const expected = readFileSync(SAMPLE);
    const response = await rawRequest(rotor.url, '/static/sample.html');
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(response.headers['content-length'], String(expected.length));
    assert.ok(response.body.equals(expected), 'body differs from public/static/sample.html');
  });

  test('validators have the nginx form', async () => {
    const stats = statSync(SAMPLE);
    const response = await rawRequest(rotor.url, '/static/sample.html');
    const mtimeSeconds = Math.floor(stats.mtimeMs / 1000);
    assert.equal(response.headers.etag, `"${mtimeSeconds.toString(16)}-${stats.size.toString(16)}"`);
    assert.equal(response.headers['last-modified'], new Date(mtimeSeconds * 1000).toUTCString());
  });

  test('HEAD returns headers without a body', async () => {
    const size = statSync(SAMPLE).size;
    const response = await rawRequest(rotor.url, '/static/sample.html', 'HEAD');
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-length'], String(size));
    assert.equal(response.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(response.body.length, 0);
  });

  test('If-None-Match with the ETag returns 304', async () => {
    const first = await rawRequest(rotor.url, '/static/sample.html');
    const etag = String(first.headers.etag);
    const response = await rawRequest(rotor.url, '/static/sample.html', 'GET', { 'If-None-Match': etag });
    assert.equal(response.status, 304);
    assert.equal(response.body.length, 0);
    assert.equal(response.headers.etag, etag);

    const other = await rawRequest(rotor.url, '/static/sample.html', 'GET', { 'If-None-Match': '"0-0"' });
    assert.equal(other.status, 200);
  });

  test('If-Modified-Since returns 304 or 200', async () => {
    const first = await rawRequest(rotor.url, '/static/sample.html');
    const lastModified = String(first.headers['last-modified']);
    const unchanged = await rawRequest(rotor.url, '/static/sample.html', 'GET', { 'If-Modified-Since': lastModified });
    assert.equal(unchanged.status, 304);

    const older = new Date(Date.parse(lastModified) - 60_000).toUTCString();
    const changed = await rawRequest(rotor.url, '/static/sample.html', 'GET', { 'If-Modified-Since': older });
    assert.equal(changed.status, 200);
  });

  test('missing file returns 404', async () => {
    const response = await rawRequest(rotor.url, '/static/no-such-file.html');
    assert.equal(response.status, 404);
  });

  test('overlong name returns 404', async () => {
    const response = await rawRequest(rotor.url, `/static/${'a'.repeat(300)}.html`);
    assert.equal(response.status, 404);
  });

  test('directory returns 404', async () => {
    for (const path of ['/static/', '/static']) {
      const response = await rawRequest(rotor.url, path);
      assert.equal(response.status, 404, path);
    }
  });

  test('POST returns 405 with Allow', async () => {
    const response = await rawRequest(rotor.url, '/static/sample.html', 'POST');
    assert.equal(response.status, 405);
    assert.equal(response.headers.allow, 'GET, HEAD');
  });

  test('traversal attempts never return the file', async () => {
    const attempts = [
      '/static/../package.json',
      '/static/%2e%2e/package.json',
      '/static/%2E%2E/%2e%2e/package.json',
      '/static/.%2e/package.json',
      '/static/..%2fpackage.json',
      '/static/..%2Fpackage.json',
      '/static/%2e%2e%2fpackage.json',
      '/static/..%5cpackage.json',
      '/static/..\\package.json',
      '/static/%2e%2e%2f%2e%2e%2fmain%2fpackage.json',
      '/static//work/main/package.json',
      '/static/%2fetc%2fpasswd',
      '/static/sample.html%00.txt',
      '/static/%',
      '/static/%zz',
    ];
    for (const path of attempts) {
      const response = await rawRequest(rotor.url, path);
      assert.ok(response.status === 400 || response.status === 404, `${path} returned ${response.status}`);
      assert.ok(!response.body.toString('utf8').includes('"name": "rotor"'), `${path} returned package.json`);
      assert.notEqual(response.body.toString('utf8'), PACKAGE_JSON, `${path} returned package.json`);
    }
  });
});

describe('static files from a configured public_dir', () => {
  let rotor: TestServer;
  let folder: { path: string; remove(): void };

  before(async () => {
    folder = tempDir('rotor-public-');
    mkdirSync(join(folder.path, 'static', 'nested'), { recursive: true });
    rotor = await startServer({ public_dir: folder.path });
  });

  after(async () => {
    await rotor?.close();
    folder?.remove();
  });

  test('Content-Type follows the extension', async () => {
    const cases: Array<[string, string]> = [
      ['a.css', 'text/css; charset=utf-8'],
      ['b.js', 'application/javascript; charset=utf-8'],
      ['c.json', 'application/json; charset=utf-8'],
      ['d.svg', 'image/svg+xml'],
      ['e.PNG', 'image/png'],
      ['f.txt', 'text/plain; charset=utf-8'],
      ['g.unknown', 'application/octet-stream'],
      ['no-extension', 'application/octet-stream'],
    ];
    for (const [name, type] of cases) {
      writeFileSync(join(folder.path, 'static', name), `content of ${name}\n`);
      const response = await rawRequest(rotor.url, `/static/${name}`);
      assert.equal(response.status, 200, name);
      assert.equal(response.headers['content-type'], type, name);
      assert.equal(response.body.toString('utf8'), `content of ${name}\n`, name);
    }
  });

  test('nested and percent-encoded names are served', async () => {
    writeFileSync(join(folder.path, 'static', 'nested', 'a file.txt'), 'nested\n');
    const response = await rawRequest(rotor.url, '/static/nested/a%20file.txt');
    assert.equal(response.status, 200);
    assert.equal(response.body.toString('utf8'), 'nested\n');
  });

  test('files outside static/ are not served', async () => {
    writeFileSync(join(folder.path, 'secret.txt'), 'secret\n');
    const response = await rawRequest(rotor.url, '/static/%2e%2e/secret.txt');
    assert.ok(response.status === 400 || response.status === 404, `returned ${response.status}`);
    const encodedSlash = await rawRequest(rotor.url, '/static/..%2fsecret.txt');
    assert.equal(encodedSlash.status, 400);
    const direct = await rawRequest(rotor.url, '/secret.txt');
    assert.equal(direct.status, 404);
  });

  test('file larger than the memory cache is streamed whole', async () => {
    const large = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < large.length; i++) large[i] = (i * 31) & 0xff;
    writeFileSync(join(folder.path, 'static', 'large.bin'), large);
    const response = await rawRequest(rotor.url, '/static/large.bin');
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-length'], String(large.length));
    assert.ok(response.body.equals(large), 'streamed body differs from the file');

    const head = await rawRequest(rotor.url, '/static/large.bin', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(large.length));
    assert.equal(head.body.length, 0);
  });

  test('changed file is served after revalidation', async () => {
    const file = join(folder.path, 'static', 'changing.txt');
    writeFileSync(file, 'version one\n');
    const first = await rawRequest(rotor.url, '/static/changing.txt');
    assert.equal(first.body.toString('utf8'), 'version one\n');

    writeFileSync(file, 'version two, longer\n');
    const body = await waitFor(
      async () => {
        const response = await rawRequest(rotor.url, '/static/changing.txt');
        const text = response.body.toString('utf8');
        return text === 'version two, longer\n' ? text : false;
      },
      5_000,
      'the changed file to be served',
    );
    assert.equal(body, 'version two, longer\n');
  });

  test('deleted file returns 404 after revalidation', async () => {
    const file = join(folder.path, 'static', 'deleted.txt');
    writeFileSync(file, 'soon gone\n');
    assert.equal((await rawRequest(rotor.url, '/static/deleted.txt')).status, 200);
    rmSync(file);
    await waitFor(async () => (await rawRequest(rotor.url, '/static/deleted.txt')).status === 404, 5_000, 'the deleted file to return 404');
  });
});

describe('status page', () => {
  let rotor: TestServer;

  before(async () => {
    rotor = await startServer();
  });

  after(async () => {
    await rotor?.close();
  });

  test('GET returns the HTML page', async () => {
    const response = await rawRequest(rotor.url, '/status');
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(response.headers['cache-control'], STATUS_CACHE_CONTROL);
    assert.equal(response.headers['content-length'], String(response.body.length));
    const html = response.body.toString('utf8');
    assert.ok(html.includes(STATUS_MARKER), 'the status marker is missing');
    assert.ok(response.body.length > 4096, `page of ${response.body.length} bytes is too small`);
    assert.ok(response.body.length < 65536, `page of ${response.body.length} bytes is too large`);
    for (const label of ['Uptime, seconds', 'Clients', 'Users', 'Channels', 'Subscriptions', 'Resident set size', 'Actor pool threads']) {
      assert.ok(html.includes(`<th>${label}</th>`), `row ${label} is missing`);
    }
    assert.ok(html.includes(rotor.server.node.uid), 'the node ID is missing');
  });

  test('page length stays the same between requests', async () => {
    const first = await rawRequest(rotor.url, '/status');
    await rotor.api('publish', { channel: 'news', data: { text: 'hello' } });
    const second = await rawRequest(rotor.url, '/status');
    assert.equal(second.body.length, first.body.length);
  });

  test('HEAD returns headers without a body', async () => {
    const response = await rawRequest(rotor.url, '/status', 'HEAD');
    assert.equal(response.status, 200);
    assert.ok(Number(response.headers['content-length']) > 4096);
    assert.equal(response.body.length, 0);
  });

  test('POST returns 405', async () => {
    const response = await rawRequest(rotor.url, '/status', 'POST');
    assert.equal(response.status, 405);
  });

  test('secrets absent, node name escaped', async () => {
    const secretive = await startServer({ token_hmac_secret_key: 'hmac-secret-value', name: 'nœud <one>' });
    try {
      const response = await rawRequest(secretive.url, '/status');
      const html = response.body.toString('utf8');
      assert.ok(!html.includes('hmac-secret-value'), 'the HMAC secret is on the page');
      assert.ok(!html.includes('test-api-key'), 'the API key is on the page');
      assert.ok(html.includes('n&#339;ud &#60;one&#62;'), 'the node name is not escaped');
      assert.ok(/^[\x00-\x7f]*$/.test(html), 'the page is not pure ASCII');
      assert.equal(response.headers['content-length'], String(response.body.length));
    } finally {
      await secretive.close();
    }
  });
});
