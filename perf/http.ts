/**
 * Measures five ApacheBench runs: nginx serving a static file, Rotor serving the same
 * file, Rotor rendering its status page, and nginx serving that page from its proxy cache,
 * twice. The checks before measuring fill the cache, so both cache runs start warm. A
 * keep-alive variant repeats the five runs with more requests. Every rate is given as a
 * ratio to nginx's static file rate measured in the same round.
 *
 * Usage: npm run perf:http -- [--rounds N] [--requests N] [--concurrency N]
 *          [--keepalive-requests N]
 *
 * The script builds Rotor when dist/ is missing or stale, starts it (port 8000) and nginx
 * with the repository's nginx.conf (port 8080), both on 127.0.0.1. When either port is
 * taken it picks two free ones. Before measuring it checks that every URL returns 200 with
 * the expected body. It fails (exit code 1) on any non-2xx response, failed request or
 * length mismatch. A missed target is reported in the output but does not fail the run.
 * Everything it started is stopped on exit, on error and on Ctrl-C.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { STATUS_MARKER } from '../src/web/status.js';
import { machine, median, positiveInt, printUsageOnHelp, round } from './common.js';
import { checkAbResult, runAb, type AbResult } from './lib/http-ab.js';
import { prepareNginxPrefix, REPO_ROOT, startNginx, testNginxConfig } from './lib/http-nginx.js';
import { findTool, freePort, INSTALL_HINT, isPortFree, stopAllChildren } from './lib/http-process.js';
import { ensureBuilt, startRotor } from './lib/http-rotor.js';
import { sampleTree } from './lib/pubsub-system.js';

/** Rotor's status page rate, direct, as a share of nginx's static file rate. */
const TARGET_DYNAMIC_DIRECT = 0.6;
/** nginx's rate for the cached status page as a share of its static file rate. */
const TARGET_CACHE_HIT = 0.9;
/** Bounds on the status page size; the page is about 9 KB. */
const STATUS_MIN_BYTES = 4 * 1024;
const STATUS_MAX_BYTES = 64 * 1024;
const STATIC_PATH = '/static/sample.html';
const STATIC_FILE = join(REPO_ROOT, 'public', 'static', 'sample.html');
const STATUS_PATH = '/status';

type Server = 'nginx' | 'rotor';

interface RunSpec {
  readonly number: number;
  readonly title: string;
  /** Russian title of the run, as earlier Russian-language reports of these runs name it (with Rotor as the application server). */
  readonly titleRu: string;
  readonly server: Server;
  readonly path: string;
  readonly target?: { readonly ratio: number; readonly what: string };
}

const RUNS: readonly RunSpec[] = [
  {
    number: 1,
    title: 'Static file, nginx directly',
    titleRu: 'Отдача статического документа напрямую через Nginx',
    server: 'nginx',
    path: STATIC_PATH,
  },
  { number: 2, title: 'Static file, Rotor', titleRu: 'Отдача статики через Rotor', server: 'rotor', path: STATIC_PATH },
  {
    number: 3,
    title: 'Dynamic page, Rotor directly',
    titleRu: 'Отдача динамического документа напрямую через Rotor',
    server: 'rotor',
    path: STATUS_PATH,
    target: { ratio: TARGET_DYNAMIC_DIRECT, what: 'Rotor dynamic page, direct' },
  },
  {
    number: 4,
    title: 'Dynamic page, nginx proxy to Rotor + cache',
    titleRu: 'Отдача динамического документа через проксирование запроса с Nginx на Rotor +кэш',
    server: 'nginx',
    path: STATUS_PATH,
    target: { ratio: TARGET_CACHE_HIT, what: 'nginx proxy-cache hit' },
  },
  {
    number: 5,
    title: 'Dynamic page, nginx proxy to Rotor + cache (again)',
    titleRu: 'Отдача динамического документа через проксирование запроса с Nginx на Rotor +кэш',
    server: 'nginx',
    path: STATUS_PATH,
    target: { ratio: TARGET_CACHE_HIT, what: 'nginx proxy-cache hit' },
  },
];

interface Settings {
  readonly rounds: number;
  readonly requests: number;
  readonly concurrency: number;
  readonly keepAliveRequests: number;
}

interface Variant {
  readonly name: string;
  readonly keepAlive: boolean;
  readonly requests: number;
}

/** The measurements of one run over all rounds. */
interface RunRecord {
  readonly spec: RunSpec;
  readonly results: AbResult[];
  /** Rate divided by run 1's rate of the same round, one per round. */
  readonly ratios: number[];
  /** Requests counted per X-Cache-Status value in nginx's access log, for runs through the cache. */
  readonly cacheStatuses: Map<string, number>;
  /**
   * Server CPU time per request in microseconds, one per round: the serving process tree,
   * plus Rotor's for runs through the nginx cache, whose misses Rotor renders. Unlike the
   * rate, it does not depend on how much CPU ab takes from the two cores.
   */
  readonly cpuPerRequest: number[];
}

/** Root process IDs of the servers, for CPU accounting. */
type ServerPids = Record<Server, number>;

/** A failed check: the benchmark would measure something other than what it claims. */
class CheckFailed extends Error {}

const log = (line: string): void => console.log(line);

function readSettings(): Settings {
  printUsageOnHelp(import.meta.url);
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string' },
      requests: { type: 'string' },
      concurrency: { type: 'string' },
      'keepalive-requests': { type: 'string' },
    },
    strict: true,
  });
  return {
    rounds: positiveInt('rounds', values.rounds, 5),
    requests: positiveInt('requests', values.requests, 1000),
    concurrency: positiveInt('concurrency', values.concurrency, 10),
    keepAliveRequests: positiveInt('keepalive-requests', values['keepalive-requests'], 20_000),
  };
}

/** Returns the tools, or exits with the install command when one is missing. */
function requireTools(): { nginx: string; ab: string } {
  const nginx = findTool('nginx');
  const ab = findTool('ab');
  const missing = [nginx === undefined ? 'nginx (Debian package nginx)' : '', ab === undefined ? 'ab (Debian package apache2-utils)' : ''].filter(Boolean);
  if (missing.length > 0) {
    console.error(`missing: ${missing.join(', ')}. Install with: ${INSTALL_HINT}`);
    process.exit(1);
  }
  return { nginx: nginx!, ab: ab! };
}

/** Uses ports 8000 and 8080 when both are free, otherwise two free ports. */
async function choosePorts(): Promise<{ rotor: number; nginx: number }> {
  if ((await isPortFree(8000)) && (await isPortFree(8080))) return { rotor: 8000, nginx: 8080 };
  const rotor = await freePort();
  let nginx = await freePort();
  while (nginx === rotor) nginx = await freePort();
  log(`port 8000 or 8080 is taken: using ${rotor} for Rotor and ${nginx} for nginx`);
  return { rotor, nginx };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function get(url: string): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const response = await fetch(url);
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new CheckFailed(message);
}

/**
 * Checks every URL before measuring: the static file from both servers must be
 * byte-for-byte the file on disk, and the status page must be the real page, of a sane
 * size, with a cache HIT through nginx. Returns the expected body length per URL.
 */
async function preflight(bases: Record<Server, string>): Promise<Map<string, number>> {
  const file = readFileSync(STATIC_FILE);
  const expected = new Map<string, number>();
  for (const server of ['nginx', 'rotor'] as const) {
    const url = bases[server] + STATIC_PATH;
    const response = await get(url);
    check(response.status === 200, `${url} returned ${response.status}, expected 200`);
    check(response.body.length === file.length, `${url} returned ${response.body.length} bytes, expected ${file.length} (${STATIC_FILE})`);
    check(sha256(response.body) === sha256(file), `${url} returned other bytes than ${STATIC_FILE} (sha256 differs)`);
    expected.set(url, file.length);
    log(`ok   ${url}: 200, ${file.length} bytes, sha256 ${sha256(file).slice(0, 16)}… matches the file`);
  }

  const directUrl = bases.rotor + STATUS_PATH;
  const direct = await get(directUrl);
  check(direct.status === 200, `${directUrl} returned ${direct.status}, expected 200`);
  check(direct.body.includes(STATUS_MARKER), `${directUrl} is not the status page: "${STATUS_MARKER}" is missing`);
  check(
    direct.body.length >= STATUS_MIN_BYTES && direct.body.length <= STATUS_MAX_BYTES,
    `${directUrl} returned ${direct.body.length} bytes, expected ${STATUS_MIN_BYTES} to ${STATUS_MAX_BYTES}`,
  );
  check(/max-age=\d+/.test(direct.headers.get('cache-control') ?? ''), `${directUrl} has no Cache-Control max-age, so nginx would not cache it`);
  expected.set(directUrl, direct.body.length);
  log(`ok   ${directUrl}: 200, ${direct.body.length} bytes, status page marker present`);

  const cachedUrl = bases.nginx + STATUS_PATH;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const first = await get(cachedUrl);
    const second = await get(cachedUrl);
    check(first.status === 200 && second.status === 200, `${cachedUrl} returned ${first.status} and ${second.status}, expected 200`);
    check(second.body.includes(STATUS_MARKER), `${cachedUrl} is not the status page: "${STATUS_MARKER}" is missing`);
    check(second.body.length === direct.body.length, `${cachedUrl} returned ${second.body.length} bytes, Rotor returned ${direct.body.length}`);
    const cacheStatus = second.headers.get('x-cache-status');
    if (cacheStatus === 'HIT') {
      expected.set(cachedUrl, second.body.length);
      log(`ok   ${cachedUrl}: 200, ${second.body.length} bytes, X-Cache-Status HIT on the second request`);
      return expected;
    }
    check(Date.now() < deadline, `${cachedUrl} never returned X-Cache-Status HIT in 10 s (last: ${cacheStatus ?? 'no header'})`);
  }
}

/** Returns the size of nginx's access log, so that a later read can skip the older lines. */
function logSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/**
 * Counts the cache statuses of the /status requests nginx logged after byte `from`. nginx
 * buffers its log for up to one second, so this polls until `requests` lines are there.
 */
async function countCacheStatuses(file: string, from: number, requests: number): Promise<Map<string, number>> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const text = readFileSync(file).subarray(from).toString('utf8');
    const counts = new Map<string, number>();
    let lines = 0;
    for (const match of text.matchAll(/"(?:GET|HEAD) \/status[ ?][^\n]*cache=(\S+)/g)) {
      counts.set(match[1]!, (counts.get(match[1]!) ?? 0) + 1);
      lines++;
    }
    if (lines >= requests) return counts;
    if (Date.now() > deadline) throw new CheckFailed(`nginx logged ${lines} of ${requests} /status requests in ${file} within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Requests sent to each URL before measuring, not counted: JIT warm-up, file and page caches. */
const WARMUP_REQUESTS = 2_000;

async function warmUp(ab: string, settings: Settings, bases: Record<Server, string>, expected: Map<string, number>): Promise<void> {
  for (const url of new Set(RUNS.map((spec) => bases[spec.server] + spec.path))) {
    const { result } = await runAb(ab, { url, requests: WARMUP_REQUESTS, concurrency: settings.concurrency, keepAlive: true });
    const problems = checkAbResult(result, WARMUP_REQUESTS, expected.get(url)!);
    if (problems.length > 0) throw new CheckFailed(`warm-up of ${url}: ${problems.join('; ')}`);
  }
  log(`warmed up: ${WARMUP_REQUESTS} keep-alive requests to each URL`);
}

async function measure(
  ab: string,
  variant: Variant,
  settings: Settings,
  bases: Record<Server, string>,
  expected: Map<string, number>,
  accessLog: string,
  pids: ServerPids,
): Promise<RunRecord[]> {
  const records: RunRecord[] = RUNS.map((spec) => ({ spec, results: [], ratios: [], cacheStatuses: new Map(), cpuPerRequest: [] }));
  for (let roundIndex = 1; roundIndex <= settings.rounds; roundIndex++) {
    let reference = 0;
    for (const record of records) {
      const { spec } = record;
      const url = bases[spec.server] + spec.path;
      const logStart = logSize(accessLog);
      let roots = [pids.nginx];
      if (spec.server === 'rotor') roots = [pids.rotor];
      else if (spec.path === STATUS_PATH) roots = [pids.nginx, pids.rotor];
      const cpuBefore = roots.reduce((sum, pid) => sum + sampleTree(pid).cpuSeconds, 0);
      const { result } = await runAb(ab, { url, requests: variant.requests, concurrency: settings.concurrency, keepAlive: variant.keepAlive });
      const cpuAfter = roots.reduce((sum, pid) => sum + sampleTree(pid).cpuSeconds, 0);
      record.cpuPerRequest.push(((cpuAfter - cpuBefore) * 1e6) / variant.requests);
      const problems = checkAbResult(result, variant.requests, expected.get(url)!);
      if (problems.length > 0) throw new CheckFailed(`${variant.name}, run ${spec.number} (${url}), round ${roundIndex}: ${problems.join('; ')}`);
      if (spec.number === 1) reference = result.requestsPerSecond;
      record.results.push(result);
      record.ratios.push(result.requestsPerSecond / reference);
      if (spec.server === 'nginx' && spec.path === STATUS_PATH) {
        for (const [status, count] of await countCacheStatuses(accessLog, logStart, variant.requests)) {
          record.cacheStatuses.set(status, (record.cacheStatuses.get(status) ?? 0) + count);
        }
      }
      const keepAlive = result.keepAliveRequests === undefined ? '' : `, ${result.keepAliveRequests} keep-alive`;
      log(`     ${variant.name} round ${roundIndex} run ${spec.number}: ${round(result.requestsPerSecond)} req/s${keepAlive}`);
    }
  }
  return records;
}

function cacheSummary(statuses: ReadonlyMap<string, number>): string {
  const total = [...statuses.values()].reduce((sum, count) => sum + count, 0);
  if (total === 0) return '';
  const hits = statuses.get('HIT') ?? 0;
  const others = [...statuses].filter(([status]) => status !== 'HIT').map(([status, count]) => `${status} ${count}`);
  return `HIT ${round((100 * hits) / total, 1)}%${others.length > 0 ? ` (${others.join(', ')})` : ''}`;
}

/** Prints the runs as a Markdown table of ab's report fields. */
function printTable(variant: Variant, settings: Settings, records: readonly RunRecord[]): void {
  log('');
  log(`### ${variant.name}: ab -n ${variant.requests} -c ${settings.concurrency}${variant.keepAlive ? ' -k' : ''}, median of ${settings.rounds} rounds`);
  log('');
  log('| # | Run | Прогон | Document path | Document length, bytes | Complete | Failed | Non-2xx | Requests/s | Ratio to run 1 | Server CPU µs/request | Time per request, ms | Transfer rate, KB/s | Longest request, ms | Cache |');
  log('|---|-----|--------|---------------|-----------------------:|---------:|-------:|--------:|-----------:|---------------:|----------------------:|---------------------:|--------------------:|--------------------:|-------|');
  for (const { spec, results, ratios, cacheStatuses, cpuPerRequest } of records) {
    const first = results[0]!;
    const cells = [
      String(spec.number),
      spec.title,
      spec.titleRu,
      `${spec.server === 'nginx' ? 'nginx' : 'Rotor'} ${first.documentPath}`,
      String(first.documentLength),
      String(results.reduce((sum, result) => sum + result.completeRequests, 0)),
      String(results.reduce((sum, result) => sum + result.failedRequests, 0)),
      String(results.reduce((sum, result) => sum + result.non2xxResponses, 0)),
      String(round(median(results.map((result) => result.requestsPerSecond)))),
      round(median(ratios), 2).toFixed(2),
      round(median(cpuPerRequest), 1).toFixed(1),
      round(median(results.map((result) => result.meanRequestMs)), 3).toFixed(3),
      String(round(median(results.map((result) => result.transferRateKBps)))),
      String(Math.max(...results.map((result) => result.percentilesMs.get(100) ?? 0))),
      cacheSummary(cacheStatuses),
    ];
    log(`| ${cells.join(' | ')} |`);
  }
}

/** Prints one line per target; returns the number of targets missed. */
function printTargets(variant: Variant, records: readonly RunRecord[]): number {
  let missed = 0;
  for (const { spec, ratios } of records) {
    if (spec.target === undefined) continue;
    const ratio = median(ratios);
    const met = ratio >= spec.target.ratio;
    if (!met) missed++;
    log(`${met ? 'MET   ' : 'MISSED'} ${variant.name}, run ${spec.number}: ${spec.target.what} ${ratio.toFixed(2)} of nginx static (target >= ${spec.target.ratio})`);
  }
  const non2xx = records.reduce((sum, record) => sum + record.results.reduce((total, result) => total + result.non2xxResponses, 0), 0);
  log(`${non2xx === 0 ? 'MET   ' : 'MISSED'} ${variant.name}: ${non2xx} non-2xx responses (target 0)`);
  return missed + (non2xx === 0 ? 0 : 1);
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const settings = readSettings();
  const tools = requireTools();
  ensureBuilt(log);
  const ports = await choosePorts();
  const runDir = join(REPO_ROOT, 'run', `perf-http-${process.pid}`);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping nginx and Rotor`);
      void stopAllChildren().finally(() => {
        rmSync(runDir, { recursive: true, force: true });
        process.exit(130);
      });
    });
  }

  let succeeded = false;
  try {
    prepareNginxPrefix({ dir: runDir, listenPort: ports.nginx, upstreamPort: ports.rotor });
    const configTest = testNginxConfig(tools.nginx, runDir);
    if (!configTest.ok) throw new CheckFailed(`nginx -t rejected nginx.conf:\n${configTest.output}`);

    const rotor = await startRotor(ports.rotor);
    const nginx = await startNginx(tools.nginx, runDir, ports.nginx);
    const pids: ServerPids = { rotor: rotor.pid, nginx: nginx.pid };
    const bases: Record<Server, string> = { nginx: `http://127.0.0.1:${ports.nginx}`, rotor: `http://127.0.0.1:${ports.rotor}` };
    log(`Rotor on ${bases.rotor}, nginx on ${bases.nginx} (prefix ${runDir})`);

    const expected = await preflight(bases);
    await warmUp(tools.ab, settings, bases, expected);
    const accessLog = join(runDir, 'run', 'access.log');
    const variants: Variant[] = [
      { name: 'New connection per request', keepAlive: false, requests: settings.requests },
      { name: 'Keep-alive', keepAlive: true, requests: settings.keepAliveRequests },
    ];
    const tables: Array<[Variant, RunRecord[]]> = [];
    for (const variant of variants) tables.push([variant, await measure(tools.ab, variant, settings, bases, expected, accessLog, pids)]);

    const host = machine();
    log('');
    log(`## HTTP runs, ${new Date().toISOString().slice(0, 10)}, ${host.cpus} CPUs (${host.cpuModel}), Node ${host.node}, ${host.platform}`);
    for (const [variant, records] of tables) printTable(variant, settings, records);
    log('');
    for (const [variant, records] of tables) printTargets(variant, records);
    log('');
    log(`Ratios are medians of per-round ratios to run 1 (nginx static) of the same round. Finished in ${round((Date.now() - startedAt) / 1000, 1)} s.`);
    const summary = tables.map(([variant, records]) => ({
      variant: variant.name,
      runs: records.map((record) => ({
        run: record.spec.number,
        requestsPerSecond: round(median(record.results.map((result) => result.requestsPerSecond))),
        ratio: round(median(record.ratios), 3),
        serverCpuMicrosecondsPerRequest: round(median(record.cpuPerRequest), 1),
      })),
    }));
    log(JSON.stringify({ script: 'perf/http.ts', settings, machine: host, summary }));
    succeeded = true;
  } finally {
    await stopAllChildren();
    if (succeeded) rmSync(runDir, { recursive: true, force: true });
    else console.error(`nginx logs kept in ${join(runDir, 'run')}`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof CheckFailed ? `CHECK FAILED: ${err.message}` : err);
  process.exitCode = 1;
});
