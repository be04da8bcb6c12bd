/**
 * Presence, presence stats and join/leave pushes with real clients, read through the
 * client protocol and through the server API.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import type { JoinContext, LeaveContext, Subscription, SubscriptionOptions } from 'centrifuge';
import { createClient, makeToken, nextEvent, nowSeconds, RawClient, SECRET, type TestClient } from './helpers/client.js';
import { startServer, waitFor, type TestServer } from './helpers/server.js';

const PRESENCE = {
  token_hmac_secret_key: SECRET,
  namespaces: [
    { name: 'room', presence: true, join_leave: true, allow_subscribe_for_client: true, allow_presence_for_subscriber: true },
    { name: 'lobby', presence: true, join_leave: true, force_push_join_leave: true, allow_subscribe_for_client: true, allow_presence_for_subscriber: true },
    { name: 'plain', allow_subscribe_for_client: true, allow_presence_for_client: true },
  ],
};

const clients: TestClient[] = [];
const rawClients: RawClient[] = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  for (const raw of rawClients.splice(0)) raw.close();
});

/** A connected client subscribed to one channel, recording the joins and leaves it receives. */
interface Member {
  readonly client: TestClient;
  readonly id: string;
  readonly sub: Subscription;
  readonly joins: JoinContext[];
  readonly leaves: LeaveContext[];
  readonly publications: unknown[];
}

describe('presence', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer(PRESENCE);
  });
  after(() => rotor.close());

  async function connectAs(user: string, claims: Record<string, unknown> = {}): Promise<{ client: TestClient; id: string }> {
    const token = await makeToken({ sub: user, exp: nowSeconds() + 3600, ...claims });
    const client = createClient(rotor.url, { token });
    clients.push(client);
    const { client: id } = await client.connect();
    return { client, id };
  }

  async function join(user: string, channel: string, options: SubscriptionOptions = {}): Promise<Member> {
    const { client, id } = await connectAs(user);
    const sub = client.centrifuge.newSubscription(channel, options);
    const member: Member = { client, id, sub, joins: [], leaves: [], publications: [] };
    sub.on('join', (ctx) => member.joins.push(ctx));
    sub.on('leave', (ctx) => member.leaves.push(ctx));
    sub.on('publication', (ctx) => member.publications.push(ctx.data));
    const subscribed = nextEvent(sub, 'subscribed');
    sub.subscribe();
    await subscribed;
    return member;
  }

  /** Returns the client ids in the channel's presence, read through the server API. */
  async function presentIds(channel: string): Promise<string[]> {
    const reply = await rotor.api('presence', { channel });
    assert.equal(reply.error, undefined);
    return Object.keys(reply.result.presence).sort();
  }

  /**
   * Publishes a marker and waits until `member` received it. Pushes queued for the member
   * before the marker (a join or leave) have then arrived too.
   */
  async function barrier(channel: string, member: Member): Promise<void> {
    const marker = { marker: Math.random() };
    await rotor.api('publish', { channel, data: marker });
    await waitFor(() => member.publications.some((data) => JSON.stringify(data) === JSON.stringify(marker)), 5000, 'the marker publication');
  }

  test('presence after subscribe', async () => {
    const channel = 'room:subscribed';
    const alice = await join('alice', channel);
    const bob = await join('bob', channel);
    const aliceAgain = await join('alice', channel);

    const presence = await alice.sub.presence();
    const stats = await alice.sub.presenceStats();
    const apiStats = await rotor.api('presence_stats', { channel });

    assert.deepEqual(Object.keys(presence.clients).sort(), [alice.id, bob.id, aliceAgain.id].sort());
    assert.equal(presence.clients[bob.id]?.user, 'bob');
    assert.equal(presence.clients[bob.id]?.client, bob.id);
    assert.equal(stats.numClients, 3);
    assert.equal(stats.numUsers, 2);
    assert.deepEqual(await presentIds(channel), [alice.id, bob.id, aliceAgain.id].sort());
    assert.deepEqual(apiStats.result, { num_clients: 3, num_users: 2 });
  });

  test('presence carries conn_info', async () => {
    const channel = 'room:info';
    const { client, id } = await connectAs('alice', { info: { name: 'Alice' } });
    const sub = client.centrifuge.newSubscription(channel);
    const subscribed = nextEvent(sub, 'subscribed');
    sub.subscribe();
    await subscribed;
    const presence = await sub.presence();
    const api = await rotor.api('presence', { channel });

    assert.deepEqual(presence.clients[id]?.connInfo, { name: 'Alice' });
    assert.deepEqual(api.result.presence[id], { user: 'alice', client: id, conn_info: { name: 'Alice' } });
  });

  test('presence after unsubscribe', async () => {
    const channel = 'room:unsubscribed';
    const alice = await join('alice', channel);
    const bob = await join('bob', channel);

    bob.sub.unsubscribe();
    await waitFor(async () => !(await presentIds(channel)).includes(bob.id), 5000, 'bob to leave the presence');
    const presence = await alice.sub.presence();
    const stats = await alice.sub.presenceStats();

    assert.deepEqual(Object.keys(presence.clients), [alice.id]);
    assert.equal(stats.numClients, 1);
    assert.equal(stats.numUsers, 1);
  });

  test('presence after dropped socket', async () => {
    const channel = 'room:dropped';
    const alice = await join('alice', channel);
    const raw = await RawClient.open(rotor.url);
    rawClients.push(raw);
    const connected = await raw.connect({ token: await makeToken({ sub: 'bob', exp: nowSeconds() + 3600 }) });
    const rawId = connected.connect.client as string;
    await raw.call('subscribe', { channel });
    assert.deepEqual(await presentIds(channel), [alice.id, rawId].sort());

    raw.terminate();
    await waitFor(async () => (await presentIds(channel)).length === 1, 5000, 'the dropped client to leave the presence');
    const stats = await rotor.api('presence_stats', { channel });

    assert.deepEqual(await presentIds(channel), [alice.id]);
    assert.deepEqual(stats.result, { num_clients: 1, num_users: 1 });
  });

  test('presence denied to non-subscriber', async () => {
    const { client } = await connectAs('carol');
    const error = await client.centrifuge.presence('room:denied').then(
      () => undefined,
      (err: { code: number }) => err,
    );

    assert.equal(error?.code, 103);
    assert.equal(client.centrifuge.state, 'connected');
  });

  test('presence off returns 108', async () => {
    const { client } = await connectAs('carol');
    const error = await client.centrifuge.presenceStats('plain:a').then(
      () => undefined,
      (err: { code: number }) => err,
    );
    const api = await rotor.api('presence', { channel: 'plain:a' });

    assert.equal(error?.code, 108);
    assert.equal(api.error?.code, 108);
  });

  test('join and leave to requesters', async () => {
    const channel = 'room:events';
    const watcher = await join('alice', channel, { joinLeave: true });
    const bystander = await join('bob', channel);

    const carol = await join('carol', channel);
    await waitFor(() => watcher.joins.some((ctx) => ctx.info.client === carol.id), 5000, 'the join of carol');
    await barrier(channel, bystander);
    carol.sub.unsubscribe();
    await waitFor(() => watcher.leaves.some((ctx) => ctx.info.client === carol.id), 5000, 'the leave of carol');
    await barrier(channel, bystander);

    assert.equal(watcher.joins.find((ctx) => ctx.info.client === carol.id)?.info.user, 'carol');
    assert.equal(watcher.leaves.find((ctx) => ctx.info.client === carol.id)?.info.user, 'carol');
    assert.deepEqual(bystander.joins, []);
    assert.deepEqual(bystander.leaves, []);
  });

  test('own join reaches requester', async () => {
    const watcher = await join('alice', 'room:self', { joinLeave: true });
    const own = await waitFor(() => watcher.joins.find((ctx) => ctx.info.client === watcher.id), 5000, 'the own join');

    assert.equal(own.info.user, 'alice');
  });

  test('leave after dropped socket', async () => {
    const channel = 'room:drop-leave';
    const watcher = await join('alice', channel, { joinLeave: true });
    const raw = await RawClient.open(rotor.url);
    rawClients.push(raw);
    const connected = await raw.connect({ token: await makeToken({ sub: 'bob', exp: nowSeconds() + 3600 }) });
    const rawId = connected.connect.client as string;
    await raw.call('subscribe', { channel });
    await waitFor(() => watcher.joins.some((ctx) => ctx.info.client === rawId), 5000, 'the join of the raw client');

    raw.terminate();
    const leave = await waitFor(() => watcher.leaves.find((ctx) => ctx.info.client === rawId), 5000, 'the leave of the raw client');

    assert.equal(leave.info.user, 'bob');
  });

  test('forced join and leave to all', async () => {
    const channel = 'lobby:events';
    const bystander = await join('bob', channel);

    const carol = await join('carol', channel);
    await waitFor(() => bystander.joins.some((ctx) => ctx.info.client === carol.id), 5000, 'the join of carol');
    carol.sub.unsubscribe();
    const leave = await waitFor(() => bystander.leaves.find((ctx) => ctx.info.client === carol.id), 5000, 'the leave of carol');

    assert.equal(leave.info.user, 'carol');
  });
});
