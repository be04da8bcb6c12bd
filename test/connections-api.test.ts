/**
 * Server API methods that act on live connections (subscribe, unsubscribe, disconnect,
 * refresh) and those that report them (info, channels, presence), with real clients.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Subscription } from 'centrifuge';
import { createClient, makeToken, nextEvent, nowSeconds, SECRET, type TestClient } from './helpers/client.js';
import { startServer, waitFor, type TestServer } from './helpers/server.js';

const OPTIONS = {
  token_hmac_secret_key: SECRET,
  namespaces: [
    { name: 'news', history_size: 10, history_ttl: '300s' },
    { name: 'room', allow_subscribe_for_client: true, presence: true, allow_presence_for_subscriber: true },
  ],
};

const clients: TestClient[] = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

/** Connects a client as `user` and resolves with it and its client id. */
async function connectAs(rotor: TestServer, user: string): Promise<{ client: TestClient; id: string }> {
  const token = await makeToken({ sub: user, exp: nowSeconds() + 3600 });
  const client = createClient(rotor.url, { token });
  clients.push(client);
  const { client: id } = await client.connect();
  return { client, id };
}

async function subscribe(client: TestClient, channel: string): Promise<Subscription> {
  const sub = client.centrifuge.newSubscription(channel);
  const subscribed = nextEvent(sub, 'subscribed');
  sub.subscribe();
  await subscribed;
  return sub;
}

describe('connection methods', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer(OPTIONS);
  });
  after(() => rotor.close());

  test('subscribe adds server-side subscription', async () => {
    const { client } = await connectAs(rotor, 'alice');
    const subscribed = nextEvent(client.centrifuge, 'subscribed', (ctx) => ctx.channel === 'news:a');
    const reply = await rotor.api('subscribe', { user: 'alice', channel: 'news:a' });
    await subscribed;
    const publication = nextEvent(client.centrifuge, 'publication', (ctx) => ctx.channel === 'news:a');
    await rotor.api('publish', { channel: 'news:a', data: { text: 'hello' } });
    const ctx = await publication;

    assert.deepEqual(reply, { result: {} });
    assert.deepEqual(ctx.data, { text: 'hello' });
    assert.equal(ctx.offset, 1);
  });

  test('subscribe reaches every connection', async () => {
    const first = await connectAs(rotor, 'dora');
    const second = await connectAs(rotor, 'dora');
    const other = await connectAs(rotor, 'erin');
    const events = [first, second].map(({ client }) => nextEvent(client.centrifuge, 'subscribed', (ctx) => ctx.channel === 'news:all'));
    await rotor.api('subscribe', { user: 'dora', channel: 'news:all' });
    await Promise.all(events);
    const channels = await rotor.api('channels', { pattern: 'news:all' });

    assert.deepEqual(channels.result.channels, { 'news:all': { num_clients: 2 } });
    assert.equal(other.client.centrifuge.state, 'connected');
  });

  test('unsubscribe ends server-side subscription', async () => {
    const { client } = await connectAs(rotor, 'bob');
    const subscribed = nextEvent(client.centrifuge, 'subscribed', (ctx) => ctx.channel === 'news:b');
    await rotor.api('subscribe', { user: 'bob', channel: 'news:b' });
    await subscribed;

    const unsubscribed = nextEvent(client.centrifuge, 'unsubscribed', (ctx) => ctx.channel === 'news:b');
    const reply = await rotor.api('unsubscribe', { user: 'bob', channel: 'news:b' });
    await unsubscribed;
    const channels = await rotor.api('channels', { pattern: 'news:b' });

    assert.deepEqual(reply, { result: {} });
    assert.deepEqual(channels.result.channels, {});
    assert.equal(client.centrifuge.state, 'connected');
  });

  test('unsubscribe ends client subscription', async () => {
    const { client } = await connectAs(rotor, 'bob');
    const sub = await subscribe(client, 'room:unsub');
    const unsubscribed = nextEvent(sub, 'unsubscribed');
    await rotor.api('unsubscribe', { user: 'bob', channel: 'room:unsub' });

    assert.equal((await unsubscribed).code, 2000);
    assert.equal(sub.state, 'unsubscribed');
  });

  test('disconnect uses code 3503', async () => {
    const { client } = await connectAs(rotor, 'carol');
    const disconnected = nextEvent(client.centrifuge, 'disconnected');
    const reply = await rotor.api('disconnect', { user: 'carol' });

    assert.deepEqual(reply, { result: {} });
    assert.equal((await disconnected).code, 3503);
  });

  test('disconnect with terminal custom code', async () => {
    const { client } = await connectAs(rotor, 'carol');
    const disconnected = nextEvent(client.centrifuge, 'disconnected');
    await rotor.api('disconnect', { user: 'carol', disconnect: { code: 4501, reason: 'banned' } });
    const ctx = await disconnected;

    assert.equal(ctx.code, 4501);
    assert.equal(ctx.reason, 'banned');
  });

  test('disconnect truncates long reason', async () => {
    const { client } = await connectAs(rotor, 'carol');
    const disconnected = nextEvent(client.centrifuge, 'disconnected');
    // 300 bytes of UTF-8, more than a close frame carries.
    const reply = await rotor.api('disconnect', { user: 'carol', disconnect: { code: 4501, reason: '€'.repeat(100) } });
    const ctx = await disconnected;

    assert.deepEqual(reply, { result: {} });
    assert.equal(ctx.code, 4501);
    assert.ok(Buffer.byteLength(ctx.reason) <= 123, `reason of ${Buffer.byteLength(ctx.reason)} bytes`);
    assert.match(ctx.reason, /^(€)+$/);
  });

  test('disconnect with reconnect custom code', async () => {
    const { client } = await connectAs(rotor, 'carol');
    const connecting = nextEvent(client.centrifuge, 'connecting');
    await rotor.api('disconnect', { user: 'carol', disconnect: { code: 4000, reason: 'moved' } });
    const ctx = await connecting;
    await nextEvent(client.centrifuge, 'connected');

    assert.equal(ctx.code, 4000);
  });

  test('disconnect one client by id', async () => {
    const remaining = await connectAs(rotor, 'frank');
    const closed = await connectAs(rotor, 'frank');
    const disconnected = nextEvent(closed.client.centrifuge, 'disconnected');
    await rotor.api('disconnect', { user: 'frank', client: closed.id });

    assert.equal((await disconnected).code, 3503);
    assert.equal(remaining.client.centrifuge.state, 'connected');
  });

  test('refresh expired closes 3005', async () => {
    const { client } = await connectAs(rotor, 'dave');
    const connecting = nextEvent(client.centrifuge, 'connecting');
    const reply = await rotor.api('refresh', { user: 'dave', expired: true });

    assert.deepEqual(reply, { result: {} });
    assert.equal((await connecting).code, 3005);
  });

  test('missing user rejected 107', async () => {
    const reply = await rotor.api('disconnect', {});

    assert.equal(reply.error?.code, 107);
  });
});

describe('connection reports', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer(OPTIONS);
  });
  after(() => rotor.close());

  /** Waits until the server has seen every client of earlier tests go. */
  async function noClients(): Promise<void> {
    await waitFor(async () => (await rotor.api('info')).result.nodes[0].num_clients === 0, 5000, 'earlier clients to close');
  }

  test('info counts connections', async () => {
    await noClients();
    const alice = await connectAs(rotor, 'alice');
    const aliceAgain = await connectAs(rotor, 'alice');
    const bob = await connectAs(rotor, 'bob');
    await subscribe(alice.client, 'room:1');
    await subscribe(alice.client, 'room:2');
    await subscribe(bob.client, 'room:1');
    const node = (await rotor.api('info')).result.nodes[0];

    assert.equal(node.num_clients, 3);
    assert.equal(node.num_users, 2);
    assert.equal(node.num_channels, 2);
    assert.equal(node.num_subs, 3);
    assert.equal(aliceAgain.client.centrifuge.state, 'connected');
  });

  test('channels lists subscriber counts', async () => {
    await noClients();
    const alice = await connectAs(rotor, 'alice');
    const bob = await connectAs(rotor, 'bob');
    await subscribe(alice.client, 'room:red');
    await subscribe(bob.client, 'room:red');
    await subscribe(bob.client, 'room:blue');
    const all = await rotor.api('channels');
    const filtered = await rotor.api('channels', { pattern: 'room:r*' });

    assert.deepEqual(all.result.channels, { 'room:red': { num_clients: 2 }, 'room:blue': { num_clients: 1 } });
    assert.deepEqual(filtered.result.channels, { 'room:red': { num_clients: 2 } });
  });

  test('presence shows real clients', async () => {
    const alice = await connectAs(rotor, 'alice');
    const bob = await connectAs(rotor, 'bob');
    await subscribe(alice.client, 'room:present');
    await subscribe(bob.client, 'room:present');
    const presence = await rotor.api('presence', { channel: 'room:present' });
    const stats = await rotor.api('presence_stats', { channel: 'room:present' });

    assert.deepEqual(Object.keys(presence.result.presence).sort(), [alice.id, bob.id].sort());
    assert.deepEqual(presence.result.presence[alice.id], { user: 'alice', client: alice.id });
    assert.deepEqual(stats.result, { num_clients: 2, num_users: 2 });
  });
});
