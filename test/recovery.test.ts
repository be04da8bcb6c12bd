/**
 * Recovery with the official `centrifuge` client: a client whose socket dropped comes
 * back, resubscribes from its last offset, and gets exactly what it missed, or receives
 * `recovered: false` when the server no longer has it.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import type { ServerSubscribedContext } from 'centrifuge';
import { createClient, makeToken, nextEvent, SECRET, type TestClient } from './helpers/client.js';
import { startServer, tempDir, waitFor, type TestServer } from './helpers/server.js';

const HISTORY_SIZE = 10;

/** A namespace that keeps history and recovers every resubscribe. */
const RECOVERY = {
  client_insecure: true,
  token_hmac_secret_key: SECRET,
  namespaces: [{ name: 'rec', history_size: HISTORY_SIZE, history_ttl: '300s', force_recovery: true }],
};

const clients: TestClient[] = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

/** A subscription that records the offsets of its publications and its subscribed events. */
interface Recorder {
  readonly client: TestClient;
  readonly offsets: number[];
  readonly subscribed: ServerSubscribedContext[];
  /** Resolves with the next subscribed event of the channel. */
  nextSubscribed(): Promise<ServerSubscribedContext>;
}

/** Connects a client and subscribes it to `channel` from the client side. */
async function subscribeRecorder(baseUrl: string, channel: string): Promise<Recorder> {
  const client = createClient(baseUrl);
  clients.push(client);
  const sub = client.centrifuge.newSubscription(channel);
  const recorder: Recorder = { client, offsets: [], subscribed: [], nextSubscribed: () => nextEvent(sub, 'subscribed') };
  sub.on('publication', (ctx) => recorder.offsets.push(ctx.offset ?? 0));
  sub.on('subscribed', (ctx) => recorder.subscribed.push(ctx));
  const subscribed = recorder.nextSubscribed();
  sub.subscribe();
  client.centrifuge.connect();
  await subscribed;
  return recorder;
}

/** Connects a client whose token subscribes it to `channel` on the server side. */
async function serverSideRecorder(baseUrl: string, channel: string): Promise<Recorder> {
  const token = await makeToken({ sub: 'alice', channels: [channel] });
  const client = createClient(baseUrl, { token });
  clients.push(client);
  const ofChannel = (ctx: { channel: string }): boolean => ctx.channel === channel;
  const centrifuge = client.centrifuge;
  const recorder: Recorder = { client, offsets: [], subscribed: [], nextSubscribed: () => nextEvent(centrifuge, 'subscribed', ofChannel) };
  centrifuge.on('publication', (ctx) => {
    if (ofChannel(ctx)) recorder.offsets.push(ctx.offset ?? 0);
  });
  centrifuge.on('subscribed', (ctx) => {
    if (ofChannel(ctx)) recorder.subscribed.push(ctx);
  });
  const subscribed = recorder.nextSubscribed();
  centrifuge.connect();
  await subscribed;
  return recorder;
}

/** Publishes `count` publications one after another and returns the offset of the last. */
async function publish(rotor: TestServer, channel: string, count: number): Promise<number> {
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const reply = await rotor.api('publish', { channel, data: { i } });
    assert.equal(reply.error, undefined);
    offset = reply.result.offset;
  }
  return offset;
}

/** Drops the recorder's socket and delays its reconnect until `comeBack`. */
async function goAway(recorder: Recorder): Promise<void> {
  recorder.client.pause();
  const connecting = nextEvent(recorder.client.centrifuge, 'connecting');
  recorder.client.dropSocket();
  await connecting;
}

/** Lets the client reconnect and resolves with the subscribed event of its resubscribe. */
async function comeBack(recorder: Recorder): Promise<ServerSubscribedContext> {
  const resubscribed = recorder.nextSubscribed();
  recorder.client.resume();
  return resubscribed;
}

/**
 * Publishes one more publication and waits for it. Everything the server sent before it
 * (replayed or live) has then arrived, so the offsets can be compared in full.
 */
async function barrier(rotor: TestServer, recorder: Recorder, channel: string): Promise<number> {
  const seen = recorder.offsets.length;
  const offset = await publish(rotor, channel, 1);
  // Only what arrives from now on counts: after an epoch change the offset may repeat an old one.
  await waitFor(() => recorder.offsets.slice(seen).includes(offset), 5000, `publication ${offset}`);
  return offset;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe('recovery after a dropped socket', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer(RECOVERY);
  });
  after(() => rotor.close());

  test('missed publications are recovered', async () => {
    const channel = 'rec:missed';
    const recorder = await subscribeRecorder(rotor.url, channel);
    await publish(rotor, channel, 2);
    await waitFor(() => recorder.offsets.length === 2, 5000, 'the first publications');

    await goAway(recorder);
    await publish(rotor, channel, 5);
    const ctx = await comeBack(recorder);
    const last = await barrier(rotor, recorder, channel);

    assert.equal(ctx.wasRecovering, true);
    assert.equal(ctx.recovered, true);
    assert.equal(ctx.hasRecoveredPublications, true);
    assert.equal(last, 8);
    assert.deepEqual(recorder.offsets, range(1, 8));
  });

  test('server-side subscription recovers', async () => {
    const channel = 'rec:server-side';
    const recorder = await serverSideRecorder(rotor.url, channel);
    await publish(rotor, channel, 2);
    await waitFor(() => recorder.offsets.length === 2, 5000, 'the first publications');

    await goAway(recorder);
    await publish(rotor, channel, 3);
    const ctx = await comeBack(recorder);
    await barrier(rotor, recorder, channel);

    assert.equal(ctx.wasRecovering, true);
    assert.equal(ctx.recovered, true);
    assert.deepEqual(recorder.offsets, range(1, 6));
  });

  test('nothing missed recovers empty', async () => {
    const channel = 'rec:quiet';
    const recorder = await subscribeRecorder(rotor.url, channel);
    await publish(rotor, channel, 1);
    await waitFor(() => recorder.offsets.length === 1, 5000, 'the first publication');

    await goAway(recorder);
    const ctx = await comeBack(recorder);
    await barrier(rotor, recorder, channel);

    assert.equal(ctx.recovered, true);
    assert.equal(ctx.hasRecoveredPublications, false);
    assert.deepEqual(recorder.offsets, [1, 2]);
  });

  test('too many missed not recovered', async () => {
    const channel = 'rec:overflow';
    const recorder = await subscribeRecorder(rotor.url, channel);
    await publish(rotor, channel, 2);
    await waitFor(() => recorder.offsets.length === 2, 5000, 'the first publications');

    await goAway(recorder);
    const top = await publish(rotor, channel, HISTORY_SIZE + 2);
    const ctx = await comeBack(recorder);
    const last = await barrier(rotor, recorder, channel);

    assert.equal(ctx.wasRecovering, true);
    assert.equal(ctx.recovered, false);
    assert.equal(ctx.streamPosition?.offset, top);
    // Nothing replayed: after the first two only the live publication arrived.
    assert.deepEqual(recorder.offsets, [1, 2, last]);
  });
});

describe('recovery after an epoch change', () => {
  test('expired stream metadata not recovered', async () => {
    const rotor = await startServer({ ...RECOVERY, history_meta_ttl: '1s' });
    try {
      const channel = 'rec:meta';
      const recorder = await subscribeRecorder(rotor.url, channel);
      await publish(rotor, channel, 2);
      await waitFor(() => recorder.offsets.length === 2, 5000, 'the first publications');
      const oldEpoch = recorder.subscribed[0]!.streamPosition!.epoch;

      await goAway(recorder);
      // The stream metadata expires history_meta_ttl after the last publish.
      await waitFor(
        async () => {
          const reply = await rotor.api('history', { channel, limit: 0 });
          return reply.result.epoch !== oldEpoch;
        },
        5000,
        'a new epoch',
      );
      await publish(rotor, channel, 1);
      const ctx = await comeBack(recorder);
      const last = await barrier(rotor, recorder, channel);

      assert.equal(ctx.wasRecovering, true);
      assert.equal(ctx.recovered, false);
      assert.notEqual(ctx.streamPosition?.epoch, oldEpoch);
      assert.equal(last, 2);
      assert.deepEqual(recorder.offsets, [1, 2, 2]);
    } finally {
      await rotor.close();
    }
  });
});

describe('recovery across a server restart', () => {
  test('same data directory recovers', async () => {
    const dir = tempDir();
    let rotor = await startServer(RECOVERY, dir.path);
    try {
      const channel = 'rec:restart';
      const recorder = await subscribeRecorder(rotor.url, channel);
      await publish(rotor, channel, 3);
      await waitFor(() => recorder.offsets.length === 3, 5000, 'the first publications');

      recorder.client.pause();
      const shutdown = nextEvent(recorder.client.centrifuge, 'connecting');
      await rotor.close();
      assert.equal((await shutdown).code, 3001);

      rotor = await startServer(RECOVERY, dir.path);
      await publish(rotor, channel, 4);
      recorder.client.target = rotor.url;
      const ctx = await comeBack(recorder);
      await barrier(rotor, recorder, channel);

      assert.equal(ctx.recovered, true);
      assert.equal(ctx.streamPosition?.epoch, recorder.subscribed[0]!.streamPosition?.epoch);
      assert.deepEqual(recorder.offsets, range(1, 8));
    } finally {
      await rotor.close();
      dir.remove();
    }
  });

  test('wiped data directory not recovered', async () => {
    let rotor = await startServer(RECOVERY);
    try {
      const channel = 'rec:wiped';
      const recorder = await subscribeRecorder(rotor.url, channel);
      await publish(rotor, channel, 3);
      await waitFor(() => recorder.offsets.length === 3, 5000, 'the first publications');

      recorder.client.pause();
      await rotor.close();
      // startServer without a data directory makes a new, empty one.
      rotor = await startServer(RECOVERY);
      await publish(rotor, channel, 4);
      recorder.client.target = rotor.url;
      const ctx = await comeBack(recorder);
      const last = await barrier(rotor, recorder, channel);

      assert.equal(ctx.wasRecovering, true);
      assert.equal(ctx.recovered, false);
      assert.notEqual(ctx.streamPosition?.epoch, recorder.subscribed[0]!.streamPosition?.epoch);
      assert.deepEqual(recorder.offsets, [1, 2, 3, last]);
    } finally {
      await rotor.close();
    }
  });
});

describe('subscribe during publishing', () => {
  let rotor: TestServer;
  before(async () => {
    // Room for everything published here, so a recovery fails only if the server loses something.
    rotor = await startServer({
      ...RECOVERY,
      client_recovery_max_publication_limit: 100_000,
      namespaces: [{ name: 'rec', history_size: 100_000, history_ttl: '300s', force_recovery: true }],
    });
  });
  after(() => rotor.close());

  /** Publishes from `writers` concurrent loops until `stop`. `top()` returns the highest offset acknowledged so far. */
  function startPublishing(channel: string, writers = 32): { readonly top: () => number; stop(): Promise<number> } {
    let running = true;
    let top = 0;
    const loops = Array.from({ length: writers }, async () => {
      while (running) {
        const reply = await rotor.api('publish', { channel, data: {} });
        top = Math.max(top, reply.result.offset as number);
      }
    });
    return {
      top: () => top,
      async stop() {
        running = false;
        await Promise.all(loops);
        return top;
      },
    };
  }

  // Each subscribe below races the publications in flight. Usually at least one publication
  // lands between the history read and the subscribe reply, which tests the buffer merge.
  test('fresh subscribe gets each once', async () => {
    const channel = 'rec:fresh';
    const publishing = startPublishing(channel);
    const recorders: Recorder[] = [];
    let last: number;
    try {
      for (let i = 0; i < 8; i++) {
        const top = publishing.top();
        await waitFor(() => publishing.top() >= top + 10, 5000, 'publications before subscribing');
        recorders.push(await subscribeRecorder(rotor.url, channel));
      }
    } finally {
      last = await publishing.stop();
    }
    for (const recorder of recorders) await waitFor(() => recorder.offsets.includes(last), 5000, `publication ${last}`);

    for (const [i, recorder] of recorders.entries()) {
      const start = recorder.subscribed[0]!.streamPosition!.offset;
      assert.deepEqual(recorder.offsets, range(start + 1, last), `subscriber ${i}`);
    }
  });

  test('recovery under load gets each once', async () => {
    const channel = 'rec:load';
    const recorder = await subscribeRecorder(rotor.url, channel);
    const publishing = startPublishing(channel);
    const rounds = 6;
    let last: number;
    try {
      // Several reconnects, each while publications keep arriving.
      for (let round = 0; round < rounds; round++) {
        const seen = recorder.offsets.length;
        await waitFor(() => recorder.offsets.length >= seen + 10, 5000, 'live publications');
        await goAway(recorder);
        const away = publishing.top();
        await waitFor(() => publishing.top() >= away + 10, 5000, 'publications while away');
        await comeBack(recorder);
      }
      const seen = recorder.offsets.length;
      await waitFor(() => recorder.offsets.length >= seen + 20, 5000, 'live publications after the last reconnect');
    } finally {
      last = await publishing.stop();
    }
    await waitFor(() => recorder.offsets.includes(last), 5000, `publication ${last}`);

    assert.deepEqual(
      recorder.subscribed.map((ctx) => ctx.recovered),
      [false, ...Array.from({ length: rounds }, () => true)],
    );
    assert.deepEqual(recorder.offsets, range(1, last));
  });
});
