/**
 * The client protocol at frame level, through a plain WebSocket: framing, command order,
 * protocol violations and their close codes, ping/pong, stale connections, the order of
 * subscribe replies and publications, and slow readers.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { createClient, nextEvent, RawClient, type ServerMessage, type TestClient } from './helpers/client.js';
import { startServer, waitFor, type TestServer } from './helpers/server.js';

const MESSAGE_SIZE_LIMIT = 4096;

const RAW = {
  client_insecure: true,
  websocket_message_size_limit: MESSAGE_SIZE_LIMIT,
  ping_interval: '1s',
  pong_timeout: '500ms',
  client_stale_close_delay: '500ms',
  namespaces: [
    { name: 'feed', history_size: 100, history_ttl: '300s' },
    // Positioned subscribes read the stream top before replying, so publications can arrive meanwhile.
    { name: 'pos', history_size: 100, history_ttl: '300s', force_positioning: true },
  ],
};

const rawClients: RawClient[] = [];

async function openRaw(rotor: TestServer, options: { autoPong?: boolean } = {}): Promise<RawClient> {
  const raw = await RawClient.open(rotor.url, options);
  rawClients.push(raw);
  return raw;
}

afterEach(() => {
  for (const raw of rawClients.splice(0)) raw.close();
});

describe('raw protocol', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer(RAW);
  });
  after(() => rotor.close());

  test('first command not connect', async () => {
    const raw = await openRaw(rotor);
    raw.send('{"subscribe":{"channel":"news"},"id":1}');

    assert.equal((await raw.closed()).code, 3501);
    assert.deepEqual(raw.messages, []);
  });

  test('unparsable line closes 3501', async () => {
    const raw = await openRaw(rotor);
    await raw.connect();
    raw.send('{"subscribe":');

    assert.equal((await raw.closed()).code, 3501);
  });

  test('unparsable first frame closes 3501', async () => {
    const raw = await openRaw(rotor);
    raw.send('not json');

    assert.equal((await raw.closed()).code, 3501);
  });

  test('oversized frame closes 1009', async () => {
    const raw = await openRaw(rotor);
    await raw.connect();
    raw.send(JSON.stringify({ publish: { channel: 'news', data: 'x'.repeat(MESSAGE_SIZE_LIMIT) }, id: 2 }));

    assert.equal((await raw.closed()).code, 1009);
  });

  test('invalid UTF-8 closes 3501', async () => {
    const raw = await openRaw(rotor);
    await raw.connect();
    raw.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));

    assert.equal((await raw.closed()).code, 3501);
  });

  test('second connect closes 3501', async () => {
    const raw = await openRaw(rotor);
    const first = await raw.connect();
    raw.send('{"connect":{},"id":2}');

    assert.equal((await raw.closed()).code, 3501);
    assert.equal(typeof first.connect.client, 'string');
  });

  test('send closes 3508', async () => {
    const raw = await openRaw(rotor);
    await raw.connect();
    raw.send('{"send":{"data":{"any":"json"}}}');

    assert.equal((await raw.closed()).code, 3508);
  });

  test('connect and subscribe in one frame', async () => {
    const raw = await openRaw(rotor);
    raw.send('{"connect":{},"id":1}\n{"subscribe":{"channel":"feed:batch"},"id":2}');
    await raw.reply(2);
    const replies = raw.messages.filter((message) => message.id !== undefined);

    assert.deepEqual(
      replies.map((reply) => reply.id),
      [1, 2],
    );
    assert.equal(typeof replies[0]!.connect?.client, 'string');
    assert.equal(replies[1]!.error, undefined);
    assert.deepEqual(replies[1]!.subscribe, {});
  });

  test('batched replies are newline-delimited', async () => {
    const raw = await openRaw(rotor);
    const commands = [
      { connect: {}, id: 1 },
      { subscribe: { channel: 'a' }, id: 2 },
      { subscribe: { channel: 'b' }, id: 3 },
      { subscribe: { channel: 'a' }, id: 4 },
      { unsubscribe: { channel: 'b' }, id: 5 },
    ];
    raw.send(commands.map((command) => JSON.stringify(command)).join('\n'));
    await raw.reply(5);
    // Wait for a ping too, so ping frames are part of the checks below.
    await waitFor(() => raw.pings >= 1, 5000, 'a ping');

    assert.ok(
      raw.frames.some((frame) => frame.includes('\n')),
      'no frame carried more than one reply',
    );
    for (const frame of raw.frames) {
      assert.notEqual(frame, '', 'empty frame');
      assert.ok(!frame.split('\n').includes(''), `empty line in ${JSON.stringify(frame)}`);
    }
    assert.deepEqual(raw.invalidLines, []);
    assert.deepEqual(
      raw.messages.filter((message) => message.id !== undefined).map((message) => message.id),
      [1, 2, 3, 4, 5],
    );
    assert.equal(raw.messages.find((message) => message.id === 4)?.error?.code, 105);
  });

  test('unanswered pings close 3012', async () => {
    const raw = await openRaw(rotor, { autoPong: false });
    const reply = await raw.connect();
    const { code } = await raw.closed();

    assert.equal(reply.connect.ping, 1);
    assert.equal(reply.connect.pong, true);
    assert.equal(raw.pings, 1);
    assert.equal(code, 3012);
  });

  test('answered pings keep connection', async () => {
    const raw = await openRaw(rotor);
    await raw.connect();
    // The client sends a pong for each of three pings, which span more than two pong timeouts.
    await waitFor(() => raw.pings >= 3, 6000, 'three pings');
    const reply = await raw.call('subscribe', { channel: 'alive' });

    assert.equal(raw.closeCode, undefined);
    assert.equal(reply.error, undefined);
  });

  test('missing connect closes 3502', async () => {
    const raw = await openRaw(rotor);

    assert.equal((await raw.closed()).code, 3502);
  });

  /** Publishes into `channel` from `writers` concurrent loops until `stop` is called. */
  function startPublishing(channel: string, writers = 16): { stop(): Promise<void> } {
    let running = true;
    const loops = Array.from({ length: writers }, async () => {
      while (running) await rotor.api('publish', { channel, data: { text: 'live' } });
    });
    return {
      async stop() {
        running = false;
        await Promise.all(loops);
      },
    };
  }

  /**
   * Counts the publications of `channel` that arrived while the latest reply for it was not
   * a subscribe reply, that is before the first subscribe reply or after an unsubscribe reply.
   */
  function publicationsOutsideSubscription(messages: ServerMessage[], channel: string, subscribeIds: Set<number>): number {
    let subscribed = false;
    let outside = 0;
    for (const message of messages) {
      if (message.id !== undefined && message.subscribe !== undefined && subscribeIds.has(message.id)) subscribed = true;
      else if (message.id !== undefined && message.unsubscribe !== undefined) subscribed = false;
      else if (message.push?.channel === channel && message.push.pub !== undefined && !subscribed) outside++;
    }
    return outside;
  }

  for (const channel of ['pos:ordered', 'ordered']) {
    test(`subscribe reply precedes publications (${channel.includes(':') ? 'positioned' : 'no history'})`, async () => {
      const raw = await openRaw(rotor);
      await raw.connect();
      const publishing = startPublishing(channel);
      const subscribeIds = new Set<number>();
      let delivered = 0;
      try {
        for (let round = 0; round < 10; round++) {
          const id = raw.id();
          subscribeIds.add(id);
          raw.send(JSON.stringify({ subscribe: { channel }, id }));
          const reply = await raw.reply(id);
          assert.equal(reply.error, undefined);
          const seen = raw.publications(channel).length;
          await waitFor(() => raw.publications(channel).length > seen, 5000, 'a live publication');
          delivered += raw.publications(channel).length - seen;
          await raw.call('unsubscribe', { channel });
        }
      } finally {
        await publishing.stop();
      }

      assert.ok(delivered >= 10);
      assert.equal(publicationsOutsideSubscription(raw.messages, channel, subscribeIds), 0);
    });
  }
});

describe('slow subscriber', () => {
  const QUEUE_LIMIT = 64 * 1024;
  let rotor: TestServer;
  const healthy: TestClient[] = [];
  before(async () => {
    rotor = await startServer({ ...RAW, client_queue_max_size: QUEUE_LIMIT, ping_interval: '25s' });
  });
  after(async () => {
    for (const client of healthy) client.close();
    await rotor.close();
  });

  test('stalled reader closes 3008', async () => {
    const channel = 'feed:firehose';
    const reader = createClient(rotor.url);
    healthy.push(reader);
    const sub = reader.centrifuge.newSubscription(channel);
    const offsets: number[] = [];
    sub.on('publication', (ctx) => offsets.push(ctx.offset ?? 0));
    const subscribed = nextEvent(sub, 'subscribed');
    sub.subscribe();
    await reader.connect();
    await subscribed;

    const stalled = await openRaw(rotor);
    await stalled.connect();
    await stalled.call('subscribe', { channel });
    stalled.socket.pause();

    // Large publications fill the kernel socket buffers quickly. After that, the stalled
    // connection's queue grows past client_queue_max_size.
    const payload = 'x'.repeat(16 * 1024);
    let published = 0;
    let dropped = false;
    while (!dropped && published < 5000) {
      const reply = await rotor.api('publish', { channel, data: { payload } });
      assert.equal(reply.error, undefined);
      published = reply.result.offset;
      if (published % 20 === 0) dropped = (await rotor.api('info')).result.nodes[0].num_clients === 1;
    }
    stalled.socket.resume();
    const { code } = await stalled.closed(10_000);
    await waitFor(() => offsets.length === published, 10_000, `${published} publications at the healthy reader`);

    assert.equal(dropped, true);
    assert.equal(code, 3008);
    assert.equal(reader.centrifuge.state, 'connected');
    assert.deepEqual(
      offsets,
      Array.from({ length: published }, (_, i) => i + 1),
    );
  });
});
