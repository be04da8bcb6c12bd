/**
 * Measures persisted publications per second through the channel actor pool with SQLite
 * history on: batching on and off, across many channels and on one hot channel. The
 * reference is a plain better-sqlite3 loop in this thread, measured in the same run with
 * the same channels. It runs the SQL of the history store (same tables, one file per
 * shard, one transaction per 1,000 rows). Each pool figure is given as a ratio to it, that
 * is, to what SQLite alone does on this machine.
 *
 * Usage: npm run perf:actors -- [--duration SECONDS] [--rounds N] [--workers N]
 *          [--shards N] [--window N] [--channels N] [--history-size N]
 *
 * Every round measures every scenario once, so machine noise hits all of them alike; the
 * summary gives the median over rounds. The last line on stdout is one JSON object.
 * The script fails (exit code 1) when a publish fails, an offset is skipped or repeated,
 * or the committed stream offsets do not add up to the acknowledged publications.
 */
import Database from 'better-sqlite3';
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { shardOf } from '../src/actors/messages.js';
import { Scheduler } from '../src/actors/scheduler.js';
import { loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import type { StreamPosition } from '../src/storage/history-store.js';
import { SQLITE_SCHEMA } from '../src/storage/sqlite.js';
import { machine, median, positiveInt, printUsageOnHelp, round, tempDir, threadCpuTimes } from './common.js';

/** Persisted publications per second the pool must reach with batching on, across many channels. */
const TARGET_BATCHED = 200_000;
/** Rows per transaction in the SQLite reference loop. */
const REFERENCE_ROWS_PER_TRANSACTION = 1_000;
/** Load before each measurement, not counted: JIT warm-up, worker start, stream creation. */
const WARMUP_MS = 1_000;


interface Settings {
  readonly durationMs: number;
  readonly rounds: number;
  readonly workers: number;
  readonly shards: number;
  /** Publishes kept in flight: a new one is sent as each one resolves. */
  readonly window: number;
  readonly channels: number;
  readonly historySize: number;
}

interface Scenario {
  readonly name: string;
  readonly description: string;
  /** Batching on or off; undefined for the SQLite reference. */
  readonly batching?: boolean;
  readonly channels: number;
  /** The SQLite scenario whose rate, in the same round, this one is compared with. */
  readonly reference?: string;
}

interface Measurement {
  /** Publications acknowledged per second in the measured phase. */
  readonly rate: number;
  readonly publications: number;
  readonly elapsedMs: number;
  /** CPU time per publication in the measured phase; undefined without /proc. */
  cpu?: CpuPerPublication;
}

/** CPU microseconds per publication, by thread. */
interface CpuPerPublication {
  /** The main thread: the load, the scheduler and the promises (the whole SQLite reference). */
  readonly main: number;
  /** The actor pool's worker threads. */
  readonly pool: number;
  /** Every other thread of the process: V8's garbage collector helpers and libuv. */
  readonly other: number;
}

/**
 * Splits the CPU time spent between two snapshots of `threadCpuTimes` into main thread,
 * pool threads (those missing from `before`, which was taken before the pool started)
 * and the rest, per publication.
 */
function cpuPerPublication(
  before: ReadonlyMap<number, number>,
  start: ReadonlyMap<number, number>,
  end: ReadonlyMap<number, number>,
  publications: number,
): CpuPerPublication {
  let main = 0;
  let pool = 0;
  let other = 0;
  for (const [tid, ms] of end) {
    const spent = ms - (start.get(tid) ?? 0);
    if (tid === process.pid) main += spent;
    else if (before.has(tid)) other += spent;
    else pool += spent;
  }
  const perPublication = (ms: number): number => (ms * 1000) / publications;
  return { main: perPublication(main), pool: perPublication(pool), other: perPublication(other) };
}

function readSettings(): Settings {
  printUsageOnHelp(import.meta.url);
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      rounds: { type: 'string' },
      workers: { type: 'string' },
      shards: { type: 'string' },
      window: { type: 'string' },
      channels: { type: 'string' },
      'history-size': { type: 'string' },
    },
    strict: true,
  });
  const shards = positiveInt('shards', values.shards, 16);
  // The server's default: one thread per spare core, at most one per shard.
  const defaultWorkers = Math.min(Math.max(1, Math.min(8, availableParallelism() - 1)), shards);
  return {
    durationMs: positiveInt('duration', values.duration, 5) * 1000,
    rounds: positiveInt('rounds', values.rounds, 3),
    workers: positiveInt('workers', values.workers, defaultWorkers),
    shards,
    window: positiveInt('window', values.window, 8192),
    channels: positiveInt('channels', values.channels, 1000),
    historySize: positiveInt('history-size', values['history-size'], 100),
  };
}

/** Returns the data of publication number `seq`: about 40 bytes of JSON text. */
function payload(seq: number): string {
  return `{"seq":${seq},"text":"perf publication"}`;
}

/** The SQLite reference: one file per shard with its channels' stream rows and prepared statements. */
interface ReferenceShard {
  readonly db: Database.Database;
  readonly streamIds: number[];
  /** Round-robin position in `streamIds`. */
  next: number;
  readonly insert: Database.Statement;
  readonly update: Database.Statement;
  readonly trim: Database.Statement;
  write?: () => void;
}

/**
 * Writes publications straight into SQLite from this thread, with no actor pool and no
 * stream logic in between. It uses the tables and file-per-shard layout of the history
 * store. Each transaction runs what a batch commit of the store runs: 1,000 row inserts,
 * then one stream-row update and one delete of rows older than `historySize` for each
 * stream touched. Shards take turns, one transaction each.
 */
function measureSqlite(settings: Settings, channels: number): Measurement {
  const dir = tempDir('rotor-perf-sqlite-');
  const shards: ReferenceShard[] = [];
  try {
    for (let index = 0; index < settings.shards; index++) {
      const db = new Database(join(dir.path, `shard-${index}.sqlite`));
      // The pragmas of SqliteHistoryStore, so both sides run SQLite configured alike.
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('wal_autocheckpoint = 10000');
      db.pragma('journal_size_limit = 67108864');
      db.exec(SQLITE_SCHEMA);
      shards.push({
        db,
        streamIds: [],
        next: 0,
        insert: db.prepare('INSERT INTO publications (stream, offset, data, info, tags) VALUES (?, ?, ?, ?, ?)'),
        update: db.prepare('UPDATE streams SET epoch = ?, top = ?, floor = ?, expires_at = ?, meta_expires_at = ? WHERE id = ?'),
        trim: db.prepare('DELETE FROM publications WHERE stream = ? AND offset <= ?'),
      });
    }
    for (let i = 0; i < channels; i++) {
      const name = channelName(i, channels);
      const shard = shards[shardOf(name, settings.shards)]!;
      shard.db.prepare('INSERT INTO streams (id, channel, epoch, top, floor, expires_at, meta_expires_at) VALUES (?, ?, ?, 0, 0, 0, 0)').run(i + 1, name, 'perfrefx');
      shard.streamIds.push(i + 1);
    }

    const tops = new Uint32Array(channels + 1);
    let seq = 0;
    const used = shards.filter((shard) => shard.streamIds.length > 0);
    for (const shard of used) {
      shard.write = shard.db.transaction(() => {
        const touched = new Set<number>();
        for (let i = 0; i < REFERENCE_ROWS_PER_TRANSACTION; i++) {
          const stream = shard.streamIds[shard.next++ % shard.streamIds.length]!;
          tops[stream]! += 1;
          shard.insert.run(stream, tops[stream]!, payload(seq), null, null);
          seq++;
          touched.add(stream);
        }
        const now = Date.now();
        for (const stream of touched) {
          const floor = Math.max(0, tops[stream]! - settings.historySize);
          shard.update.run('perfrefx', tops[stream]!, floor, now + 300_000, now + 300_000, stream);
          if (floor > 0) shard.trim.run(stream, floor);
        }
      });
    }

    let turn = 0;
    const warmupEnd = performance.now() + WARMUP_MS;
    while (performance.now() < warmupEnd) used[turn++ % used.length]!.write!();
    const warmupRows = seq;
    const cpuStart = threadCpuTimes();
    const start = performance.now();
    while (performance.now() - start < settings.durationMs) used[turn++ % used.length]!.write!();
    const elapsedMs = performance.now() - start;
    const cpuEnd = threadCpuTimes();

    let stored = 0;
    for (const shard of used) stored += shard.db.prepare('SELECT sum(top) FROM streams').pluck().get() as number;
    if (stored !== seq) throw new Error(`SQLite reference streams add up to offset ${stored}, expected ${seq}`);
    const publications = seq - warmupRows;
    const measurement: Measurement = { rate: (publications * 1000) / elapsedMs, publications, elapsedMs };
    if (cpuStart !== undefined && cpuEnd !== undefined) measurement.cpu = cpuPerPublication(cpuStart, cpuStart, cpuEnd, publications);
    return measurement;
  } finally {
    for (const shard of shards) shard.db.close();
    dir.remove();
  }
}

/** Returns the name of channel `index` out of `count`; a single channel is the hot one. */
function channelName(index: number, count: number): string {
  return count === 1 ? 'perf-hot' : `perf-${index}`;
}

/** Checks that each channel's offsets resolve as 1, 2, 3, ... within one epoch. */
class OffsetChecker {
  private readonly tops: Uint32Array;
  private readonly epochs: string[];

  constructor(private readonly names: readonly string[]) {
    this.tops = new Uint32Array(names.length);
    this.epochs = new Array<string>(names.length).fill('');
  }

  record(index: number, position: StreamPosition): void {
    const expected = this.tops[index]! + 1;
    if (position.offset !== expected) {
      throw new Error(`channel ${this.names[index]}: publish resolved with offset ${position.offset}, expected ${expected}`);
    }
    if (expected === 1) this.epochs[index] = position.epoch;
    else if (position.epoch !== this.epochs[index]) {
      throw new Error(`channel ${this.names[index]}: epoch changed from ${this.epochs[index]} to ${position.epoch} during the run`);
    }
    this.tops[index] = expected;
  }
}

/**
 * Publishes round-robin over `names` for `durationMs`, keeping `window` publishes in
 * flight, and resolves once the last one has settled. Rejects on the first failure.
 */
function drive(
  scheduler: Scheduler,
  names: readonly string[],
  checker: OffsetChecker,
  window: number,
  durationMs: number,
  firstSeq: number,
): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let seq = firstSeq;
    let inFlight = 0;
    let acknowledged = 0;
    let stopping = false;
    let failed = false;
    const timer = setTimeout(() => {
      stopping = true;
    }, durationMs);

    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      stopping = true;
      clearTimeout(timer);
      reject(err);
    };
    const publish = (): void => {
      const index = seq % names.length;
      inFlight++;
      scheduler.send({ type: 'publish', channel: names[index]!, data: payload(seq) }).then((position) => {
        inFlight--;
        acknowledged++;
        try {
          checker.record(index, position);
        } catch (err) {
          fail(err);
          return;
        }
        if (!stopping) publish();
        else if (inFlight === 0 && !failed) {
          const elapsedMs = performance.now() - start;
          resolve({ rate: (acknowledged * 1000) / elapsedMs, publications: acknowledged, elapsedMs });
        }
      }, fail);
      seq++;
    };
    for (let i = 0; i < window; i++) publish();
  });
}

/** Returns the sum of the stream offsets committed in the shard files of `dataDir`. */
function committedOffsets(dataDir: string): number {
  let total = 0;
  for (const file of readdirSync(dataDir)) {
    if (!/^shard-\d+\.sqlite$/.test(file)) continue;
    const db = new Database(join(dataDir, file), { readonly: true });
    try {
      total += db.prepare('SELECT coalesce(sum(top), 0) FROM streams').pluck().get() as number;
    } finally {
      db.close();
    }
  }
  return total;
}

/** Runs the actor pool on a fresh data directory, measures it, then checks what was committed. */
async function measurePool(settings: Settings, scenario: Scenario): Promise<Measurement> {
  const dir = tempDir('rotor-perf-actors-');
  const threadsBefore = threadCpuTimes();
  const { config } = loadConfig({
    overrides: { history_size: settings.historySize, history_ttl: '300s', data_dir: dir.path, log_level: 'none' },
  });
  const scheduler = new Scheduler({
    workers: settings.workers,
    shards: settings.shards,
    workerData: { config, dataDir: dir.path },
    logger: createLogger('none'),
    batching: scenario.batching ?? true,
  });
  try {
    const names = Array.from({ length: scenario.channels }, (_, i) => channelName(i, scenario.channels));
    const checker = new OffsetChecker(names);
    const warmup = await drive(scheduler, names, checker, settings.window, WARMUP_MS, 0);
    const cpuStart = threadCpuTimes();
    const measured = await drive(scheduler, names, checker, settings.window, settings.durationMs, warmup.publications);
    const cpuEnd = threadCpuTimes();
    if (threadsBefore !== undefined && cpuStart !== undefined && cpuEnd !== undefined) {
      measured.cpu = cpuPerPublication(threadsBefore, cpuStart, cpuEnd, measured.publications);
    }
    await scheduler.close();
    const committed = committedOffsets(dir.path);
    const acknowledged = warmup.publications + measured.publications;
    if (committed !== acknowledged) {
      throw new Error(`${scenario.name}: streams in SQLite add up to offset ${committed}, but ${acknowledged} publishes were acknowledged`);
    }
    return measured;
  } finally {
    await scheduler.close();
    dir.remove();
  }
}

async function main(): Promise<void> {
  const settings = readSettings();
  const spread = settings.channels;
  const scenarios: Scenario[] = [
    // Each batched pool scenario runs right after its reference, so drift of the machine's load skews their ratio least.
    { name: 'sqlite_spread', description: `SQLite reference, ${spread} channels`, channels: spread },
    { name: 'pool_batched_spread', description: `pool, batching on, ${spread} channels`, batching: true, channels: spread, reference: 'sqlite_spread' },
    { name: 'sqlite_hot', description: 'SQLite reference, 1 hot channel', channels: 1 },
    { name: 'pool_batched_hot', description: 'pool, batching on, 1 hot channel', batching: true, channels: 1, reference: 'sqlite_hot' },
    { name: 'pool_unbatched_spread', description: `pool, batching off, ${spread} channels`, batching: false, channels: spread, reference: 'sqlite_spread' },
    { name: 'pool_unbatched_hot', description: 'pool, batching off, 1 hot channel', batching: false, channels: 1, reference: 'sqlite_hot' },
  ];
  const startedAt = performance.now();
  const host = machine();
  console.log(
    `perf:actors on ${host.cpus} CPUs (${host.cpuModel}), node ${host.node}: ${settings.workers} worker(s), ${settings.shards} shards, ` +
      `window ${settings.window}, history_size ${settings.historySize}, ${settings.durationMs / 1000} s per measurement, ${settings.rounds} rounds`,
  );

  const rates = new Map<string, number[]>(scenarios.map((scenario) => [scenario.name, []]));
  const ratios = new Map<string, number[]>(scenarios.map((scenario) => [scenario.name, []]));
  const cpus = new Map<string, CpuPerPublication[]>(scenarios.map((scenario) => [scenario.name, []]));
  for (let roundIndex = 1; roundIndex <= settings.rounds; roundIndex++) {
    const roundRates = new Map<string, number>();
    for (const scenario of scenarios) {
      const result = scenario.batching === undefined ? measureSqlite(settings, scenario.channels) : await measurePool(settings, scenario);
      roundRates.set(scenario.name, result.rate);
      rates.get(scenario.name)!.push(result.rate);
      let comparison = '';
      if (scenario.reference !== undefined) {
        const ratio = result.rate / roundRates.get(scenario.reference)!;
        ratios.get(scenario.name)!.push(ratio);
        comparison = `, ${ratio.toFixed(3)} of ${scenario.reference}`;
      }
      if (result.cpu !== undefined) cpus.get(scenario.name)!.push(result.cpu);
      console.log(
        `round ${roundIndex} ${scenario.name.padEnd(22)} ${formatRate(result.rate)} publications/s` +
          ` (${result.publications} in ${(result.elapsedMs / 1000).toFixed(2)} s${comparison}${formatCpu(result.cpu)})`,
      );
    }
  }

  console.log(`\nmedian of ${settings.rounds} rounds (ratios and CPU times are medians of the per-round values):`);
  const results: Record<string, { description: string; rate: number; runs: number[]; reference?: string; ratio?: number; cpuMicroseconds?: CpuPerPublication }> = {};
  for (const scenario of scenarios) {
    const runs = rates.get(scenario.name)!;
    const rate = median(runs);
    const result: (typeof results)[string] = { description: scenario.description, rate: round(rate), runs: runs.map((run) => round(run)) };
    let comparison = '';
    if (scenario.reference !== undefined) {
      result.reference = scenario.reference;
      result.ratio = round(median(ratios.get(scenario.name)!), 3);
      comparison = `, ${result.ratio.toFixed(3)} of ${scenario.reference}`;
    }
    const cpu = cpus.get(scenario.name)!;
    if (cpu.length > 0) {
      result.cpuMicroseconds = {
        main: round(median(cpu.map((entry) => entry.main)), 2),
        pool: round(median(cpu.map((entry) => entry.pool)), 2),
        other: round(median(cpu.map((entry) => entry.other)), 2),
      };
    }
    results[scenario.name] = result;
    console.log(`  ${scenario.name.padEnd(22)} ${formatRate(rate)} publications/s${comparison}${formatCpu(result.cpuMicroseconds)}`);
  }

  const batched = results.pool_batched_spread!.rate;
  const met = batched >= TARGET_BATCHED;
  const verdict = `${formatRate(batched).trim()} ${met ? '>=' : '<'} ${formatRate(TARGET_BATCHED).trim()} persisted publications/s through the pool with batching on`;
  console.log(met ? `target met: ${verdict}` : `TARGET MISSED: ${verdict}`);
  console.log(
    JSON.stringify({
      benchmark: 'actors',
      date: new Date().toISOString(),
      machine: host,
      settings: { ...settings, warmupMs: WARMUP_MS, referenceRowsPerTransaction: REFERENCE_ROWS_PER_TRANSACTION },
      results,
      target: { scenario: 'pool_batched_spread', rate: TARGET_BATCHED, met },
      seconds: round((performance.now() - startedAt) / 1000, 1),
    }),
  );
}

function formatRate(rate: number): string {
  return Math.round(rate).toLocaleString('en-US').padStart(9);
}

function formatCpu(cpu: CpuPerPublication | undefined): string {
  if (cpu === undefined) return '';
  return `; CPU µs per publication: main ${cpu.main.toFixed(2)}, pool ${cpu.pool.toFixed(2)}, other ${cpu.other.toFixed(2)}`;
}

main().catch((err: unknown) => {
  console.error(`perf:actors failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
