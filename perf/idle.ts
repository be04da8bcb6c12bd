/**
 * Idle-connection benchmark: N WebSocket clients (default 10,000) connected and subscribed
 * to one channel, doing nothing but replying to pings. For Rotor and for the plain `ws`
 * broadcast server measured in the same run (perf/pubsub-reference-ws.ts), it reports
 * the server's resident memory per connection, (RSS after the idle window − RSS before
 * connecting) / N, and the server's CPU time per second at rest.
 *
 * Usage: npm run perf:idle -- [--connections N] [--idle SECONDS] [--settle SECONDS]
 *
 * Clients spread their source addresses over 127.0.0.2 and up (one per 10,000), so that
 * ephemeral ports do not run out. The server and the load client are separate processes;
 * the load client also publishes one probe publication that proves every subscription
 * is live. The script writes its section of perf/RESULTS.md and ends with one JSON line
 * on stdout. Exit code 1 means the run failed, not that a target was missed.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { machine, positiveInt, printUsageOnHelp } from './common.js';
import { PERF_DIR, buildChildScripts, createRunFolder } from './lib/pubsub-build.js';
import { measureIdle, withRig, type IdleResult, type IdleSettings } from './lib/pubsub-measure.js';
import { formatBytes, formatNumber, formatRatio, markdownTable, ratio, writeSection } from './lib/pubsub-report.js';
import { startReferenceWs, startRotor, type ServerUnderTest } from './lib/pubsub-servers.js';
import { checkOpenFileLimit, removeFolderAtExit, runBenchmark } from './lib/pubsub-system.js';

/** Most server memory per idle connection Rotor may use, in bytes. */
const TARGET_BYTES_PER_CONNECTION = 8 * 1024;

function parseSettings(): IdleSettings {
  printUsageOnHelp(import.meta.url);
  const { values } = parseArgs({ options: { connections: { type: 'string' }, idle: { type: 'string' }, settle: { type: 'string' } } });
  const connections = positiveInt('connections', values.connections, 10_000);
  return {
    connections,
    concurrency: 500,
    sampleConnections: 1,
    settleMs: positiveInt('settle', values.settle, 5) * 1000,
    idleMs: positiveInt('idle', values.idle, 30) * 1000,
  };
}

/** Logs one server's idle figures and returns them with the server's description. */
function report(label: string, description: string, result: IdleResult): IdleResult & { description: string } {
  const { connect } = result;
  const failed = connect.failed > 0 ? `, ${connect.failed} failed ${JSON.stringify(connect.failures)}` : '';
  console.log(`  ${label}: ${connect.ready} subscribed in ${(connect.connectMs / 1000).toFixed(1)} s${failed}, ${connect.missedProbe} missed the probe; `
    + `RSS ${formatBytes(result.rssBeforeBytes)} before, ${formatBytes(result.rssConnectedBytes)} connected, ${formatBytes(result.rssAfterIdleBytes)} after ${formatNumber(result.idleSeconds, 0)} s idle: `
    + `${formatBytes(result.bytesPerConnection)} per connection; CPU at rest ${formatNumber(result.idleCpuMsPerSecond)} ms/s; `
    + `${result.openAfterIdle} still open${Object.keys(result.closes).length > 0 ? `, unexpected closes by code ${JSON.stringify(result.closes)}` : ''}`);
  return { ...result, description };
}

async function main(): Promise<void> {
  const started = Date.now();
  const settings = parseSettings();
  checkOpenFileLimit(settings.connections);
  const runDir = createRunFolder('idle');
  removeFolderAtExit(runDir);
  const scripts = buildChildScripts(runDir);
  console.log(`idle: ${settings.connections} subscribed WebSocket clients, one loopback source address per 10,000, `
    + `${settings.idleMs / 1000} s at rest after ${settings.settleMs / 1000} s to settle`);

  const measure = (start: () => Promise<ServerUnderTest>): Promise<IdleResult & { description: string }> =>
    withRig(scripts, start, async (rig) => report(rig.server.target.label, rig.server.description, await measureIdle(rig, settings)));
  const rotor = await measure(() => startRotor());
  const reference = await measure(() => startReferenceWs(scripts));

  const ratios = {
    bytesPerConnection: ratio(rotor.bytesPerConnection, reference.bytesPerConnection),
    idleCpu: ratio(rotor.idleCpuMsPerSecond, reference.idleCpuMsPerSecond),
  };
  const met = rotor.bytesPerConnection <= TARGET_BYTES_PER_CONNECTION;
  const rows = ([['Rotor', rotor], ['ws reference', reference]] as const).map(([label, result]) => [
    label,
    String(result.connect.ready),
    formatNumber(result.connect.connectMs / 1000, 1),
    formatBytes(result.rssBeforeBytes),
    formatBytes(result.rssConnectedBytes),
    formatBytes(result.rssAfterIdleBytes),
    formatBytes(result.bytesPerConnectionConnected),
    formatBytes(result.bytesPerConnection),
    formatNumber(result.idleCpuMsPerSecond),
    String(result.openAfterIdle),
  ]);
  const table = markdownTable(['server', 'connections', 'connect s', 'RSS before', 'RSS connected', 'RSS after idle', 'per connection, connected', 'per connection, after idle', 'CPU at rest ms/s', 'open after idle'], rows);
  const lines = [
    `Rotor / ws reference: memory per connection ${formatRatio(ratios.bytesPerConnection)}, CPU at rest ${formatRatio(ratios.idleCpu)}`,
    `target, Rotor at most ${formatBytes(TARGET_BYTES_PER_CONNECTION)} per connection: ${formatBytes(rotor.bytesPerConnection)}, ${met ? 'met' : 'NOT MET'}`,
  ];
  const problems: string[] = [];
  for (const [label, result] of [['Rotor', rotor], ['ws reference', reference]] as const) {
    if (result.connect.failed > 0) problems.push(`${result.connect.failed} ${label} connections failed: ${JSON.stringify(result.connect.failures)}`);
    if (result.connect.missedProbe > 0) problems.push(`${result.connect.missedProbe} ${label} subscribers missed the probe publication`);
    if (result.openAfterIdle < result.connect.ready) problems.push(`${result.connect.ready - result.openAfterIdle} ${label} connections closed while idle, by close code: ${JSON.stringify(result.closes)}`);
  }
  console.log(`\n${table}\n\n${[...lines, ...problems.map((problem) => `WARNING: ${problem}`)].join('\n')}`);

  const seconds = (Date.now() - started) / 1000;
  const host = machine();
  writeSection(join(PERF_DIR, 'RESULTS.md'), 'perf:idle', `## Idle connections: Rotor and a plain ws server (npm run perf:idle)

${settings.connections} WebSocket clients connected and subscribed to one channel, replying to pings and nothing else, on ${host.cpus} × ${host.cpuModel}, Node ${host.node}. RSS per connection is (server RSS after ${settings.idleMs / 1000} s at rest − RSS before connecting) / connections, the figure the target applies to; "connected" is the same ${settings.settleMs / 1000} s after the last connection, before the garbage of the handshakes is collected; CPU at rest is server CPU time per second over those ${settings.idleMs / 1000} s (Rotor pings every client every 25 s, the reference server sends a WebSocket ping every 25 s). Run on ${new Date().toISOString().slice(0, 10)}, ${Math.round(seconds)} s.

${table}

${[...lines, ...problems].map((line) => `- ${line}`).join('\n')}

Rotor: ${rotor.description}. Reference: ${reference.description}.`);

  console.log(JSON.stringify({ script: 'perf:idle', machine: host, settings, durationSeconds: Math.round(seconds), rotor, reference, ratios, targets: { bytesPerConnection: { target: TARGET_BYTES_PER_CONNECTION, value: rotor.bytesPerConnection, met } }, problems }));
}

runBenchmark(main);
