/**
 * Measures the server API publish path. wrk sends keep-alive `POST /api/publish` requests
 * to Rotor, which runs as a child process with SQLite history on. In the same run wrk
 * loads the reference: an empty-handler node:http server (perf/reference-server.ts) that
 * reads the body and returns a fixed 200 JSON reply. Rotor's rate is reported as a ratio
 * to the reference rate.
 *
 * Usage: npm run perf:api -- [--duration SECONDS] [--rounds N] [--connections N]
 *          [--threads N] [--dist]
 * --dist runs the compiled dist/cli.js (run `npm run build` first) instead of src/cli.ts
 * through tsx. Both servers use one channel, "bench", so every publish goes to one actor.
 *
 * The script fails (exit code 1) when wrk reports a non-2xx response or a socket error,
 * or when Rotor's history offset grew by less than the number of responses wrk counted.
 * Requests carry `X-Centrifugo-Error-Mode: transport`, so an API error is a non-2xx
 * status here and not a 200 reply with an error body.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { machine, median, positiveInt, printUsageOnHelp, processCpuMs, round, tempDir, threadCpuTimes } from './common.js';

const API_KEY = 'perf-api-key';
const CHANNEL = 'bench';
const BODY = JSON.stringify({ channel: CHANNEL, data: { n: 1 } });
/** Rotor's publish rate must be at least this share of the empty-handler rate. */
const TARGET_RATIO = 0.7;
const WARMUP_SECONDS = 3;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

const execFileAsync = promisify(execFile);

interface Settings {
  readonly durationSeconds: number;
  readonly rounds: number;
  readonly connections: number;
  readonly threads: number;
  readonly dist: boolean;
}

interface WrkResult {
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
}

/** A wrk run with the server's CPU time per request; the CPU fields are NaN without /proc. */
interface Measurement extends WrkResult {
  /** CPU microseconds per request in all threads of the server process. */
  readonly cpuMicroseconds: number;
  /** CPU microseconds per request in the server's main thread. */
  readonly mainCpuMicroseconds: number;
}

/** A server process started by this script. */
interface ServerProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly url: string;
  stop(): Promise<void>;
}

function readSettings(): Settings {
  printUsageOnHelp(import.meta.url);
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      threads: { type: 'string' },
      dist: { type: 'boolean', default: false },
    },
    strict: true,
  });
  return {
    durationSeconds: positiveInt('duration', values.duration, 10),
    rounds: positiveInt('rounds', values.rounds, 3),
    connections: positiveInt('connections', values.connections, 50),
    threads: positiveInt('threads', values.threads, 1),
    dist: values.dist ?? false,
  };
}

/**
 * Starts a server process and resolves once it prints a JSON line with a `url` field
 * (Rotor's "rotor listening" log line, or the reference server's start line). Its stdout
 * is read to the end, so the child does not stall on a full pipe.
 */
function startServer(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<ServerProcess> {
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${name} did not start listening within ${START_TIMEOUT_MS} ms; stderr: ${stderr}`));
    }, START_TIMEOUT_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before listening (code ${code}, signal ${signal}); stderr: ${stderr}`));
    });
    const lines = createInterface({ input: child.stdout! });
    let started = false;
    lines.on('line', (line) => {
      if (started) return;
      let record: { url?: unknown };
      try {
        record = JSON.parse(line) as { url?: unknown };
      } catch {
        return;
      }
      if (typeof record.url !== 'string') return;
      started = true;
      clearTimeout(timer);
      resolve({ name, child, url: record.url, stop });
    });
  });
}

function startRotor(settings: Settings, dataDir: string): Promise<ServerProcess> {
  const entry = settings.dist ? [join(REPO_ROOT, 'dist', 'cli.js')] : ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli.ts')];
  if (settings.dist && !existsSync(entry[0]!)) throw new Error(`${entry[0]} not found: run "npm run build" first, or drop --dist`);
  // ROTOR_* variables of the calling shell would override the options below.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('ROTOR_')));
  const options = ['--port', '0', '--address', '127.0.0.1', '--api_key', API_KEY, '--history_size', '100', '--history_ttl', '300s'];
  return startServer('rotor', [...entry, 'serve', ...options, '--data_dir', dataDir, '--log_level', 'info'], env);
}

function startReference(): Promise<ServerProcess> {
  return startServer('reference', ['--import', 'tsx', join(REPO_ROOT, 'perf', 'reference-server.ts')], process.env);
}

/** Writes the wrk script that turns every request into the publish POST. */
function writeWrkScript(dir: string): string {
  const path = join(dir, 'publish.lua');
  const lua = [
    'wrk.method = "POST"',
    `wrk.body = '${BODY}'`,
    'wrk.headers["Content-Type"] = "application/json"',
    `wrk.headers["X-API-Key"] = "${API_KEY}"`,
    'wrk.headers["X-Centrifugo-Error-Mode"] = "transport"',
    '',
  ].join('\n');
  writeFileSync(path, lua);
  return path;
}

/** Converts a wrk duration such as "812.00us", "1.20ms" or "2.01s" to milliseconds. */
function toMilliseconds(value: string, unit: string): number {
  const scale: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
  const factor = scale[unit];
  if (factor === undefined) throw new Error(`invalid wrk time unit "${unit}"`);
  return Number(value) * factor;
}

/** Parses wrk's report, and throws when it shows a non-2xx response or a socket error. */
function parseWrk(target: string, output: string): WrkResult {
  const requests = /(\d+) requests in ([\d.]+)(\w+)/.exec(output);
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (requests === null || rate === null) throw new Error(`${target}: failed to parse the wrk report:\n${output}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0);
  if (non2xx > 0) throw new Error(`${target}: wrk reported ${non2xx} non-2xx or 3xx responses:\n${output}`);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  if (socketErrors !== null) throw new Error(`${target}: wrk reported socket errors (${socketErrors[0]}):\n${output}`);
  const percentile = (name: string): number => {
    const match = new RegExp(`^\\s+${name}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(output);
    return match === null ? Number.NaN : toMilliseconds(match[1]!, match[2]!);
  };
  return { requests: Number(requests[1]), requestsPerSecond: Number(rate[1]), latencyP50Ms: percentile('50'), latencyP99Ms: percentile('99') };
}

/** Runs wrk against a server and reads the server's CPU time before and after. */
async function runWrk(server: ServerProcess, script: string, settings: Settings, seconds: number): Promise<Measurement> {
  const args = ['-t', String(settings.threads), '-c', String(settings.connections), '-d', `${seconds}s`, '--latency', '-s', script, `${server.url}/api/publish`];
  const pid = server.child.pid!;
  const cpuBefore = processCpuMs(pid);
  const mainBefore = threadCpuTimes(pid)?.get(pid);
  const { stdout } = await execFileAsync('wrk', args, { timeout: (seconds + 30) * 1000 });
  const cpuAfter = processCpuMs(pid);
  const mainAfter = threadCpuTimes(pid)?.get(pid);
  const result = parseWrk(server.name, stdout);
  const perRequest = (before: number | undefined, after: number | undefined): number =>
    before === undefined || after === undefined ? Number.NaN : ((after - before) * 1000) / result.requests;
  return { ...result, cpuMicroseconds: perRequest(cpuBefore, cpuAfter), mainCpuMicroseconds: perRequest(mainBefore, mainAfter) };
}

/** Returns the position of the bench channel's history stream in Rotor. */
async function historyTop(rotor: ServerProcess): Promise<{ offset: number; epoch: string }> {
  const response = await fetch(`${rotor.url}/api/history`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': API_KEY, 'X-Centrifugo-Error-Mode': 'transport' },
    body: JSON.stringify({ channel: CHANNEL, limit: 0 }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`history request failed with HTTP ${response.status}: ${text}`);
  const body = JSON.parse(text) as { result?: { offset?: number; epoch?: string } };
  const offset = body.result?.offset ?? 0;
  const epoch = body.result?.epoch ?? '';
  return { offset, epoch };
}

/**
 * Runs wrk against Rotor and checks that the history offset grew by the number of
 * responses wrk counted. It may grow by up to one request per connection more, because
 * wrk stops counting at the deadline while the requests it had sent still complete.
 */
async function measureRotor(rotor: ServerProcess, script: string, settings: Settings, seconds: number): Promise<Measurement> {
  const before = await historyTop(rotor);
  const result = await runWrk(rotor, script, settings, seconds);
  // Lets Rotor finish the requests that were in flight when wrk stopped.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = await historyTop(rotor);
  if (before.epoch !== '' && after.epoch !== before.epoch) throw new Error(`history epoch changed from ${before.epoch} to ${after.epoch} during the run`);
  const persisted = after.offset - before.offset;
  if (persisted < result.requests || persisted > result.requests + settings.connections) {
    throw new Error(
      `history offset grew by ${persisted} (${before.offset} to ${after.offset}), but wrk counted ${result.requests} successful publishes ` +
        `(expected ${result.requests} to ${result.requests + settings.connections})`,
    );
  }
  return result;
}

function describe(result: Measurement): string {
  return (
    `${Math.round(result.requestsPerSecond).toLocaleString('en-US').padStart(7)} requests/s ` +
    `(${result.requests} requests, p50 ${result.latencyP50Ms.toFixed(2)} ms, p99 ${result.latencyP99Ms.toFixed(2)} ms; ` +
    `server CPU per request ${result.cpuMicroseconds.toFixed(1)} µs, main thread ${result.mainCpuMicroseconds.toFixed(1)} µs)`
  );
}

async function main(): Promise<void> {
  const settings = readSettings();
  const startedAt = performance.now();
  const host = machine();
  const work = tempDir('rotor-perf-api-');
  const servers: ServerProcess[] = [];
  const interrupt = (signal: string): void => {
    console.error(`perf:api: ${signal} received, stopping the servers`);
    void Promise.all(servers.map((server) => server.stop())).finally(() => {
      work.remove();
      process.exit(130);
    });
  };
  process.once('SIGINT', () => interrupt('SIGINT'));
  process.once('SIGTERM', () => interrupt('SIGTERM'));
  try {
    const script = writeWrkScript(work.path);
    const rotor = await startRotor(settings, join(work.path, 'data'));
    servers.push(rotor);
    const reference = await startReference();
    servers.push(reference);
    console.log(
      `perf:api on ${host.cpus} CPUs (${host.cpuModel}), node ${host.node}: wrk -t${settings.threads} -c${settings.connections} ` +
        `-d${settings.durationSeconds}s, ${settings.rounds} rounds; rotor from ${settings.dist ? 'dist/cli.js' : 'src/cli.ts via tsx'} at ${rotor.url}, ` +
        `reference at ${reference.url}`,
    );

    await runWrk(reference, script, settings, WARMUP_SECONDS);
    await measureRotor(rotor, script, settings, WARMUP_SECONDS);

    const rotorRates: number[] = [];
    const referenceRates: number[] = [];
    const ratios: number[] = [];
    const runs: Array<{ rotor: Measurement; reference: Measurement }> = [];
    for (let roundIndex = 1; roundIndex <= settings.rounds; roundIndex++) {
      // Alternating the order keeps a slow drift of the machine from favouring one side.
      let rotorResult: Measurement;
      let referenceResult: Measurement;
      if (roundIndex % 2 === 1) {
        referenceResult = await runWrk(reference, script, settings, settings.durationSeconds);
        rotorResult = await measureRotor(rotor, script, settings, settings.durationSeconds);
      } else {
        rotorResult = await measureRotor(rotor, script, settings, settings.durationSeconds);
        referenceResult = await runWrk(reference, script, settings, settings.durationSeconds);
      }
      const ratio = rotorResult.requestsPerSecond / referenceResult.requestsPerSecond;
      rotorRates.push(rotorResult.requestsPerSecond);
      referenceRates.push(referenceResult.requestsPerSecond);
      ratios.push(ratio);
      runs.push({ rotor: rotorResult, reference: referenceResult });
      console.log(`round ${roundIndex} reference ${describe(referenceResult)}`);
      console.log(`round ${roundIndex} rotor     ${describe(rotorResult)}, ${ratio.toFixed(3)} of reference; history offsets match`);
    }

    const ratio = median(ratios);
    const met = ratio >= TARGET_RATIO;
    console.log(`\nmedian of ${settings.rounds} rounds:`);
    const cpuMedian = (pick: (run: { rotor: Measurement; reference: Measurement }) => number): number => round(median(runs.map(pick)), 1);
    const cpu = {
      reference: cpuMedian((run) => run.reference.cpuMicroseconds),
      referenceMain: cpuMedian((run) => run.reference.mainCpuMicroseconds),
      rotor: cpuMedian((run) => run.rotor.cpuMicroseconds),
      rotorMain: cpuMedian((run) => run.rotor.mainCpuMicroseconds),
    };
    // The CPU cost ratio barely moves with other load on the machine, unlike the rates.
    const cpuRatio = round(cpu.reference / cpu.rotor, 3);
    console.log(`  reference ${Math.round(median(referenceRates)).toLocaleString('en-US')} requests/s; CPU per request ${cpu.reference} µs (main thread ${cpu.referenceMain} µs)`);
    console.log(
      `  rotor     ${Math.round(median(rotorRates)).toLocaleString('en-US')} requests/s, ${ratio.toFixed(3)} of reference (median of per-round ratios); ` +
        `CPU per request ${cpu.rotor} µs (main thread ${cpu.rotorMain} µs)`,
    );
    console.log(`  CPU per request, reference/rotor: ${cpuRatio.toFixed(3)}`);
    const verdict = `rotor/reference ${ratio.toFixed(3)} ${met ? '>=' : '<'} ${TARGET_RATIO}`;
    console.log(met ? `target met: ${verdict}` : `TARGET MISSED: ${verdict}`);
    const final = await historyTop(rotor);
    console.log(
      JSON.stringify({
        benchmark: 'api',
        date: new Date().toISOString(),
        machine: host,
        settings: { ...settings, warmupSeconds: WARMUP_SECONDS, body: BODY },
        results: {
          reference: { rate: round(median(referenceRates)), runs: referenceRates.map((rate) => round(rate)) },
          rotor: { rate: round(median(rotorRates)), runs: rotorRates.map((rate) => round(rate)), ratio: round(ratio, 3), ratios: ratios.map((r) => round(r, 3)) },
          latencyMs: runs.map((run) => ({
            rotorP50: round(run.rotor.latencyP50Ms, 3),
            rotorP99: round(run.rotor.latencyP99Ms, 3),
            referenceP50: round(run.reference.latencyP50Ms, 3),
            referenceP99: round(run.reference.latencyP99Ms, 3),
          })),
          cpuMicrosecondsPerRequest: { ...cpu, ratio: cpuRatio },
          historyOffset: final.offset,
        },
        target: { ratio: TARGET_RATIO, met },
        seconds: round((performance.now() - startedAt) / 1000, 1),
      }),
    );
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
    work.remove();
  }
}

main().catch((err: unknown) => {
  console.error(`perf:api failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
