import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { HistoryStore, StreamPolicy } from '../src/storage/history-store.js';
import { MemoryHistoryStore } from '../src/storage/memory.js';
import { SqliteHistoryStore } from '../src/storage/sqlite.js';
import { RotorError } from '../src/protocol/codes.js';
import { tempDir } from './helpers/server.js';

const dir = tempDir();
after(() => dir.remove());

let fileCounter = 0;
const stores: Array<[string, () => HistoryStore]> = [
  ['memory', () => new MemoryHistoryStore()],
  ['sqlite', () => new SqliteHistoryStore(join(dir.path, `store-${fileCounter++}.sqlite`))],
];

const POLICY: StreamPolicy = { size: 10, ttl: 60_000, metaTtl: 3_600_000 };
const T0 = 1_700_000_000_000;

function publishN(store: HistoryStore, channel: string, count: number, policy = POLICY, now = T0): void {
  for (let i = 1; i <= count; i++) store.publish(channel, { data: JSON.stringify({ n: i }) }, policy, now);
}

function offsets(store: HistoryStore, channel: string, query: Parameters<HistoryStore['history']>[1], policy = POLICY, now = T0): number[] {
  return store.history(channel, query, policy, now).publications.map((publication) => publication.offset);
}

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof RotorError) return err.reply.code;
    throw err;
  }
  return undefined;
}

for (const [kind, create] of stores) {
  describe(`${kind} history store`, () => {
    test('offsets start at 1 without gaps', () => {
      const store = create();
      const positions = Array.from({ length: 5 }, (_, i) => store.publish('a', { data: `${i}` }, POLICY, T0));
      assert.deepEqual(
        positions.map((position) => position.offset),
        [1, 2, 3, 4, 5],
      );
      assert.equal(new Set(positions.map((position) => position.epoch)).size, 1);
      assert.match(positions[0]!.epoch, /^[A-Za-z0-9]{8}$/);
      store.close();
    });

    test('channels have separate streams', () => {
      const store = create();
      publishN(store, 'a', 3);
      const b = store.publish('b', { data: '1' }, POLICY, T0);
      assert.equal(b.offset, 1);
      assert.notEqual(b.epoch, store.history('a', { limit: 0, reverse: false }, POLICY, T0).epoch);
      store.close();
    });

    test('history keeps data, info and tags', () => {
      const store = create();
      const info = { user: '42', client: 'c1', conn_info: '{"name":"Ann"}' };
      store.publish('a', { data: '{"text":"hi"}', info, tags: { kind: 'greeting' } }, POLICY, T0);
      store.publish('a', { data: new Uint8Array([1, 2, 255]) }, POLICY, T0);
      const [first, second] = store.history('a', { limit: -1, reverse: false }, POLICY, T0).publications;
      assert.equal(first!.data, '{"text":"hi"}');
      assert.deepEqual(first!.info, info);
      assert.deepEqual(first!.tags, { kind: 'greeting' });
      assert.deepEqual([...(second!.data as Uint8Array)], [1, 2, 255]);
      store.close();
    });

    test('limit, since and reverse combinations', () => {
      const store = create();
      publishN(store, 'a', 8);
      const cases: Array<[string, Parameters<HistoryStore['history']>[1], number[]]> = [
        ['limit 0 returns position only', { limit: 0, reverse: false }, []],
        ['limit -1 returns all', { limit: -1, reverse: false }, [1, 2, 3, 4, 5, 6, 7, 8]],
        ['limit 3 forward', { limit: 3, reverse: false }, [1, 2, 3]],
        ['limit 3 reverse', { limit: 3, reverse: true }, [8, 7, 6]],
        ['all reverse', { limit: -1, reverse: true }, [8, 7, 6, 5, 4, 3, 2, 1]],
        ['since forward', { limit: -1, reverse: false, since: { offset: 5, epoch: '' } }, [6, 7, 8]],
        ['since forward limited', { limit: 2, reverse: false, since: { offset: 2, epoch: '' } }, [3, 4]],
        ['since at top', { limit: -1, reverse: false, since: { offset: 8, epoch: '' } }, []],
        ['since past top', { limit: -1, reverse: false, since: { offset: 20, epoch: '' } }, []],
        ['since reverse', { limit: -1, reverse: true, since: { offset: 4, epoch: '' } }, [3, 2, 1]],
        ['since reverse limited', { limit: 2, reverse: true, since: { offset: 8, epoch: '' } }, [7, 6]],
        ['since reverse past top', { limit: 2, reverse: true, since: { offset: 100, epoch: '' } }, [8, 7]],
        ['since 0 forward', { limit: -1, reverse: false, since: { offset: 0, epoch: '' } }, [1, 2, 3, 4, 5, 6, 7, 8]],
      ];
      for (const [name, query, expected] of cases) assert.deepEqual(offsets(store, 'a', query), expected, name);
      store.close();
    });

    test('position is returned with every history result', () => {
      const store = create();
      publishN(store, 'a', 4);
      const result = store.history('a', { limit: 0, reverse: false }, POLICY, T0);
      assert.equal(result.offset, 4);
      assert.equal(result.publications.length, 0);
      store.close();
    });

    test('since with another epoch is 112', () => {
      const store = create();
      publishN(store, 'a', 2);
      assert.equal(codeOf(() => store.history('a', { limit: -1, reverse: false, since: { offset: 1, epoch: 'other' } }, POLICY, T0)), 112);
      const epoch = store.history('a', { limit: 0, reverse: false }, POLICY, T0).epoch;
      assert.deepEqual(offsets(store, 'a', { limit: -1, reverse: false, since: { offset: 1, epoch } }), [2]);
      store.close();
    });

    test('reverse with since offset 0 is 107', () => {
      const store = create();
      publishN(store, 'a', 2);
      assert.equal(codeOf(() => store.history('a', { limit: -1, reverse: true, since: { offset: 0, epoch: '' } }, POLICY, T0)), 107);
      store.close();
    });

    test('trimming keeps history_size newest', () => {
      const store = create();
      publishN(store, 'a', 25);
      assert.deepEqual(offsets(store, 'a', { limit: -1, reverse: false }), [16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
      assert.deepEqual(offsets(store, 'a', { limit: -1, reverse: false, since: { offset: 3, epoch: '' } }), [16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
      assert.deepEqual(offsets(store, 'a', { limit: 2, reverse: true, since: { offset: 17, epoch: '' } }), [16]);
      store.close();
    });

    test('smaller history_size applies to old streams', () => {
      const store = create();
      publishN(store, 'a', 10);
      assert.deepEqual(offsets(store, 'a', { limit: -1, reverse: false }, { ...POLICY, size: 3 }), [8, 9, 10]);
      store.close();
    });

    test('ttl expires publications and keeps position', () => {
      const store = create();
      publishN(store, 'a', 3);
      const before = store.history('a', { limit: -1, reverse: false }, POLICY, T0 + POLICY.ttl - 1);
      assert.equal(before.publications.length, 3);
      const after = store.history('a', { limit: -1, reverse: false }, POLICY, T0 + POLICY.ttl);
      assert.equal(after.publications.length, 0);
      assert.equal(after.offset, 3);
      assert.equal(after.epoch, before.epoch);
      const next = store.publish('a', { data: '4' }, POLICY, T0 + POLICY.ttl + 1);
      assert.equal(next.offset, 4);
      assert.equal(next.epoch, before.epoch);
      assert.deepEqual(offsets(store, 'a', { limit: -1, reverse: false }, POLICY, T0 + POLICY.ttl + 1), [4]);
      store.close();
    });

    test('each publish extends the ttl', () => {
      const store = create();
      store.publish('a', { data: '1' }, POLICY, T0);
      store.publish('a', { data: '2' }, POLICY, T0 + POLICY.ttl - 10);
      assert.deepEqual(offsets(store, 'a', { limit: -1, reverse: false }, POLICY, T0 + POLICY.ttl + 10), [1, 2]);
      store.close();
    });

    test('meta ttl starts a new epoch', () => {
      const store = create();
      publishN(store, 'a', 3);
      const old = store.history('a', { limit: 0, reverse: false }, POLICY, T0);
      const later = T0 + POLICY.metaTtl;
      const fresh = store.publish('a', { data: '1' }, POLICY, later);
      assert.equal(fresh.offset, 1);
      assert.notEqual(fresh.epoch, old.epoch);
      assert.deepEqual(offsets(store, 'a', { limit: -1, reverse: false }, POLICY, later), [1]);
      store.close();
    });

    test('meta ttl 0 keeps the stream forever', () => {
      const store = create();
      const policy = { ...POLICY, metaTtl: 0 };
      const first = store.publish('a', { data: '1' }, policy, T0);
      const second = store.publish('a', { data: '2' }, policy, T0 + 10 * 365 * 86_400_000);
      assert.equal(second.offset, 2);
      assert.equal(second.epoch, first.epoch);
      store.close();
    });

    test('reading an empty channel creates a stream', () => {
      const store = create();
      const read = store.history('fresh', { limit: 0, reverse: false }, POLICY, T0);
      assert.equal(read.offset, 0);
      assert.notEqual(read.epoch, '');
      const published = store.publish('fresh', { data: '1' }, POLICY, T0);
      assert.equal(published.epoch, read.epoch);
      store.close();
    });

    test('removeHistory keeps offset and epoch', () => {
      const store = create();
      publishN(store, 'a', 5);
      const before = store.history('a', { limit: 0, reverse: false }, POLICY, T0);
      store.removeHistory('a', T0);
      const after = store.history('a', { limit: -1, reverse: false }, POLICY, T0);
      assert.deepEqual(after.publications, []);
      assert.equal(after.offset, 5);
      assert.equal(after.epoch, before.epoch);
      assert.equal(store.publish('a', { data: '6' }, POLICY, T0).offset, 6);
      store.removeHistory('never-published', T0);
      store.close();
    });

    test('sweep deletes expired streams', () => {
      const store = create();
      publishN(store, 'a', 2);
      const epoch = store.history('a', { limit: 0, reverse: false }, POLICY, T0).epoch;
      store.sweep(T0 + POLICY.metaTtl);
      const recreated = store.history('a', { limit: 0, reverse: false }, POLICY, T0 + POLICY.metaTtl);
      assert.equal(recreated.offset, 0);
      assert.notEqual(recreated.epoch, epoch);
      store.close();
    });

    test('failed batch leaves no trace', () => {
      const store = create();
      publishN(store, 'a', 2);
      assert.throws(() =>
        store.batch(() => {
          store.publish('a', { data: '3' }, POLICY, T0);
          store.publish('new', { data: '1' }, POLICY, T0);
          throw new Error('boom');
        }),
      );
      assert.deepEqual(offsets(store, 'a', { limit: -1, reverse: false }), [1, 2]);
      assert.equal(store.publish('a', { data: '3' }, POLICY, T0).offset, 3);
      assert.equal(store.history('new', { limit: 0, reverse: false }, POLICY, T0).offset, 0);
      store.close();
    });
  });
}

test('sqlite history survives reopening', () => {
  const path = join(dir.path, 'reopen.sqlite');
  const first = new SqliteHistoryStore(path);
  publishN(first, 'a', 3);
  const epoch = first.history('a', { limit: 0, reverse: false }, POLICY, T0).epoch;
  first.close();
  const second = new SqliteHistoryStore(path);
  const read = second.history('a', { limit: -1, reverse: false }, POLICY, T0);
  assert.equal(read.epoch, epoch);
  assert.deepEqual(
    read.publications.map((publication) => publication.data),
    ['{"n":1}', '{"n":2}', '{"n":3}'],
  );
  assert.equal(second.publish('a', { data: '4' }, POLICY, T0).offset, 4);
  second.close();
});
