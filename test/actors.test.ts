import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Scheduler } from '../src/actors/scheduler.js';
import { shardOf } from '../src/actors/messages.js';
import { loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startServer, tempDir, waitFor, type TestServer } from './helpers/server.js';

const HISTORY = { history_size: 2000, history_ttl: '300s' };

describe('actor pool through the API', () => {
  let rotor: TestServer;
  before(async () => {
    rotor = await startServer({ ...HISTORY, actor_workers: 3 });
  });
  after(() => rotor.close());

  test('1000 concurrent publishes to one channel', async () => {
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => rotor.api('publish', { channel: 'one', data: { i } })));
    const offsets = replies.map((reply) => reply.result.offset).sort((a, b) => a - b);
    assert.deepEqual(
      offsets,
      Array.from({ length: 1000 }, (_, i) => i + 1),
    );
    assert.equal(new Set(replies.map((reply) => reply.result.epoch)).size, 1);

    const history = await rotor.api('history', { channel: 'one', limit: -1 });
    const read = history.result.publications as Array<{ offset: number; data: { i: number } }>;
    assert.deepEqual(
      read.map((publication) => publication.offset),
      Array.from({ length: 1000 }, (_, i) => i + 1),
    );
    // Each offset contains the publication whose publish returned that offset.
    const byData = new Map(replies.map((reply, i) => [i, reply.result.offset]));
    for (const publication of read) assert.equal(byData.get(publication.data.i), publication.offset);
  });

  test('concurrent publishes across many channels and workers', async () => {
    const channels = Array.from({ length: 40 }, (_, i) => `many-${i}`);
    const shards = new Set(channels.map((channel) => shardOf(channel, 16)));
    assert.ok(shards.size >= 8, 'the channels spread over many shards');
    const perChannel = 50;
    const calls = [];
    for (let n = 0; n < perChannel; n++) {
      for (const channel of channels) calls.push(rotor.api('publish', { channel, data: { n } }).then((reply) => ({ channel, reply })));
    }
    const results = await Promise.all(calls);
    for (const channel of channels) {
      const offsets = results
        .filter((result) => result.channel === channel)
        .map((result) => result.reply.result.offset)
        .sort((a, b) => a - b);
      assert.deepEqual(
        offsets,
        Array.from({ length: perChannel }, (_, i) => i + 1),
        channel,
      );
      const history = await rotor.api('history', { channel, limit: -1 });
      assert.deepEqual(
        history.result.publications.map((publication: { offset: number }) => publication.offset),
        Array.from({ length: perChannel }, (_, i) => i + 1),
      );
    }
    assert.equal(rotor.server.scheduler.threads.length, 3);
  });
});

describe('worker replacement', () => {
  test('killed worker is replaced and later publishes work', async () => {
    const rotor = await startServer({ ...HISTORY, actor_workers: 2 });
    try {
      const channel = 'survivor';
      const first = await rotor.api('publish', { channel, data: { n: 1 } });
      assert.equal(first.result.offset, 1);

      const threadsBefore = rotor.server.scheduler.threads.map((thread) => thread.threadId);
      // Publishes in flight while every worker is terminated fail with a coded error, never hang.
      const inFlight = Array.from({ length: 200 }, (_, n) => rotor.api('publish', { channel, data: { n: n + 2 } }));
      await Promise.all(rotor.server.scheduler.threads.map((thread) => thread.terminate()));
      const outcomes = await Promise.all(inFlight);
      for (const outcome of outcomes) {
        if (outcome.error !== undefined) assert.equal(outcome.error.code, 100);
        else assert.ok(outcome.result.offset > 1);
      }

      await waitFor(
        () => {
          const ids = rotor.server.scheduler.threads.map((thread) => thread.threadId);
          return ids.length === 2 && ids.every((id) => !threadsBefore.includes(id));
        },
        10_000,
        'replacement workers',
      );
      const later = await rotor.api('publish', { channel, data: { n: 'later' } });
      assert.equal(later.error, undefined);
      assert.equal(later.result.epoch, first.result.epoch);

      // Committed history survived: offsets stay contiguous, with no gap and no reuse.
      const history = await rotor.api('history', { channel, limit: -1 });
      const offsets = history.result.publications.map((publication: { offset: number }) => publication.offset);
      assert.deepEqual(
        offsets,
        Array.from({ length: offsets.length }, (_, i) => i + 1),
      );
      assert.equal(offsets.at(-1), later.result.offset);
    } finally {
      await rotor.close();
    }
  });
});

describe('scheduler', () => {
  test('batching off keeps order', async () => {
    const dir = tempDir();
    const { config } = loadConfig({ overrides: { ...HISTORY, log_level: 'none', data_dir: dir.path } });
    const scheduler = new Scheduler({
      workers: 2,
      shards: 4,
      batching: false,
      workerData: { config, dataDir: dir.path },
      logger: createLogger('none'),
    });
    try {
      const positions = await Promise.all(Array.from({ length: 300 }, (_, i) => scheduler.send({ type: 'publish', channel: 'unbatched', data: `${i}` })));
      assert.deepEqual(
        positions.map((position) => position.offset),
        Array.from({ length: 300 }, (_, i) => i + 1),
      );
    } finally {
      await scheduler.close();
      dir.remove();
    }
  });

  test('close waits for commands in flight', async () => {
    const dir = tempDir();
    const { config } = loadConfig({ overrides: { ...HISTORY, log_level: 'none', data_dir: dir.path } });
    const scheduler = new Scheduler({ workers: 1, shards: 2, workerData: { config, dataDir: dir.path }, logger: createLogger('none') });
    const pending = Array.from({ length: 100 }, (_, i) => scheduler.send({ type: 'publish', channel: 'drain', data: `${i}` }));
    await scheduler.close();
    const positions = await Promise.all(pending);
    assert.equal(positions.at(-1)!.offset, 100);
    await assert.rejects(scheduler.send({ type: 'publish', channel: 'drain', data: '1' }), { name: 'RotorError' });
    dir.remove();
  });
});
