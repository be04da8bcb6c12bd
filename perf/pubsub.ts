/**
 * Pub/sub comparison: Rotor, nginx with the nchan module, and a socket.io server, driven
 * by the same load client and publisher processes. For each server it measures
 *   - fan-out: the highest delivery rate with N subscribers (default 1,000) on one channel,
 *     server CPU time per delivery, and publish-to-delivery latency at half of that rate
 *     (median of 3 measurements; Rotor also at each peer's rate);
 *   - idle connections: server RSS per connection and CPU at rest with M subscribed
 *     clients (default 10,000);
 *   - recovery: N resumable subscribers lose their connections, K publications (default
 *     100) are published, and all reconnect at once; the time until every one has all K.
 * Each figure is also given as a ratio between the servers of the same run.
 *
 * Usage: npm run perf:pubsub -- [--connections N] [--idle-connections M] [--missed K]
 *          [--warmup SECONDS] [--duration SECONDS] [--idle SECONDS] [--windows N,N,...]
 *          [--latency-repeats N]
 *
 * nginx runs with one worker process and a config generated in perf/run/. Without nginx
 * or the nchan module (Debian: apt-get install -y nginx libnginx-mod-nchan) the nchan
 * column is skipped with a message. Writes its section of perf/RESULTS.md and the chart
 * perf/pubsub.svg, and ends with one JSON line on stdout. Exit code 1 means a measurement
 * failed (the others are still reported), not that a target was missed.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { machine, positiveInt, printUsageOnHelp } from './common.js';
import { PERF_DIR, buildChildScripts, createRunFolder, type ChildScripts } from './lib/pubsub-build.js';
import { NOISY_CORES, measureFanout, measureLatencyAtRates, summarizeFanout, type FanoutSettings, type FanoutSummary, type LatencyFigures } from './lib/pubsub-fanout.js';
import { measureIdle, measureRecovery, withRig, type IdleResult, type RecoveryMeasurement } from './lib/pubsub-measure.js';
import { barChartSvg, formatBytes, formatNumber, formatRate, formatRatio, markdownTable, ratio, writeSection, type ChartGroup } from './lib/pubsub-report.js';
import { checkSocketIoRecovery } from './lib/pubsub-socketio-check.js';
import { findNchan, startNchan, startRotor, startSocketIo, type ServerUnderTest } from './lib/pubsub-servers.js';
import { checkOpenFileLimit, removeFolderAtExit, runBenchmark } from './lib/pubsub-system.js';

/** Rotor's fan-out rate must be at least this many times nchan's. */
const TARGET_DELIVERIES_VS_NCHAN = 1.5;
/** Rotor's fan-out rate must be at least this many times socket.io's. */
const TARGET_DELIVERIES_VS_SOCKETIO = 3;

type Peer = 'rotor' | 'nchan' | 'socketio';
const PEERS: readonly Peer[] = ['rotor', 'nchan', 'socketio'];
const LABELS: Record<Peer, string> = { rotor: 'Rotor', nchan: 'nchan', socketio: 'socket.io' };

interface Settings extends FanoutSettings {
  readonly idleConnections: number;
  readonly idleMs: number;
  readonly missed: number;
}

/** Everything measured for one server; a phase that failed has its error instead. */
interface PeerResults {
  description?: string;
  skipped?: string;
  fanout?: FanoutSummary;
  idle?: IdleResult;
  recovery?: RecoveryMeasurement;
  /** Rotor only: latency at each peer's half-rate publish rate. */
  sameRate?: Partial<Record<Peer, LatencyFigures>>;
  errors: string[];
}

function parseSettings(): Settings {
  printUsageOnHelp(import.meta.url);
  const { values } = parseArgs({
    options: {
      connections: { type: 'string' },
      'idle-connections': { type: 'string' },
      missed: { type: 'string' },
      warmup: { type: 'string' },
      duration: { type: 'string' },
      idle: { type: 'string' },
      windows: { type: 'string' },
      'latency-repeats': { type: 'string' },
    },
  });
  return {
    connections: positiveInt('connections', values.connections, 1_000),
    idleConnections: positiveInt('idle-connections', values['idle-connections'], 10_000),
    missed: positiveInt('missed', values.missed, 100),
    warmupMs: positiveInt('warmup', values.warmup, 2) * 1000,
    measureMs: positiveInt('duration', values.duration, 6) * 1000,
    idleMs: positiveInt('idle', values.idle, 30) * 1000,
    windows: (values.windows ?? '32,256').split(',').map((value) => positiveInt('windows', value, 1)),
    quietWaitMs: 3_000,
    latencyRepeats: positiveInt('latency-repeats', values['latency-repeats'], 3),
  };
}

/** Runs one phase for one server; a failure is logged and recorded, and the run goes on. */
async function phase(results: PeerResults, what: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    const message = `${what} failed: ${err instanceof Error ? err.message : String(err)}`;
    console.log(`  ERROR: ${message}`);
    results.errors.push(message);
  }
}

function describeRecovery(label: string, measurement: RecoveryMeasurement, missed: number): string {
  const { recovery } = measurement;
  const failures = Object.keys(recovery.failures).length > 0 ? `, failures ${JSON.stringify(recovery.failures)}` : '';
  return `  ${label} recovery: ${recovery.complete} of ${measurement.connect.ready} got all ${missed} missed publications back; `
    + `all done in ${formatNumber(recovery.ms, 0)} ms (median ${formatNumber(recovery.medianMs, 0)} ms); `
    + `not recovered ${recovery.notRecovered}, failed ${recovery.failed}, duplicates ${recovery.duplicates}, `
    + `received ${recovery.minReceived}-${recovery.maxReceived} per connection${failures}; first subscribe took ${formatNumber(measurement.connect.connectMs, 0)} ms`;
}

async function measurePeer(peer: Peer, results: PeerResults, scripts: ChildScripts, settings: Settings, start: (options: { recovery: boolean }) => Promise<ServerUnderTest>): Promise<void> {
  const label = LABELS[peer];
  console.log(`${label}:`);
  await phase(results, 'fan-out', async () => {
    const round = await withRig(scripts, () => start({ recovery: false }), async (rig) => {
      results.description = rig.server.description;
      return measureFanout(rig, settings, console.log);
    });
    results.fanout = summarizeFanout([round]);
  });
  await phase(results, 'idle connections', async () => {
    results.idle = await withRig(scripts, () => start({ recovery: false }), (rig) => measureIdle(rig, {
      connections: settings.idleConnections,
      concurrency: 500,
      sampleConnections: 1,
      settleMs: 5_000,
      idleMs: settings.idleMs,
    }));
    const { idle } = results;
    console.log(`  ${label} idle: ${idle.connect.ready} connections in ${formatNumber(idle.connect.connectMs / 1000, 1)} s, RSS ${formatBytes(idle.rssBeforeBytes)} -> ${formatBytes(idle.rssAfterIdleBytes)}, `
      + `${formatBytes(idle.bytesPerConnection)} per connection, CPU at rest ${formatNumber(idle.idleCpuMsPerSecond)} ms/s, ${idle.openAfterIdle} open after ${formatNumber(idle.idleSeconds, 0)} s`
      + `${Object.keys(idle.closes).length > 0 ? `, unexpected closes by code ${JSON.stringify(idle.closes)}` : ''}`);
  });
  await phase(results, 'recovery', async () => {
    results.recovery = await withRig(scripts, () => start({ recovery: true }), async (rig) => {
      if (peer === 'socketio') {
        await checkSocketIoRecovery(rig.server.target);
        console.log('  socket.io-client check: the official client recovered the publications it missed');
      }
      return measureRecovery(rig, { connections: settings.connections, concurrency: 200, sampleConnections: 1, missed: settings.missed });
    });
    console.log(describeRecovery(label, results.recovery, settings.missed));
  });
}

/** The value of one measure for each server, NaN where it is missing. */
type Measure = (results: PeerResults) => number;

const MEASURES: ReadonlyArray<{ name: string; unit: string; better: 'higher' | 'lower'; value: Measure; format: (value: number) => string }> = [
  { name: 'fan-out, highest rate', unit: 'deliveries/s', better: 'higher', value: (r) => r.fanout?.deliveriesPerSecond ?? Number.NaN, format: formatRate },
  { name: 'server CPU per delivery at that rate', unit: 'µs', better: 'lower', value: (r) => r.fanout?.cpuPerDeliveryMicros ?? Number.NaN, format: (v) => formatNumber(v, 3) },
  { name: 'server CPU at that rate', unit: 'cores', better: 'lower', value: (r) => r.fanout?.serverCores ?? Number.NaN, format: (v) => formatNumber(v) },
  { name: 'half of that rate', unit: 'publishes/s', better: 'higher', value: (r) => r.fanout?.halfRatePublishes ?? Number.NaN, format: (v) => formatNumber(v, 0) },
  { name: 'latency p50 at half rate', unit: 'ms', better: 'lower', value: (r) => r.fanout?.p50 ?? Number.NaN, format: (v) => formatNumber(v) },
  { name: 'latency p99 at half rate', unit: 'ms', better: 'lower', value: (r) => r.fanout?.p99 ?? Number.NaN, format: (v) => formatNumber(v) },
  { name: 'latency p99.9 at half rate', unit: 'ms', better: 'lower', value: (r) => r.fanout?.p999 ?? Number.NaN, format: (v) => formatNumber(v) },
  { name: 'RSS per idle connection after the idle time', unit: 'KB', better: 'lower', value: (r) => (r.idle === undefined ? Number.NaN : r.idle.bytesPerConnection / 1024), format: (v) => formatNumber(v, 1) },
  { name: 'RSS per connection right after connecting', unit: 'KB', better: 'lower', value: (r) => (r.idle === undefined ? Number.NaN : r.idle.bytesPerConnectionConnected / 1024), format: (v) => formatNumber(v, 1) },
  { name: 'CPU at rest with idle connections', unit: 'ms/s', better: 'lower', value: (r) => r.idle?.idleCpuMsPerSecond ?? Number.NaN, format: (v) => formatNumber(v) },
  { name: 'recovery, all connections', unit: 'ms', better: 'lower', value: (r) => r.recovery?.recovery.ms ?? Number.NaN, format: (v) => formatNumber(v, 0) },
  { name: 'recovery, median connection', unit: 'ms', better: 'lower', value: (r) => r.recovery?.recovery.medianMs ?? Number.NaN, format: (v) => formatNumber(v, 0) },
];

/** Measures drawn in perf/pubsub.svg. */
const CHARTED = new Set(['fan-out, highest rate', 'server CPU per delivery at that rate', 'latency p99 at half rate', 'RSS per idle connection after the idle time', 'recovery, all connections']);

function cell(results: PeerResults, value: number, format: (value: number) => string): string {
  if (results.skipped !== undefined) return 'skipped';
  return Number.isFinite(value) ? format(value) : 'n/a';
}

/** Compares Rotor's latency with each peer's at the peer's own half-rate publish rate. */
function sameRateTable(all: Record<Peer, PeerResults>): string | undefined {
  const rows: string[][] = [];
  for (const peer of PEERS.slice(1)) {
    const rotor = all.rotor.sameRate?.[peer];
    const other = all[peer].fanout;
    if (rotor === undefined || other === undefined) continue;
    rows.push([
      `${LABELS[peer]}'s half rate, ${formatNumber(other.halfRatePublishes, 0)} publishes/s`,
      `${formatNumber(rotor.p50)} / ${formatNumber(rotor.p99)} / ${formatNumber(rotor.p999)}`,
      `${formatNumber(other.p50)} / ${formatNumber(other.p99)} / ${formatNumber(other.p999)}`,
      formatRatio(ratio(rotor.p99, other.p99)),
    ]);
  }
  if (rows.length === 0) return undefined;
  return markdownTable(['publish rate', 'Rotor p50 / p99 / p99.9 ms', 'peer p50 / p99 / p99.9 ms', 'Rotor / peer, p99'], rows);
}

function resultsTable(all: Record<Peer, PeerResults>): string {
  const rows = MEASURES.map((measure) => {
    const values = PEERS.map((peer) => measure.value(all[peer]));
    return [
      `${measure.name} (${measure.unit}, ${measure.better} is better)`,
      ...PEERS.map((peer, index) => cell(all[peer], values[index]!, measure.format)),
      formatRatio(ratio(values[0], values[1])),
      formatRatio(ratio(values[0], values[2])),
    ];
  });
  const recoveryRow = [
    'recovered connections / not recovered / lost or failed',
    ...PEERS.map((peer) => {
      const measurement = all[peer].recovery;
      if (all[peer].skipped !== undefined) return 'skipped';
      if (measurement === undefined) return 'n/a';
      const { recovery, connect } = measurement;
      return `${recovery.complete}/${connect.ready} / ${recovery.notRecovered} / ${connect.ready - recovery.complete - recovery.notRecovered}`;
    }),
    '',
    '',
  ];
  return markdownTable(['measure', 'Rotor', 'nchan', 'socket.io', 'Rotor / nchan', 'Rotor / socket.io'], [...rows, recoveryRow]);
}

interface Target {
  readonly name: string;
  readonly value: number;
  readonly met: boolean | undefined;
}

function checkTargets(all: Record<Peer, PeerResults>): Target[] {
  const rotor = all.rotor.fanout;
  const nchan = all.nchan.fanout;
  const socketio = all.socketio.fanout;
  const check = (name: string, value: number, pass: (value: number) => boolean): Target => ({ name, value, met: Number.isFinite(value) ? pass(value) : undefined });
  return [
    check(`fan-out deliveries/s at least ${TARGET_DELIVERIES_VS_NCHAN}x nchan's`, ratio(rotor?.deliveriesPerSecond, nchan?.deliveriesPerSecond), (value) => value >= TARGET_DELIVERIES_VS_NCHAN),
    check("server CPU per delivery no more than nchan's", ratio(rotor?.cpuPerDeliveryMicros, nchan?.cpuPerDeliveryMicros), (value) => value <= 1),
    check(`fan-out deliveries/s at least ${TARGET_DELIVERIES_VS_SOCKETIO}x socket.io's`, ratio(rotor?.deliveriesPerSecond, socketio?.deliveriesPerSecond), (value) => value >= TARGET_DELIVERIES_VS_SOCKETIO),
    check("p99 latency at half of the highest rate no worse than nchan's", ratio(rotor?.p99, nchan?.p99), (value) => value <= 1),
  ];
}

function verdict(met: boolean | undefined): string {
  if (met === undefined) return 'not checked (a figure is missing)';
  return met ? 'met' : 'NOT MET';
}

function chart(all: Record<Peer, PeerResults>, subtitle: string): string {
  const charted = MEASURES.filter((measure) => CHARTED.has(measure.name));
  const groups: ChartGroup[] = charted.map((measure) => {
    return {
      title: measure.name,
      unit: `${measure.unit}, ${measure.better} is better`,
      values: PEERS.map((peer) => {
        const value = all[peer].skipped === undefined ? measure.value(all[peer]) : Number.NaN;
        return { label: LABELS[peer], value, text: all[peer].skipped !== undefined ? 'skipped' : Number.isFinite(value) ? `${measure.format(value)} ${measure.unit}` : 'n/a' };
      }),
    };
  });
  return barChartSvg('Rotor, nchan and socket.io (npm run perf:pubsub)', subtitle, groups);
}

async function main(): Promise<void> {
  const started = Date.now();
  const settings = parseSettings();
  checkOpenFileLimit(settings.idleConnections);
  const runDir = createRunFolder('pubsub');
  removeFolderAtExit(runDir);
  const scripts = buildChildScripts(runDir);
  console.log(`pub/sub comparison: fan-out with ${settings.connections} subscribers (publish windows ${settings.windows.join(', ')}, ${settings.warmupMs / 1000} s warm-up + ${settings.measureMs / 1000} s per phase), `
    + `${settings.idleConnections} idle connections for ${settings.idleMs / 1000} s, recovery of ${settings.missed} publications by ${settings.connections} subscribers`);

  const all: Record<Peer, PeerResults> = { rotor: { errors: [] }, nchan: { errors: [] }, socketio: { errors: [] } };
  const nchan = findNchan();
  if ('missing' in nchan) {
    all.nchan.skipped = nchan.missing;
    console.log(`nchan: skipped: ${nchan.missing}`);
  }
  const starters: Record<Peer, (options: { recovery: boolean }) => Promise<ServerUnderTest>> = {
    rotor: ({ recovery }) => startRotor({ recovery }),
    nchan: () => ('missing' in nchan ? Promise.reject(new Error(nchan.missing)) : startNchan(nchan, runDir)),
    socketio: () => startSocketIo(scripts),
  };
  for (const peer of PEERS) {
    if (all[peer].skipped === undefined) await measurePeer(peer, all[peer], scripts, settings, starters[peer]);
  }
  const peersWithRates = PEERS.slice(1).filter((peer) => all[peer].fanout !== undefined);
  if (all.rotor.fanout !== undefined && peersWithRates.length > 0) {
    console.log("Rotor at the peers' half-rate publish rates:");
    await phase(all.rotor, 'latency at the peers\' rates', async () => {
      const results = await withRig(scripts, () => startRotor(), (rig) => measureLatencyAtRates(rig, settings, peersWithRates.map((peer) => all[peer].fanout!.halfRatePublishes), console.log));
      all.rotor.sameRate = Object.fromEntries(peersWithRates.map((peer, index) => [peer, results[index]!]));
    });
  }

  const table = resultsTable(all);
  const sameRate = sameRateTable(all);
  const targets = checkTargets(all);
  const targetLines = targets.map((target) => `target, Rotor ${target.name}: ${formatRatio(target.value)}, ${verdict(target.met)}`);
  const problems: string[] = [];
  for (const peer of PEERS) {
    const results = all[peer];
    const label = LABELS[peer];
    if (results.skipped !== undefined) problems.push(`${label} skipped: ${results.skipped}`);
    problems.push(...results.errors.map((error) => `${label}: ${error}`));
    if ((results.fanout?.lost ?? 0) > 0) problems.push(`${label} lost ${results.fanout!.lost} deliveries in the fan-out phases`);
    if (results.fanout !== undefined && Object.keys(results.fanout.closes).length > 0) problems.push(`${label} closed connections during fan-out, by close code: ${JSON.stringify(results.fanout.closes)}`);
    if (results.idle !== undefined && results.idle.openAfterIdle < results.idle.connect.ready) problems.push(`${results.idle.connect.ready - results.idle.openAfterIdle} ${label} connections closed while idle: ${JSON.stringify(results.idle.closes)}`);
  }
  for (const peer of PEERS) {
    const fanout = all[peer].fanout;
    if (fanout === undefined) continue;
    if (fanout.otherCores > NOISY_CORES) problems.push(`other processes used ${formatNumber(fanout.otherCores)} cores during the ${LABELS[peer]} highest-rate measurement, so its rate is low`);
    if (fanout.noisyLatencyRepeats > 0) problems.push(`other processes used more than ${NOISY_CORES} cores during ${fanout.noisyLatencyRepeats} of ${fanout.latencyRepeats} ${LABELS[peer]} latency measurements, which inflates latency`);
  }
  for (const [peer, figures] of Object.entries(all.rotor.sameRate ?? {})) {
    if (figures.noisyRepeats > 0) problems.push(`other processes used more than ${NOISY_CORES} cores during ${figures.noisyRepeats} of ${figures.repeats} Rotor latency measurements at ${LABELS[peer as Peer]}'s rate`);
  }
  const sameRateText = sameRate === undefined ? '' : `\n\nLatency at the same publish rate (Rotor measured at each peer's half rate):\n\n${sameRate}`;
  console.log(`\n${table}${sameRateText}\n\n${[...targetLines, ...problems.map((problem) => `WARNING: ${problem}`)].join('\n')}`);

  const seconds = (Date.now() - started) / 1000;
  const host = machine();
  const subtitle = `${settings.connections} subscribers, 100-byte messages, ${host.cpus} × ${host.cpuModel}, ${new Date().toISOString().slice(0, 10)}`;
  writeFileSync(join(PERF_DIR, 'pubsub.svg'), chart(all, subtitle));
  const descriptions = PEERS.map((peer) => `${LABELS[peer]}: ${all[peer].skipped ?? all[peer].description ?? 'not started'}`);
  writeSection(join(PERF_DIR, 'RESULTS.md'), 'perf:pubsub', `## Pub/sub: Rotor, nchan and socket.io (npm run perf:pubsub)

![Bar chart of the figures below](pubsub.svg)

The same load client process (subscribers and publisher) for every server: ${settings.connections} WebSocket subscribers on one channel and 100-byte publications through each server's HTTP publish route. Fan-out: the highest delivery rate over ${settings.windows.join(' and ')} publish requests in flight (${settings.warmupMs / 1000} s warm-up, ${settings.measureMs / 1000} s measured), then latency at half of each server's own highest rate (median of ${settings.latencyRepeats} measurements of ${settings.measureMs / 1000} s), and Rotor's latency at each peer's rate. Idle: ${settings.idleConnections} subscribed clients, RSS per connection = (RSS after ${settings.idleMs / 1000} s at rest − RSS before connecting) / connections. Recovery: the ${settings.connections} subscribers drop their connections without a close frame, ${settings.missed} publications are published, all reconnect at once (200 handshakes in flight) and resume (Rotor: \`recover\` with offset and epoch, \`force_recovery\`; nchan: \`last_event_id\` with the \`ws+meta.nchan\` subprotocol and a 1,000-message buffer; socket.io: connection state recovery with session id and offset); the time runs until every connection has all ${settings.missed} back. Every server pings each client every 25 s. ${host.cpus} × ${host.cpuModel}, Node ${host.node}; run on ${new Date().toISOString().slice(0, 10)}, ${Math.round(seconds)} s. Ratios divide Rotor's figure by the peer's from the same run.

${table}${sameRateText}

${[...targetLines, ...problems].map((line) => `- ${line}`).join('\n')}

${descriptions.map((line) => `- ${line}`).join('\n')}`);

  const failed = PEERS.some((peer) => all[peer].errors.length > 0);
  if (failed) process.exitCode = 1;
  console.log(JSON.stringify({ script: 'perf:pubsub', machine: host, settings, durationSeconds: Math.round(seconds), results: all, targets, problems }));
}

runBenchmark(main);
