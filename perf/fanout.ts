/**
 * Fan-out benchmark: N WebSocket subscribers (default 1,000) on one channel, publications
 * of 100 bytes through the server's HTTP publish route. It measures Rotor and a plain `ws`
 * broadcast server in the same run (perf/pubsub-reference-ws.ts). For each it reports the
 * highest delivery rate (publications received by all clients per second), the server
 * CPU time per delivery, and publish-to-delivery latency at half of that highest rate.
 *
 * Usage: npm run perf:fanout -- [--connections N] [--rounds N] [--warmup SECONDS]
 *          [--duration SECONDS] [--windows N,N,...] [--profile]
 *
 * The server and the load client (subscribers and publisher) are separate processes. The
 * highest rate is the best over the publish windows W (default 32 and 256): the publisher
 * keeps at most W requests in flight and at most W publications not yet delivered.
 * Each round measures both servers, in alternating order; the summary is the median over
 * rounds. `--profile` adds one Rotor run under `node --cpu-prof` and prints the functions
 * with the most self time. The script writes its section of perf/RESULTS.md and ends with
 * one JSON line on stdout. Exit code 1 means the run failed, not that a target was missed.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { machine, positiveInt, printUsageOnHelp } from './common.js';
import { PERF_DIR, REPO_DIR, buildChildScripts, createRunFolder, type ChildScripts } from './lib/pubsub-build.js';
import { NOISY_CORES, describeRate, measureFanout, measureLatencyAtRates, summarizeFanout, type FanoutRound, type FanoutSettings, type FanoutSummary } from './lib/pubsub-fanout.js';
import { connectSubscribers, measureMaxRate, withRig } from './lib/pubsub-measure.js';
import { summarizeProfiles, type ProfileSummary } from './lib/pubsub-profile.js';
import { formatNumber, formatRate, formatRatio, markdownTable, ratio, writeSection } from './lib/pubsub-report.js';
import { startReferenceWs, startRotor, type ServerUnderTest } from './lib/pubsub-servers.js';
import { removeFolderAtExit, runBenchmark } from './lib/pubsub-system.js';

/** Deliveries per second Rotor must reach on the 2-core benchmark machine. */
const TARGET_DELIVERIES = 1_000_000;
/** How many times the reference server's delivery rate Rotor must reach. */
const TARGET_RATIO = 3;

interface Settings extends FanoutSettings {
  readonly rounds: number;
  readonly profile: boolean;
}

function parseSettings(): Settings {
  printUsageOnHelp(import.meta.url);
  const { values } = parseArgs({
    options: {
      connections: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      duration: { type: 'string' },
      windows: { type: 'string' },
      profile: { type: 'boolean', default: false },
    },
  });
  return {
    connections: positiveInt('connections', values.connections, 1_000),
    rounds: positiveInt('rounds', values.rounds, 2),
    warmupMs: positiveInt('warmup', values.warmup, 2) * 1000,
    measureMs: positiveInt('duration', values.duration, 8) * 1000,
    windows: (values.windows ?? '32,256').split(',').map((value) => positiveInt('windows', value, 1)),
    quietWaitMs: 5_000,
    latencyRepeats: 1,
    profile: values.profile,
  };
}

/** Runs Rotor once more under `node --cpu-prof` at the highest rate and summarizes the profiles. */
async function profileRotor(scripts: ChildScripts, settings: Settings, runDir: string): Promise<ProfileSummary[]> {
  const dir = join(runDir, 'rotor-cpu-profile');
  await withRig(scripts, () => startRotor({ cpuProfileDir: dir }), async (rig) => {
    const connect = await connectSubscribers(rig, { connections: settings.connections, concurrency: 200, sampleConnections: 50 });
    const window = Math.max(...settings.windows);
    const max = await measureMaxRate(rig, { ...settings, window }, connect.ready);
    console.log(`  Rotor under --cpu-prof, ${window} publishes in flight: ${describeRate(max)}`);
  });
  return summarizeProfiles(dir, REPO_DIR, 15);
}

function resultsTable(rotor: FanoutSummary, reference: FanoutSummary): string {
  const rows = ([['Rotor', rotor], ['ws reference', reference]] as const).map(([label, summary]) => [
    label,
    formatRate(summary.deliveriesPerSecond),
    formatNumber(summary.cpuPerDeliveryMicros, 3),
    formatNumber(summary.serverCores),
    formatNumber(summary.clientCores),
    formatNumber(summary.otherCores),
    summary.maxWindows.join(', '),
    formatNumber(summary.halfRatePublishes, 0),
    formatNumber(summary.p50),
    formatNumber(summary.p99),
    formatNumber(summary.p999),
    String(summary.lost),
  ]);
  return markdownTable(
    ['server', 'deliveries/s', 'CPU µs/delivery', 'server cores', 'client cores', 'other load cores', 'best window', 'half-rate publishes/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'lost'],
    rows,
  );
}

async function main(): Promise<void> {
  const started = Date.now();
  const settings = parseSettings();
  const runDir = createRunFolder('fanout');
  if (!settings.profile) removeFolderAtExit(runDir);
  const scripts = buildChildScripts(runDir);
  console.log(`fan-out: ${settings.connections} subscribers, 100-byte publications, publish windows ${settings.windows.join(', ')}, `
    + `${settings.warmupMs / 1000} s warm-up + ${settings.measureMs / 1000} s measured per phase, ${settings.rounds} round(s)`);

  const servers: Record<'rotor' | 'reference', () => Promise<ServerUnderTest>> = {
    rotor: () => startRotor(),
    reference: () => startReferenceWs(scripts),
  };
  const rounds: Record<'rotor' | 'reference', FanoutRound[]> = { rotor: [], reference: [] };
  for (let round = 1; round <= settings.rounds; round++) {
    console.log(`round ${round} of ${settings.rounds}`);
    const order = round % 2 === 1 ? (['rotor', 'reference'] as const) : (['reference', 'rotor'] as const);
    for (const name of order) rounds[name].push(await withRig(scripts, servers[name], (rig) => measureFanout(rig, settings, console.log)));
  }

  const rotor = summarizeFanout(rounds.rotor);
  const reference = summarizeFanout(rounds.reference);
  const ratios = {
    deliveries: ratio(rotor.deliveriesPerSecond, reference.deliveriesPerSecond),
    cpuPerDelivery: ratio(rotor.cpuPerDeliveryMicros, reference.cpuPerDeliveryMicros),
    p99AtHalfRate: ratio(rotor.p99, reference.p99),
  };
  const targets = {
    rotorDeliveries: { target: TARGET_DELIVERIES, value: Math.round(rotor.deliveriesPerSecond), met: rotor.deliveriesPerSecond >= TARGET_DELIVERIES },
    ratioToReference: { target: TARGET_RATIO, value: ratios.deliveries, met: ratios.deliveries >= TARGET_RATIO },
  };

  console.log("Rotor at the reference's half-rate publish rate:");
  const [sameRate] = await withRig(scripts, servers.rotor, (rig) => measureLatencyAtRates(rig, settings, [reference.halfRatePublishes], console.log));
  const profiles = settings.profile ? await profileRotor(scripts, settings, runDir) : [];

  const table = resultsTable(rotor, reference);
  const verdict = (met: boolean): string => (met ? 'met' : 'NOT MET');
  const lines = [
    `Rotor / ws reference: deliveries/s ${formatRatio(ratios.deliveries)}, CPU per delivery ${formatRatio(ratios.cpuPerDelivery)}, p99 at half of each one's highest rate ${formatRatio(ratios.p99AtHalfRate)}`,
    `at the reference's half rate (${formatNumber(reference.halfRatePublishes, 0)} publishes/s) Rotor's latency p50 / p99 / p99.9 is ${formatNumber(sameRate!.p50)} / ${formatNumber(sameRate!.p99)} / ${formatNumber(sameRate!.p999)} ms, `
      + `the reference's ${formatNumber(reference.p50)} / ${formatNumber(reference.p99)} / ${formatNumber(reference.p999)} ms (p99 ratio ${formatRatio(ratio(sameRate!.p99, reference.p99))})`,
    `target, Rotor at least ${formatRate(TARGET_DELIVERIES)} deliveries/s: ${formatRate(rotor.deliveriesPerSecond)}, ${verdict(targets.rotorDeliveries.met)}`,
    `target, Rotor at least ${TARGET_RATIO}x the ws reference: ${formatRatio(ratios.deliveries)}, ${verdict(targets.ratioToReference.met)}`,
  ];
  const problems: string[] = [];
  for (const [label, summary] of [['Rotor', rotor], ['ws reference', reference]] as const) {
    if (summary.lost > 0) problems.push(`${label} lost ${summary.lost} deliveries`);
    if (Object.keys(summary.closes).length > 0) problems.push(`${label} closed connections unexpectedly, by close code: ${JSON.stringify(summary.closes)}`);
    if (summary.rejectedPublishes > 0) problems.push(`${label} rejected ${summary.rejectedPublishes} publishes`);
    if (summary.otherCores > NOISY_CORES) problems.push(`other processes used ${formatNumber(summary.otherCores)} cores during the ${label} highest-rate measurement, so its rate is low`);
    if (summary.noisyLatencyRepeats > 0) problems.push(`other processes used more than ${NOISY_CORES} cores during ${summary.noisyLatencyRepeats} of ${summary.latencyRepeats} ${label} latency measurements, which inflates latency`);
  }
  if (sameRate!.lost > 0 || Object.keys(sameRate!.closes).length > 0) problems.push(`Rotor at the reference's rate lost ${sameRate!.lost} deliveries; unexpected closes by code: ${JSON.stringify(sameRate!.closes)}`);
  console.log(`\n${table}\n\n${[...lines, ...problems.map((problem) => `WARNING: ${problem}`)].join('\n')}`);
  for (const profile of profiles.slice(0, 2)) {
    console.log(`\nCPU profile ${profile.file}: ${formatNumber(profile.busyMs / 1000, 1)} s busy of ${formatNumber(profile.sampledMs / 1000, 1)} s sampled; top self time:`);
    for (const entry of profile.top) console.log(`  ${formatNumber(entry.percent, 1).padStart(5)}%  ${formatNumber(entry.selfMs, 0).padStart(7)} ms  ${entry.name}`);
  }

  const seconds = (Date.now() - started) / 1000;
  const host = machine();
  writeSection(join(PERF_DIR, 'RESULTS.md'), 'perf:fanout', `## Fan-out: Rotor and a plain ws broadcast server (npm run perf:fanout)

${settings.connections} WebSocket subscribers on one channel; 100-byte publications through each server's HTTP publish route, the highest rate being the best over ${settings.windows.join(' and ')} requests in flight. The server and the load client (subscribers and publisher, at most that many publications undelivered) run as separate processes on ${host.cpus} × ${host.cpuModel}, Node ${host.node}. Median of ${settings.rounds} round(s), each phase ${settings.measureMs / 1000} s measured after ${settings.warmupMs / 1000} s of warm-up; latency at half of each server's own highest rate. Run on ${new Date().toISOString().slice(0, 10)}, ${Math.round(seconds)} s.

${table}

${[...lines, ...problems].map((line) => `- ${line}`).join('\n')}

Rotor: ${rotor.description}. Reference: ${reference.description}. "other load" is CPU used by processes outside the benchmark during the measurement, because the machine is shared; "client cores" near 1 would mean the load client, not the server, set the rate.`);

  const summary = {
    script: 'perf:fanout',
    machine: host,
    settings,
    durationSeconds: Math.round(seconds),
    rotor,
    reference,
    ratios,
    rotorAtReferenceRate: sameRate,
    targets,
    problems,
    profile: profiles.map((profile) => ({ file: profile.file, busyMs: Math.round(profile.busyMs), top: profile.top.slice(0, 10) })),
  };
  console.log(JSON.stringify(summary));
}

runBenchmark(main);
