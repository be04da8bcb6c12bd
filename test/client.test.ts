/**
 * The official `centrifuge` client against a real server: connection authentication and
 * token refresh, subscriptions and their permissions, publish, history and server-side
 * subscriptions.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { createClient, makeToken, nextEvent, nowSeconds, RawClient, SECRET, type TestClient } from './helpers/client.js';
import { startServer, waitFor, type TestServer } from './helpers/server.js';

/** Clients a test created, closed after each test. */
const clients: TestClient[] = [];
const rawClients: RawClient[] = [];

function track(client: TestClient): TestClient {
  clients.push(client);
  return client;
}

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  for (const raw of rawClients.splice(0)) raw.close();
});

describe('connection authentication', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer({
      token_hmac_secret_key: SECRET,
      client_expired_close_delay: '2s',
      client_expired_sub_close_delay: '2s',
      namespaces: [{ name: 'sec' }],
    });
  });
  after(() => rotor.close());

  test('token connect succeeds', async () => {
    const token = await makeToken({ sub: 'alice', exp: nowSeconds() + 3600 });
    const client = track(createClient(rotor.url, { token }));
    const connected = nextEvent(client.centrifuge, 'connected');
    client.centrifuge.connect();
    const ctx = await connected;

    assert.equal(typeof ctx.client, 'string');
    assert.notEqual(ctx.client, '');
    // The connection belongs to the token's user: a disconnect of that user reaches it.
    const disconnected = nextEvent(client.centrifuge, 'disconnected');
    await rotor.api('disconnect', { user: 'alice' });
    assert.equal((await disconnected).code, 3503);
  });

  test('missing credentials close 3501', async () => {
    const client = track(createClient(rotor.url));
    const disconnected = nextEvent(client.centrifuge, 'disconnected');
    client.centrifuge.connect();

    assert.equal((await disconnected).code, 3501);
  });

  test('bad signature closes 3500', async () => {
    const token = await makeToken({ sub: 'alice', exp: nowSeconds() + 3600 }, 'another-secret');
    const client = track(createClient(rotor.url, { token }));
    const disconnected = nextEvent(client.centrifuge, 'disconnected');
    client.centrifuge.connect();

    assert.equal((await disconnected).code, 3500);
  });

  test('expired token gets replaced', async () => {
    let calls = 0;
    const getToken = async (): Promise<string> => {
      calls++;
      const exp = calls === 1 ? nowSeconds() - 60 : nowSeconds() + 3600;
      return makeToken({ sub: 'alice', exp });
    };
    const client = track(createClient(rotor.url, { getToken }));
    await client.connect();

    assert.deepEqual(
      client.errors.map((error) => error.error.code),
      [109],
    );
    assert.equal(calls, 2);
    assert.equal(client.centrifuge.state, 'connected');
  });

  test('refresh keeps connection open', async () => {
    const firstExp = nowSeconds() + 2;
    let calls = 0;
    const getToken = async (): Promise<string> => {
      calls++;
      return makeToken({ sub: 'alice', exp: calls === 1 ? firstExp : nowSeconds() + 3600 });
    };
    const client = track(createClient(rotor.url, { getToken }));
    await client.connect();

    await waitFor(() => calls >= 2, 5000, 'the refresh token request');
    // The server would close at firstExp + client_expired_close_delay without the refresh.
    const closeDeadline = firstExp * 1000 + 2000;
    await waitFor(() => Date.now() > closeDeadline + 500, 5000, 'the first token expiry to pass');

    assert.equal(client.centrifuge.state, 'connected');
    assert.deepEqual(client.transitions, [
      { state: 'connecting', code: 0 },
      { state: 'connected', code: 0 },
    ]);
    assert.deepEqual(client.errors, []);
  });

  test('missing refresh closes 3005', async () => {
    const exp = nowSeconds() + 2;
    let calls = 0;
    const getToken = async (): Promise<string> => {
      calls++;
      if (calls > 1) throw new Error('token service unavailable');
      return makeToken({ sub: 'alice', exp });
    };
    const client = track(createClient(rotor.url, { getToken }));
    await client.connect();
    const ctx = await nextEvent(client.centrifuge, 'connecting', undefined, 8000);
    const closedAt = Date.now();

    assert.equal(ctx.code, 3005);
    assert.ok(closedAt >= exp * 1000, `closed ${exp * 1000 - closedAt} ms before the token expired`);
    // client_expired_close_delay (2 s), plus one timer tick and scheduling slack.
    assert.ok(closedAt <= exp * 1000 + 2000 + 1000, `closed ${closedAt - exp * 1000} ms after the token expired`);
  });

  test('expired refresh token closes 3005', async () => {
    let calls = 0;
    const getToken = async (): Promise<string> => {
      calls++;
      return makeToken({ sub: 'alice', exp: calls === 1 ? nowSeconds() + 2 : nowSeconds() - 60 });
    };
    const client = track(createClient(rotor.url, { getToken }));
    await client.connect();
    const ctx = await nextEvent(client.centrifuge, 'connecting', undefined, 8000);

    assert.equal(ctx.code, 3005);
    assert.equal(calls, 2);
  });

  test('refresh for another user closes 3500', async () => {
    let calls = 0;
    const getToken = async (): Promise<string> => {
      calls++;
      return makeToken({ sub: calls === 1 ? 'alice' : 'mallory', exp: nowSeconds() + 2 });
    };
    const client = track(createClient(rotor.url, { getToken }));
    await client.connect();
    const ctx = await nextEvent(client.centrifuge, 'disconnected', undefined, 8000);

    assert.equal(ctx.code, 3500);
    assert.equal(calls, 2);
  });

  test('token channel in unknown namespace', async () => {
    const token = await makeToken({ sub: 'alice', channels: ['nowhere:a'] });
    const client = track(createClient(rotor.url, { token }));
    const disconnected = nextEvent(client.centrifuge, 'disconnected');
    client.centrifuge.connect();

    assert.equal((await disconnected).code, 102);
  });

  test('expired subscription token replaced', async () => {
    const client = track(createClient(rotor.url, { token: await makeToken({ sub: 'alice' }) }));
    await client.connect();
    let calls = 0;
    const sub = client.centrifuge.newSubscription('$sec:expired', {
      getToken: async () => {
        calls++;
        return makeToken({ sub: 'alice', channel: '$sec:expired', exp: calls === 1 ? nowSeconds() - 60 : nowSeconds() + 3600 });
      },
    });
    const error = nextEvent(sub, 'error');
    const subscribed = nextEvent(sub, 'subscribed');
    sub.subscribe();

    assert.equal((await error).error.code, 109);
    await subscribed;
    assert.equal(calls, 2);
  });

  test('subscription refresh keeps subscription', async () => {
    const client = track(createClient(rotor.url, { token: await makeToken({ sub: 'alice' }) }));
    await client.connect();
    const firstExp = nowSeconds() + 2;
    let calls = 0;
    const sub = client.centrifuge.newSubscription('$sec:refresh', {
      getToken: async () => {
        calls++;
        return makeToken({ sub: 'alice', channel: '$sec:refresh', exp: calls === 1 ? firstExp : nowSeconds() + 3600 });
      },
    });
    const states: string[] = [];
    sub.on('state', (ctx) => states.push(ctx.newState));
    const subscribed = nextEvent(sub, 'subscribed');
    sub.subscribe();
    await subscribed;

    await waitFor(() => calls >= 2, 5000, 'the subscription token refresh');
    // The server would unsubscribe at firstExp + client_expired_sub_close_delay without the refresh.
    await waitFor(() => Date.now() > firstExp * 1000 + 2000 + 500, 5000, 'the first token expiry to pass');

    assert.equal(sub.state, 'subscribed');
    assert.deepEqual(states, ['subscribing', 'subscribed']);
  });
});

describe('connection without token', () => {
  test('anonymous connect allowed', async () => {
    const rotor = await startServer({ allow_anonymous_connect_without_token: true, namespaces: [{ name: 'open', allow_subscribe_for_client: true }] });
    try {
      const client = track(createClient(rotor.url));
      await client.connect();
      const sub = client.centrifuge.newSubscription('open:room');
      const unsubscribed = nextEvent(sub, 'unsubscribed');
      sub.subscribe();

      // Anonymous, so allow_subscribe_for_client alone does not let it subscribe.
      assert.equal((await unsubscribed).code, 103);
      assert.equal(client.centrifuge.state, 'connected');
    } finally {
      await rotor.close();
    }
  });

  test('insecure connect allows everything', async () => {
    const rotor = await startServer({ client_insecure: true, namespaces: [{ name: 'locked' }] });
    try {
      const client = track(createClient(rotor.url));
      await client.connect();
      const sub = client.centrifuge.newSubscription('locked:room');
      const subscribed = nextEvent(sub, 'subscribed');
      sub.subscribe();
      await subscribed;
      await client.centrifuge.publish('locked:room', { text: 'hi' });

      assert.equal(sub.state, 'subscribed');
    } finally {
      await rotor.close();
    }
  });
});

/** Channel options of the subscription tests: one namespace per permission case. */
const CHANNELS = {
  token_hmac_secret_key: SECRET,
  allow_anonymous_connect_without_token: true,
  allow_user_limited_channels: true,
  channel_max_length: 64,
  client_channel_limit: 3,
  namespaces: [
    { name: 'feed', allow_subscribe_for_client: true, history_size: 300, history_ttl: '300s' },
    { name: 'open', allow_subscribe_for_client: true, allow_subscribe_for_anonymous: true },
    { name: 'chat', allow_subscribe_for_client: true, allow_publish_for_client: true },
    { name: 'readonly', allow_subscribe_for_client: true },
    { name: 'log', allow_subscribe_for_client: true, allow_history_for_client: true, history_size: 10, history_ttl: '300s' },
    { name: 'vault', allow_subscribe_for_client: true, history_size: 10, history_ttl: '300s' },
    { name: 'nohist', allow_subscribe_for_client: true, allow_history_for_client: true },
    { name: 'secret' },
  ],
};

describe('subscriptions', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer(CHANNELS);
  });
  after(() => rotor.close());

  /** Connects a client as `user`, or anonymously when `user` is undefined. */
  async function connectAs(user: string | undefined, claims: Record<string, unknown> = {}): Promise<TestClient> {
    const token = user === undefined ? '' : await makeToken({ sub: user, exp: nowSeconds() + 3600, ...claims });
    const client = track(createClient(rotor.url, { token }));
    await client.connect();
    return client;
  }

  /** Subscribes and resolves with 0 once subscribed, or with the code it was unsubscribed with. */
  async function subscribeCode(client: TestClient, channel: string, options = {}): Promise<number> {
    const sub = client.centrifuge.newSubscription(channel, options);
    const outcome = Promise.race([nextEvent(sub, 'subscribed').then(() => 0), nextEvent(sub, 'unsubscribed').then((ctx) => ctx.code as number)]);
    sub.subscribe();
    return outcome;
  }

  test('publications arrive in order', async () => {
    const client = await connectAs('alice');
    const sub = client.centrifuge.newSubscription('feed:ordered');
    const received: Array<{ offset: number; n: number }> = [];
    sub.on('publication', (ctx) => received.push({ offset: ctx.offset ?? 0, n: ctx.data.n }));
    const subscribed = nextEvent(sub, 'subscribed');
    sub.subscribe();
    await subscribed;

    const count = 200;
    const replies = await Promise.all(Array.from({ length: count }, (_, i) => rotor.api('publish', { channel: 'feed:ordered', data: { n: i + 1 } })));
    await waitFor(() => received.length >= count, 10_000, `${count} publications`);

    assert.ok(replies.every((reply) => reply.error === undefined));
    assert.equal(received.length, count);
    assert.deepEqual(
      received.map((publication) => publication.offset),
      Array.from({ length: count }, (_, i) => i + 1),
    );
    assert.deepEqual(
      received.map((publication) => publication.n).sort((a, b) => a - b),
      Array.from({ length: count }, (_, i) => i + 1),
    );
  });

  const matrix: Array<{ name: string; user: string | undefined; channel: string; code: number }> = [
    { name: 'client allowed in namespace', user: 'alice', channel: 'feed:a', code: 0 },
    { name: 'anonymous denied without option', user: undefined, channel: 'feed:a', code: 103 },
    { name: 'anonymous allowed with option', user: undefined, channel: 'open:a', code: 0 },
    { name: 'client denied without option', user: 'alice', channel: 'plain', code: 103 },
    { name: 'unknown namespace', user: 'alice', channel: 'nowhere:a', code: 102 },
    { name: 'listed user allowed', user: '42', channel: 'dialog#42,43', code: 0 },
    { name: 'second listed user allowed', user: '43', channel: 'dialog#42,43', code: 0 },
    { name: 'unlisted user denied', user: '44', channel: 'dialog#42,43', code: 103 },
    { name: 'anonymous user-limited denied', user: undefined, channel: 'dialog#42,43', code: 103 },
    { name: 'private without token denied', user: 'alice', channel: '$secret:doc', code: 103 },
    { name: 'too long channel', user: 'alice', channel: `open:${'x'.repeat(60)}`, code: 107 },
  ];
  for (const row of matrix) {
    test(`subscribe ${row.name}`, async () => {
      const client = await connectAs(row.user);
      const code = await subscribeCode(client, row.channel);

      assert.equal(code, row.code);
      assert.equal(client.centrifuge.state, 'connected');
    });
  }

  test('private channel with token', async () => {
    const client = await connectAs('alice');
    const getToken = async (): Promise<string> => makeToken({ sub: 'alice', channel: '$secret:doc', exp: nowSeconds() + 3600 });
    const code = await subscribeCode(client, '$secret:doc', { getToken });

    assert.equal(code, 0);
  });

  test('token for another channel closes 3500', async () => {
    const client = await connectAs('alice');
    const disconnected = nextEvent(client.centrifuge, 'disconnected');
    const sub = client.centrifuge.newSubscription('$secret:doc', {
      getToken: async () => makeToken({ sub: 'alice', channel: '$secret:other', exp: nowSeconds() + 3600 }),
    });
    sub.subscribe();

    assert.equal((await disconnected).code, 3500);
  });

  test('channel limit returns 106', async () => {
    const client = await connectAs('alice');
    for (const channel of ['open:l1', 'open:l2', 'open:l3']) assert.equal(await subscribeCode(client, channel), 0, channel);

    assert.equal(await subscribeCode(client, 'open:l4'), 106);
    assert.equal(client.centrifuge.state, 'connected');
  });

  test('second subscribe returns 105', async () => {
    const raw = await RawClient.open(rotor.url);
    rawClients.push(raw);
    await raw.connect();
    const first = await raw.call('subscribe', { channel: 'open:twice' });
    const second = await raw.call('subscribe', { channel: 'open:twice' });
    const after = await raw.call('unsubscribe', { channel: 'open:twice' });

    assert.equal(first.error, undefined);
    assert.equal(second.error?.code, 105);
    assert.deepEqual(after.unsubscribe, {});
    assert.equal(raw.closeCode, undefined);
  });

  test('client publish when allowed', async () => {
    const reader = await connectAs('bob');
    const sub = reader.centrifuge.newSubscription('chat:room');
    const subscribed = nextEvent(sub, 'subscribed');
    sub.subscribe();
    await subscribed;
    const publication = nextEvent(sub, 'publication');

    const writer = await connectAs('alice');
    await writer.centrifuge.publish('chat:room', { text: 'hi' });
    const ctx = await publication;

    assert.deepEqual(ctx.data, { text: 'hi' });
    assert.equal(ctx.info?.user, 'alice');
  });

  test('client publish denied 103', async () => {
    const client = await connectAs('alice');
    const error = await client.centrifuge.publish('readonly:room', { text: 'hi' }).then(
      () => undefined,
      (err: { code: number }) => err,
    );

    assert.equal(error?.code, 103);
    assert.equal(client.centrifuge.state, 'connected');
    // The connection still serves commands.
    await client.centrifuge.publish('chat:room', { text: 'still here' });
  });

  test('client history when allowed', async () => {
    for (let n = 1; n <= 3; n++) await rotor.api('publish', { channel: 'log:a', data: { n } });
    const client = await connectAs('alice');
    const result = await client.centrifuge.history('log:a', { limit: 10 });

    assert.deepEqual(
      result.publications.map((publication) => publication.offset),
      [1, 2, 3],
    );
    assert.deepEqual(
      result.publications.map((publication) => publication.data),
      [{ n: 1 }, { n: 2 }, { n: 3 }],
    );
    assert.equal(result.offset, 3);
    assert.notEqual(result.epoch, '');
  });

  test('client history denied 103', async () => {
    const client = await connectAs('alice');
    const error = await client.centrifuge.history('vault:a', { limit: 10 }).then(
      () => undefined,
      (err: { code: number }) => err,
    );

    assert.equal(error?.code, 103);
    assert.equal(client.centrifuge.state, 'connected');
  });

  test('client history off 108', async () => {
    const client = await connectAs('alice');
    const error = await client.centrifuge.history('nohist:a', { limit: 10 }).then(
      () => undefined,
      (err: { code: number }) => err,
    );

    assert.equal(error?.code, 108);
    assert.equal(client.centrifuge.state, 'connected');
  });

  test('token channels subscribe server-side', async () => {
    const token = await makeToken({ sub: 'alice', exp: nowSeconds() + 3600, channels: ['feed:server'] });
    const client = track(createClient(rotor.url, { token }));
    const subscribed = nextEvent(client.centrifuge, 'subscribed', (ctx) => ctx.channel === 'feed:server');
    client.centrifuge.connect();
    await subscribed;
    const publication = nextEvent(client.centrifuge, 'publication', (ctx) => ctx.channel === 'feed:server');
    await rotor.api('publish', { channel: 'feed:server', data: { text: 'from server' } });
    const ctx = await publication;

    assert.deepEqual(ctx.data, { text: 'from server' });
    assert.equal(ctx.offset, 1);
  });
});
