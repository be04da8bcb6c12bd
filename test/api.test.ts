import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CentClient, CentException } from 'cent.js';
import { API_KEY, startServer, waitFor, type TestServer } from './helpers/server.js';

/** Channel options of the shared server: history on at the top level, one namespace per case. */
const OPTIONS = {
  history_size: 10,
  history_ttl: '300s',
  namespaces: [
    { name: 'plain' },
    { name: 'small', history_size: 3, history_ttl: '300s' },
    { name: 'live', presence: true },
    { name: 'brief', history_size: 10, history_ttl: '300ms' },
  ],
};

interface RawResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** Sends one HTTP request and returns status, headers and body text. */
async function request(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawResponse> {
  const response = await fetch(url, { method: init.method ?? 'POST', headers: init.headers ?? {}, body: init.body });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** Calls `POST /api/<method>` with the test key and extra headers. */
function call(rotor: TestServer, method: string, params: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  return request(`${rotor.url}/api/${method}`, {
    headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(params),
  });
}

type Publication = { offset: number; data?: unknown; b64data?: string; tags?: Record<string, string> };

function offsetsOf(result: { publications: Publication[] }): number[] {
  return result.publications.map((publication) => publication.offset);
}

async function publishMany(rotor: TestServer, channel: string, count: number): Promise<{ offset: number; epoch: string }[]> {
  const positions = [];
  for (let n = 1; n <= count; n++) {
    const reply = await rotor.api('publish', { channel, data: { n } });
    assert.equal(reply.error, undefined);
    positions.push(reply.result as { offset: number; epoch: string });
  }
  return positions;
}

describe('api authentication', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer();
  });
  after(() => rotor.close());

  const info = (headers: Record<string, string>, query = ''): Promise<RawResponse> =>
    request(`${rotor.url}/api/info${query}`, { headers, body: '{}' });

  test('X-API-Key header accepted', async () => {
    const response = await info({ 'X-API-Key': API_KEY });
    assert.equal(response.status, 200);
    assert.ok(JSON.parse(response.text).result);
  });

  test('Authorization apikey accepted', async () => {
    for (const scheme of ['apikey', 'APIKEY', 'ApiKey']) {
      const response = await info({ Authorization: `${scheme} ${API_KEY}` });
      assert.equal(response.status, 200, scheme);
    }
  });

  test('api_key query accepted', async () => {
    const response = await info({}, `?api_key=${API_KEY}`);
    assert.equal(response.status, 200);
  });

  test('missing key is 401', async () => {
    const response = await info({});
    assert.equal(response.status, 401);
    assert.equal(JSON.parse(response.text).error.code, 101);
  });

  test('empty header falls through', async () => {
    const response = await info({ 'X-API-Key': '', Authorization: `apikey ${API_KEY}` });
    assert.equal(response.status, 200);
  });

  test('query after wrong header', async () => {
    const response = await info({ 'X-API-Key': 'wrong' }, `?api_key=${API_KEY}`);
    assert.equal(response.status, 200);
  });

  test('401 in transport mode', async () => {
    const response = await info({ 'X-Centrifugo-Error-Mode': 'transport' });
    assert.equal(response.status, 401);
    assert.equal(JSON.parse(response.text).code, 101);
  });

  test('wrong key is 401', async () => {
    const attempts: Array<[Record<string, string>, string]> = [
      [{ 'X-API-Key': 'wrong' }, ''],
      [{ 'X-API-Key': `${API_KEY}x` }, ''],
      [{ Authorization: 'apikey wrong' }, ''],
      [{ Authorization: `Bearer ${API_KEY}` }, ''],
      [{}, '?api_key=wrong'],
    ];
    for (const [headers, query] of attempts) {
      const response = await info(headers, query);
      assert.equal(response.status, 401, JSON.stringify({ headers, query }));
    }
  });

  test('legacy endpoint needs key', async () => {
    const response = await request(`${rotor.url}/api`, { body: '{"method":"info","params":{}}' });
    assert.equal(response.status, 401);
  });

  test('api_insecure needs no key', async () => {
    const insecure = await startServer({ api_insecure: true, api_key: '' });
    try {
      const response = await request(`${insecure.url}/api/info`, { body: '{}' });
      assert.equal(response.status, 200);
      const publish = await request(`${insecure.url}/api/publish`, { body: '{"channel":"open","data":{}}' });
      assert.equal(publish.status, 200);
      assert.deepEqual(JSON.parse(publish.text), { result: {} });
    } finally {
      await insecure.close();
    }
  });

  test('no key configured rejects all', async () => {
    const locked = await startServer({ api_key: '' });
    try {
      const attempts: Array<Record<string, string>> = [{}, { 'X-API-Key': '' }, { 'X-API-Key': API_KEY }, { Authorization: 'apikey ' }];
      for (const headers of attempts) {
        const response = await request(`${locked.url}/api/info`, { headers, body: '{}' });
        assert.equal(response.status, 401, JSON.stringify(headers));
      }
      const legacy = await request(`${locked.url}/api`, { body: '{"method":"info"}' });
      assert.equal(legacy.status, 401);
    } finally {
      await locked.close();
    }
  });
});

describe('api errors', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer({ ...OPTIONS, api_max_body_size: 1024 });
  });
  after(() => rotor.close());

  const errorCode = async (method: string, params: unknown): Promise<number | undefined> => {
    const response = await call(rotor, method, params);
    assert.equal(response.status, 200, `${method} HTTP status`);
    return (JSON.parse(response.text) as { error?: { code: number } }).error?.code;
  };

  test('malformed JSON is 400', async () => {
    const response = await request(`${rotor.url}/api/publish`, { headers: { 'X-API-Key': API_KEY }, body: '{"channel":' });
    assert.equal(response.status, 400);
  });

  test('body over limit is 413', async () => {
    const body = JSON.stringify({ channel: 'big', data: 'x'.repeat(2000) });
    const response = await request(`${rotor.url}/api/publish`, { headers: { 'X-API-Key': API_KEY }, body });
    assert.equal(response.status, 413);
    assert.equal(JSON.parse(response.text).error.code, 107);
    const history = await rotor.api('history', { channel: 'big', limit: -1 });
    assert.deepEqual(history.result.publications, []);
  });

  test('body at limit accepted', async () => {
    const prefix = JSON.stringify({ channel: 'fits', data: '' });
    const body = JSON.stringify({ channel: 'fits', data: 'x'.repeat(1024 - prefix.length) });
    assert.equal(Buffer.byteLength(body), 1024);
    const response = await request(`${rotor.url}/api/publish`, { headers: { 'X-API-Key': API_KEY }, body });
    assert.equal(response.status, 200);
  });

  test('legacy body over limit', async () => {
    const line = JSON.stringify({ method: 'publish', params: { channel: 'big', data: 'x'.repeat(2000) } });
    const response = await request(`${rotor.url}/api`, { headers: { 'X-API-Key': API_KEY }, body: line });
    assert.equal(response.status, 413);
  });

  test('unknown method path is 404', async () => {
    const response = await call(rotor, 'no_such_method', {});
    assert.equal(response.status, 404);
    assert.equal(JSON.parse(response.text).error.code, 104);
    const nested = await call(rotor, 'publish/extra', {});
    assert.equal(nested.status, 404);
    const inherited = await call(rotor, 'toString', {});
    assert.equal(inherited.status, 404);
  });

  test('non-POST is 405', async () => {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const response = await request(`${rotor.url}/api/publish`, { method, headers: { 'X-API-Key': API_KEY } });
      assert.equal(response.status, 405, method);
    }
    const legacy = await request(`${rotor.url}/api`, { method: 'GET', headers: { 'X-API-Key': API_KEY } });
    assert.equal(legacy.status, 405);
  });

  test('unknown namespace is 102', async () => {
    assert.equal(await errorCode('publish', { channel: 'nope:room', data: {} }), 102);
    assert.equal(await errorCode('history', { channel: 'nope:room' }), 102);
    assert.equal(await errorCode('presence', { channel: 'nope:room' }), 102);
  });

  test('history off is 108', async () => {
    assert.equal(await errorCode('history', { channel: 'plain:room' }), 108);
    assert.equal(await errorCode('history_remove', { channel: 'plain:room' }), 108);
  });

  test('presence off is 108', async () => {
    assert.equal(await errorCode('presence', { channel: 'plain:room' }), 108);
    assert.equal(await errorCode('presence_stats', { channel: 'plain:room' }), 108);
    assert.equal(await errorCode('presence', { channel: 'room' }), 108);
  });

  test('presence on returns empty', async () => {
    const presence = await rotor.api('presence', { channel: 'live:room' });
    assert.deepEqual(presence.result, { presence: {} });
    const stats = await rotor.api('presence_stats', { channel: 'live:room' });
    assert.deepEqual(stats.result, { num_clients: 0, num_users: 0 });
  });

  test('empty channel is 107', async () => {
    assert.equal(await errorCode('publish', { channel: '', data: {} }), 107);
    assert.equal(await errorCode('publish', { data: {} }), 107);
    assert.equal(await errorCode('history', { channel: '' }), 107);
  });

  test('missing data is 107', async () => {
    assert.equal(await errorCode('publish', { channel: 'room' }), 107);
    assert.equal(await errorCode('publish', { channel: 'room', data: null }), 107);
    assert.equal(await errorCode('publish', { channel: 'room', b64data: '' }), 107);
  });

  test('bad b64data is 107', async () => {
    for (const b64data of ['not base64!', 'abc', '@@@@', 42]) {
      assert.equal(await errorCode('publish', { channel: 'room', b64data }), 107, JSON.stringify(b64data));
    }
  });

  test('wrong field types are 107', async () => {
    assert.equal(await errorCode('publish', { channel: 42, data: {} }), 107);
    assert.equal(await errorCode('history', { channel: 'room', limit: 'all' }), 107);
    assert.equal(await errorCode('history', { channel: 'room', reverse: 'yes' }), 107);
    assert.equal(await errorCode('history', { channel: 'room', since: { offset: -1 } }), 107);
    assert.equal(await errorCode('publish', { channel: 'room', data: {}, tags: { a: 1 } }), 107);
    assert.equal(await errorCode('publish', []), 107);
  });

  test('since with other epoch is 112', async () => {
    const [position] = await publishMany(rotor, 'epoch-check', 2);
    assert.equal(await errorCode('history', { channel: 'epoch-check', limit: -1, since: { offset: 1, epoch: `${position!.epoch}x` } }), 112);
    assert.equal(await errorCode('history', { channel: 'epoch-check', limit: 0, since: { offset: 0, epoch: 'other' } }), 112);
  });

  test('reverse since offset 0 is 107', async () => {
    const [position] = await publishMany(rotor, 'reverse-zero', 1);
    assert.equal(await errorCode('history', { channel: 'reverse-zero', limit: -1, reverse: true, since: { offset: 0, epoch: position!.epoch } }), 107);
  });
});

describe('transport error mode', () => {
  const cases: Array<[string, string, unknown, number, number]> = [
    ['unknown namespace', 'publish', { channel: 'nope:x', data: {} }, 102, 404],
    ['bad request', 'publish', { channel: '', data: {} }, 107, 400],
    ['not available', 'history', { channel: 'plain:x' }, 108, 400],
    ['unrecoverable position', 'history', { channel: 'transport-epoch', since: { offset: 0, epoch: 'other' } }, 112, 416],
  ];

  describe('by header', () => {
    let rotor: TestServer;
    before(async () => {
      rotor = await startServer(OPTIONS);
    });
    after(() => rotor.close());

    for (const [name, method, params, code, status] of cases) {
      test(`${name} is HTTP ${status}`, async () => {
        const response = await call(rotor, method, params, { 'X-Centrifugo-Error-Mode': 'transport' });
        assert.equal(response.status, status);
        const body = JSON.parse(response.text) as { code: number; message: string; error?: unknown };
        assert.equal(body.code, code);
        assert.equal(typeof body.message, 'string');
        assert.equal(body.error, undefined);
      });
    }

    test('header value case-insensitive', async () => {
      const response = await call(rotor, 'publish', { channel: 'nope:x', data: {} }, { 'X-Centrifugo-Error-Mode': 'Transport' });
      assert.equal(response.status, 404);
    });

    test('success keeps result body', async () => {
      const response = await call(rotor, 'publish', { channel: 'transport-ok', data: {} }, { 'X-Centrifugo-Error-Mode': 'transport' });
      assert.equal(response.status, 200);
      assert.equal(JSON.parse(response.text).result.offset, 1);
    });

    test('without header errors are 200', async () => {
      const response = await call(rotor, 'publish', { channel: 'nope:x', data: {} });
      assert.equal(response.status, 200);
      assert.equal(JSON.parse(response.text).error.code, 102);
    });
  });

  describe('by config', () => {
    let rotor: TestServer;
    before(async () => {
      rotor = await startServer({ ...OPTIONS, api_error_mode: 'transport' });
    });
    after(() => rotor.close());

    for (const [name, method, params, code, status] of cases) {
      test(`${name} is HTTP ${status}`, async () => {
        const response = await call(rotor, method, params);
        assert.equal(response.status, status);
        const body = JSON.parse(response.text) as { code: number; message: string };
        assert.equal(body.code, code);
        assert.equal(typeof body.message, 'string');
      });
    }

    test('broadcast keeps per-channel errors', async () => {
      const response = await call(rotor, 'broadcast', { channels: ['transport-a', 'nope:x'], data: {} });
      assert.equal(response.status, 200);
      const { responses } = JSON.parse(response.text).result as { responses: Array<{ result?: unknown; error?: { code: number } }> };
      assert.equal(responses[1]!.error!.code, 102);
    });
  });
});

describe('api methods', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer(OPTIONS);
  });
  after(() => rotor.close());

  test('publish with history returns position', async () => {
    const first = await rotor.api('publish', { channel: 'pos', data: { text: 'one' } });
    const second = await rotor.api('publish', { channel: 'pos', data: { text: 'two' } });
    assert.equal(first.result.offset, 1);
    assert.equal(second.result.offset, 2);
    assert.equal(typeof first.result.epoch, 'string');
    assert.notEqual(first.result.epoch, '');
    assert.equal(second.result.epoch, first.result.epoch);
  });

  test('publish without history returns empty', async () => {
    const reply = await rotor.api('publish', { channel: 'plain:room', data: { text: 'hi' } });
    assert.deepEqual(reply, { result: {} });
  });

  test('skip_history returns empty', async () => {
    const reply = await rotor.api('publish', { channel: 'skipped', data: {}, skip_history: true });
    assert.deepEqual(reply, { result: {} });
    const history = await rotor.api('history', { channel: 'skipped', limit: -1 });
    assert.deepEqual(history.result.publications, []);
    assert.equal(history.result.offset, 0);
  });

  test('publication fields round-trip', async () => {
    await rotor.api('publish', { channel: 'fields', data: { text: 'hi', list: [1, 2] }, tags: { kind: 'greeting' } });
    await rotor.api('publish', { channel: 'fields', b64data: Buffer.from('{"via":"b64"}').toString('base64') });
    await rotor.api('publish', { channel: 'fields', b64data: Buffer.from([0xff, 0x00, 0x01]).toString('base64') });
    await rotor.api('publish', { channel: 'fields', data: 'plain string' });
    const history = await rotor.api('history', { channel: 'fields', limit: -1 });
    const [json, b64json, binary, text] = history.result.publications as Publication[];
    assert.deepEqual(json!.data, { text: 'hi', list: [1, 2] });
    assert.deepEqual(json!.tags, { kind: 'greeting' });
    assert.deepEqual(b64json!.data, { via: 'b64' });
    assert.equal(binary!.data, undefined);
    assert.equal(binary!.b64data, Buffer.from([0xff, 0x00, 0x01]).toString('base64'));
    assert.equal(text!.data, 'plain string');
  });

  test('broadcast returns per-channel responses', async () => {
    const reply = await rotor.api('broadcast', { channels: ['bc-a', 'plain:bc', 'nope:bc', 'bc-b', ''], data: { n: 1 } });
    assert.equal(reply.error, undefined);
    const responses = reply.result.responses as Array<{ result?: { offset?: number; epoch?: string }; error?: { code: number } }>;
    assert.equal(responses.length, 5);
    assert.equal(responses[0]!.result!.offset, 1);
    assert.deepEqual(responses[1], { result: {} });
    assert.equal(responses[2]!.error!.code, 102);
    assert.equal(responses[3]!.result!.offset, 1);
    assert.equal(responses[4]!.error!.code, 107);
    const history = await rotor.api('history', { channel: 'bc-b', limit: -1 });
    assert.deepEqual(history.result.publications[0].data, { n: 1 });
  });

  test('broadcast without channels or data', async () => {
    const noChannels = await rotor.api('broadcast', { channels: [], data: {} });
    assert.equal(noChannels.error?.code, 107);
    const noData = await rotor.api('broadcast', { channels: ['bc-c'] });
    assert.equal(noData.error?.code, 107);
  });

  test('channels and info', async () => {
    const channels = await rotor.api('channels', {});
    assert.deepEqual(channels.result, { channels: {} });
    const filtered = await rotor.api('channels', { pattern: 'chat:*' });
    assert.deepEqual(filtered.result, { channels: {} });
    const info = await rotor.api('info', {});
    const [node] = info.result.nodes;
    assert.equal(info.result.nodes.length, 1);
    assert.equal(typeof node.uid, 'string');
    assert.equal(typeof node.name, 'string');
    assert.equal(typeof node.version, 'string');
    assert.equal(node.num_clients, 0);
    assert.equal(typeof node.uptime, 'number');
  });

  for (const parallel of [false, true]) {
    test(`batch ${parallel ? 'parallel' : 'sequential'} keeps order`, async () => {
      const channel = `batch-${parallel ? 'parallel' : 'sequential'}`;
      const reply = await rotor.api('batch', {
        parallel,
        commands: [
          { publish: { channel, data: { n: 1 } } },
          { publish: { channel: 'nope:x', data: {} } },
          { publish: { channel, data: { n: 2 } } },
          { no_such_method: {} },
          { history: { channel: 'plain:x' } },
          { publish: { channel: 'plain:x', data: {} } },
          { publish: { channel, data: {} }, history: { channel } },
          'not an object',
          { info: {} },
        ],
      });
      assert.equal(reply.error, undefined);

      const replies = reply.result.replies as Array<Record<string, any>>;
      assert.equal(replies.length, 9);
      assert.deepEqual(Object.keys(replies[0]!), ['publish']);
      assert.equal(replies[1]!.error.code, 102);
      assert.deepEqual(Object.keys(replies[2]!), ['publish']);
      assert.equal(replies[3]!.error.code, 104);
      assert.equal(replies[4]!.error.code, 108);
      assert.deepEqual(replies[5], { publish: {} });
      assert.equal(replies[6]!.error.code, 107);
      assert.equal(replies[7]!.error.code, 107);
      assert.equal(replies[8]!.info.nodes.length, 1);

      const offsets = [replies[0]!.publish.offset, replies[2]!.publish.offset].sort();
      assert.deepEqual(offsets, [1, 2]);
      if (!parallel) assert.equal(replies[0]!.publish.offset, 1);
    });
  }

  test('batch needs commands list', async () => {
    const reply = await rotor.api('batch', { commands: { publish: {} } });
    assert.equal(reply.error?.code, 107);
  });

  test('nested batch rejected', async () => {
    const reply = await rotor.api('batch', { commands: [{ batch: { commands: [] } }] });
    assert.equal(reply.result.replies[0].error.code, 107);
  });
});

describe('legacy api endpoint', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer(OPTIONS);
  });
  after(() => rotor.close());

  const legacy = (body: string): Promise<RawResponse> => request(`${rotor.url}/api`, { headers: { Authorization: `apikey ${API_KEY}` }, body });

  test('commands by name and number', async () => {
    const commands = [
      { id: 1, method: 'publish', params: { channel: 'legacy', data: { n: 1 } } },
      { id: 2, method: 0, params: { channel: 'legacy', data: { n: 2 } } },
      { id: 3, method: 'HISTORY', params: { channel: 'legacy', limit: -1 } },
      { id: 4, method: 6, params: { channel: 'nope:x' } },
      { method: 'info', params: {} },
      { id: 6, method: 'no_such_method', params: {} },
      { id: 7, method: 9 },
      { id: 8, method: 42, params: {} },
      { id: 0, method: 'channels', params: {} },
      { id: 10, method: 7, params: { channel: 'legacy' } },
    ];
    const response = await legacy(commands.map((command) => JSON.stringify(command)).join('\n'));

    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(response.text.endsWith('\n'), false);
    const replies = response.text.split('\n').map((line) => JSON.parse(line) as { id?: number; result?: any; error?: { code: number } });
    assert.equal(replies.length, commands.length);
    assert.deepEqual(
      replies.map((reply) => reply.id),
      [1, 2, 3, 4, undefined, 6, 7, 8, undefined, 10],
    );

    assert.equal(replies[0]!.result.offset, 1);
    assert.equal(replies[1]!.result.offset, 2);
    assert.deepEqual(offsetsOf(replies[2]!.result), [1, 2]);
    assert.equal(replies[3]!.error!.code, 102);
    assert.equal(replies[4]!.result.nodes.length, 1);
    assert.equal(replies[5]!.error!.code, 104);
    assert.equal(replies[6]!.result.nodes.length, 1);
    assert.equal(replies[7]!.error!.code, 104);
    assert.deepEqual(replies[8]!.result, { channels: {} });
    assert.deepEqual(replies[9]!.result, {});
  });

  test('blank lines skipped', async () => {
    const response = await legacy('\n{"id":1,"method":"info"}\n\n{"id":2,"method":"info"}\n');
    assert.equal(response.status, 200);
    assert.equal(response.text.split('\n').length, 2);
  });

  test('empty body is 400', async () => {
    assert.equal((await legacy('')).status, 400);
    assert.equal((await legacy('\n\n')).status, 400);
  });

  test('malformed command is 400', async () => {
    assert.equal((await legacy('{"method":"info"}\n{"method":')).status, 400);
    assert.equal((await legacy('[1,2]')).status, 400);
  });

  test('bad params per command', async () => {
    const response = await legacy('{"id":1,"method":"publish","params":[]}\n{"id":2,"method":"publish","params":{"channel":"legacy-ok","data":1}}');
    const [first, second] = response.text.split('\n').map((line) => JSON.parse(line));
    assert.equal(first.error.code, 107);
    assert.equal(second.result.offset, 1);
  });
});

describe('history through api', () => {
  let rotor: TestServer;
  let epoch: string;
  before(async () => {
    rotor = await startServer(OPTIONS);
    const positions = await publishMany(rotor, 'hist', 5);
    epoch = positions[0]!.epoch;
  });
  after(() => rotor.close());

  const cases: Array<[string, Record<string, unknown>, number[]]> = [
    ['no limit returns position', {}, []],
    ['limit 0 returns position', { limit: 0 }, []],
    ['limit -1 returns all', { limit: -1 }, [1, 2, 3, 4, 5]],
    ['limit 2 returns oldest', { limit: 2 }, [1, 2]],
    ['limit above size', { limit: 100 }, [1, 2, 3, 4, 5]],
    ['reverse limit 2', { limit: 2, reverse: true }, [5, 4]],
    ['reverse all', { limit: -1, reverse: true }, [5, 4, 3, 2, 1]],
    ['since offset 2', { limit: -1, since: { offset: 2 } }, [3, 4, 5]],
    ['since offset 2 limit 1', { limit: 1, since: { offset: 2 } }, [3]],
    ['since offset 0', { limit: -1, since: { offset: 0 } }, [1, 2, 3, 4, 5]],
    ['since top offset', { limit: -1, since: { offset: 5 } }, []],
    ['since past top', { limit: -1, since: { offset: 9 } }, []],
    ['reverse since 4', { limit: -1, reverse: true, since: { offset: 4 } }, [3, 2, 1]],
    ['reverse since 4 limit 2', { limit: 2, reverse: true, since: { offset: 4 } }, [3, 2]],
    ['reverse since 1', { limit: -1, reverse: true, since: { offset: 1 } }, []],
    ['reverse since past top', { limit: -1, reverse: true, since: { offset: 9 } }, [5, 4, 3, 2, 1]],
  ];
  for (const [name, query, expected] of cases) {
    test(name, async () => {
      const since = query.since as { offset: number } | undefined;
      const params = { channel: 'hist', ...query, ...(since ? { since: { ...since, epoch } } : {}) };
      const reply = await rotor.api('history', params);
      assert.equal(reply.error, undefined);
      assert.deepEqual(offsetsOf(reply.result), expected);
      assert.equal(reply.result.offset, 5);
      assert.equal(reply.result.epoch, epoch);
    });
  }

  test('since without epoch accepted', async () => {
    const reply = await rotor.api('history', { channel: 'hist', limit: -1, since: { offset: 3 } });
    assert.deepEqual(offsetsOf(reply.result), [4, 5]);
  });

  test('publication data in order', async () => {
    const reply = await rotor.api('history', { channel: 'hist', limit: -1 });
    assert.deepEqual(
      reply.result.publications.map((publication: Publication) => publication.data),
      [1, 2, 3, 4, 5].map((n) => ({ n })),
    );
  });

  test('unknown channel has empty stream', async () => {
    const reply = await rotor.api('history', { channel: 'never-published', limit: -1 });
    assert.deepEqual(reply.result.publications, []);
    assert.equal(reply.result.offset, 0);
    assert.notEqual(reply.result.epoch, '');
    const publish = await rotor.api('publish', { channel: 'never-published', data: {} });
    assert.equal(publish.result.offset, 1);
    assert.equal(publish.result.epoch, reply.result.epoch);
  });

  test('trimmed by history_size', async () => {
    const positions = await publishMany(rotor, 'small:trim', 5);
    const reply = await rotor.api('history', { channel: 'small:trim', limit: -1 });
    assert.deepEqual(offsetsOf(reply.result), [3, 4, 5]);
    assert.equal(reply.result.offset, 5);
    assert.equal(reply.result.epoch, positions[0]!.epoch);
    const evicted = await rotor.api('history', { channel: 'small:trim', limit: -1, since: { offset: 1, epoch: positions[0]!.epoch } });
    assert.equal(evicted.error, undefined);
    assert.deepEqual(offsetsOf(evicted.result), [3, 4, 5]);
    const reverse = await rotor.api('history', { channel: 'small:trim', limit: -1, reverse: true });
    assert.deepEqual(offsetsOf(reverse.result), [5, 4, 3]);
  });

  test('history_remove keeps position', async () => {
    const positions = await publishMany(rotor, 'removed', 3);
    const removed = await rotor.api('history_remove', { channel: 'removed' });
    assert.deepEqual(removed, { result: {} });
    const reply = await rotor.api('history', { channel: 'removed', limit: -1 });
    assert.deepEqual(reply.result.publications, []);
    assert.equal(reply.result.offset, 3);
    assert.equal(reply.result.epoch, positions[0]!.epoch);
    const next = await rotor.api('publish', { channel: 'removed', data: {} });
    assert.equal(next.result.offset, 4);
    assert.equal(next.result.epoch, positions[0]!.epoch);
    const after = await rotor.api('history', { channel: 'removed', limit: -1 });
    assert.deepEqual(offsetsOf(after.result), [4]);
  });

  test('history_remove on new channel', async () => {
    const removed = await rotor.api('history_remove', { channel: 'removed-never' });
    assert.deepEqual(removed, { result: {} });
  });

  test('history_ttl expires publications', async () => {
    const positions = await publishMany(rotor, 'brief:ttl', 3);
    const before = await rotor.api('history', { channel: 'brief:ttl', limit: -1 });
    assert.ok(before.result.publications.length > 0);
    const expired = await waitFor(
      async () => {
        const reply = await rotor.api('history', { channel: 'brief:ttl', limit: -1 });
        return reply.result.publications.length === 0 ? reply.result : undefined;
      },
      10_000,
      'history_ttl expiry',
    );
    assert.equal(expired.offset, 3);
    assert.equal(expired.epoch, positions[0]!.epoch);
    const next = await rotor.api('publish', { channel: 'brief:ttl', data: {} });
    assert.equal(next.result.offset, 4);
    assert.equal(next.result.epoch, positions[0]!.epoch);
  });
});

describe('history_meta_ttl', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer({ ...OPTIONS, history_meta_ttl: '300ms' });
  });
  after(() => rotor.close());

  test('expired stream gets new epoch', async () => {
    const positions = await publishMany(rotor, 'meta', 3);
    const oldEpoch = positions[0]!.epoch;
    const renewed = await waitFor(
      async () => {
        const reply = await rotor.api('history', { channel: 'meta', limit: -1 });
        return reply.result.epoch !== oldEpoch ? reply.result : undefined;
      },
      10_000,
      'a new epoch',
    );
    assert.deepEqual(renewed.publications, []);
    assert.equal(renewed.offset, 0);
    const next = await rotor.api('publish', { channel: 'meta', data: {} });
    assert.equal(next.result.offset, 1);
    assert.notEqual(next.result.epoch, oldEpoch);
  });

  test('publish after expiry restarts offsets', async () => {
    const positions = await publishMany(rotor, 'meta-publish', 2);
    // A channel published later serves as the clock. Once its stream has expired, this one
    // has too. Nothing touches this one meanwhile, so the publish below meets the expiry.
    const [clock] = await publishMany(rotor, 'meta-clock', 1);
    await waitFor(
      async () => {
        const reply = await rotor.api('history', { channel: 'meta-clock', limit: 0 });
        return reply.result.epoch !== clock!.epoch;
      },
      10_000,
      'clock stream expiry',
    );
    const next = await rotor.api('publish', { channel: 'meta-publish', data: {} });
    assert.equal(next.result.offset, 1);
    assert.notEqual(next.result.epoch, positions[0]!.epoch);
  });
});

describe('cent.js client', () => {
  let rotor: TestServer;
  let client: CentClient;
  before(async () => {
    rotor = await startServer(OPTIONS);
    client = new CentClient({ url: `${rotor.url}/api`, apiKey: API_KEY });
  });
  after(() => rotor.close());

  test('publish returns position', async () => {
    const first = await client.publish({ channel: 'cent', data: { n: 1 } });
    const second = await client.publish({ channel: 'cent', data: { n: 2 }, tags: { source: 'cent.js' } });
    assert.equal(first.offset, 1);
    assert.equal(second.offset, 2);
    assert.equal(second.epoch, first.epoch);
  });

  test('broadcast returns responses', async () => {
    // cent.js 6.1 types the result as an array, but it returns the server's {"responses":[...]} object.
    const reply = (await client.broadcast({ channels: ['cent-a', 'cent-b'], data: { n: 1 } })) as unknown as {
      responses: Array<{ result?: { offset?: number } }>;
    };
    assert.equal(reply.responses.length, 2);
    for (const response of reply.responses) assert.equal(response.result?.offset, 1);
  });

  test('getHistory reads publications', async () => {
    await client.publish({ channel: 'cent-history', data: { n: 1 } });
    await client.publish({ channel: 'cent-history', data: { n: 2 } });
    const history = await client.getHistory({ channel: 'cent-history', limit: -1 });
    assert.deepEqual(
      history.publications.map((publication) => publication.data),
      [{ n: 1 }, { n: 2 }],
    );
    assert.equal(history.offset, 2);
    const reverse = await client.getHistory({ channel: 'cent-history', limit: 1, reverse: true });
    assert.deepEqual(reverse.publications[0]!.data, { n: 2 });
  });

  test('getChannels and getInfo', async () => {
    const channels = await client.getChannels({ pattern: '' });
    assert.deepEqual(channels.channels, {});
    const info = await client.getInfo();
    assert.equal(info.nodes.length, 1);
    assert.equal(typeof info.nodes[0]!.uid, 'string');
  });

  test('errors raise CentException', async () => {
    await assert.rejects(client.publish({ channel: 'nope:x', data: {} }), CentException);
  });

  test('wrong key raises CentException', async () => {
    const unauthorized = new CentClient({ url: `${rotor.url}/api`, apiKey: 'wrong' });
    await assert.rejects(unauthorized.publish({ channel: 'cent-denied', data: {} }), CentException);
    const history = await client.getHistory({ channel: 'cent-denied', limit: -1 });
    assert.deepEqual(history.publications, []);
  });

  test('oversized publish raises CentException', async () => {
    const limited = await startServer({ ...OPTIONS, api_max_body_size: 1024 });
    try {
      const limitedClient = new CentClient({ url: `${limited.url}/api`, apiKey: API_KEY });
      await assert.rejects(limitedClient.publish({ channel: 'cent-big', data: { text: 'x'.repeat(2000) } }), CentException);
    } finally {
      await limited.close();
    }
  });

  test('pipeline uses legacy endpoint', async () => {
    const results = await client.pipeline([
      { method: 'publish', params: { channel: 'cent-pipe', data: { n: 1 } } },
      { method: 'history', params: { channel: 'cent-pipe', limit: -1 } },
    ] as never);
    assert.equal(results.length, 2);
    assert.equal((results[0] as { offset: number }).offset, 1);
    assert.equal((results[1] as { publications: unknown[] }).publications.length, 1);
  });
});
