/**
 * The fan-out measurement shared by perf/fanout.ts and perf/pubsub.ts. It subscribes N
 * connections to one channel, finds the highest delivery rate over a few publish windows,
 * then measures latency at half of that rate, a few times over. `summarizeFanout` takes
 * the median over rounds and repeats.
 */
import { median } from '../common.js';
import { connectSubscribers, measureLatency, measureMaxRate, type ConnectResult, type LatencyResult, type RateResult, type Rig } from './pubsub-measure.js';
import { formatNumber, formatRate } from './pubsub-report.js';

export interface FanoutSettings {
  readonly connections: number;
  /** Publish windows (requests in flight) tried for the highest rate; the best one counts. */
  readonly windows: readonly number[];
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly quietWaitMs: number;
  /** Latency measurements per rate; the summary takes the median of each percentile. */
  readonly latencyRepeats: number;
}

export interface FanoutRound {
  readonly description: string;
  readonly connect: ConnectResult;
  /** The highest-rate measurement for each publish window, in the order of `windows`. */
  readonly sweep: readonly RateResult[];
  /** The best of `sweep`. */
  readonly max: RateResult;
  readonly maxWindow: number;
  /** Latency at half of `max`, `latencyRepeats` times. */
  readonly halves: readonly LatencyResult[];
}

/** Latency at one publish rate: the median of each percentile over the repeated measurements. */
export interface LatencyFigures {
  readonly publishesPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly samples: number;
  readonly repeats: number;
  /** Repeats during which other processes used more than 0.3 cores, which inflates latency. */
  readonly noisyRepeats: number;
  readonly lost: number;
  readonly closes: Record<string, number>;
}

/** Threshold of other load, in cores, above which a measurement counts as noisy. */
export const NOISY_CORES = 0.3;

/** Combines repeated latency measurements at one rate into medians. */
export function combineLatency(results: readonly LatencyResult[]): LatencyFigures {
  const closes: Record<string, number> = {};
  for (const result of results) {
    for (const [code, count] of Object.entries(result.closes)) closes[code] = Math.max(closes[code] ?? 0, count);
  }
  return {
    publishesPerSecond: median(results.map((result) => result.targetPublishRate)),
    p50: median(results.map((result) => result.latency.p50)),
    p99: median(results.map((result) => result.latency.p99)),
    p999: median(results.map((result) => result.latency.p999)),
    samples: results.reduce((sum, result) => sum + result.latency.samples, 0),
    repeats: results.length,
    noisyRepeats: results.filter((result) => result.otherCores > NOISY_CORES).length,
    lost: results.reduce((sum, result) => sum + Math.max(0, result.drain.lost), 0),
    closes,
  };
}

/** Measures latency at `rate` publications per second `settings.latencyRepeats` times, logging each. */
async function measureLatencyRepeated(rig: Rig, settings: FanoutSettings, subscribers: number, rate: number, log: (line: string) => void): Promise<LatencyResult[]> {
  const results: LatencyResult[] = [];
  for (let repeat = 0; repeat < settings.latencyRepeats; repeat++) {
    const result = await measureLatency(rig, { ...settings, window: Math.max(...settings.windows) }, subscribers, rate);
    const { latency } = result;
    log(`  ${rig.server.target.label} at ${formatNumber(rate, 0)} publishes/s: latency p50 ${formatNumber(latency.p50)} ms, p99 ${formatNumber(latency.p99)} ms, `
      + `p99.9 ${formatNumber(latency.p999)} ms (${latency.samples} samples); ${describeRate(result)}`);
    results.push(result);
  }
  return results;
}

/** Describes a rate measurement in one line: throughput, CPU, loss and anything that went wrong. */
export function describeRate(result: RateResult): string {
  const closes = Object.keys(result.closes).length === 0 ? '' : `, unexpected closes by code ${JSON.stringify(result.closes)}`;
  const rejected = result.rejectedPublishes === 0 ? '' : `, rejected publishes ${JSON.stringify(result.rejections)}`;
  const retried = result.retriedPublishes === 0 ? '' : `, ${result.retriedPublishes} publishes sent again after a keep-alive connection reset`;
  return `${formatRate(result.deliveriesPerSecond)} deliveries/s (${formatRate(result.publishesPerSecond)} publishes/s), `
    + `server ${formatNumber(result.serverCores)} cores, ${formatNumber(result.cpuPerDeliveryMicros, 3)} µs CPU/delivery, `
    + `client ${formatNumber(result.clientCores)} cores, other load ${formatNumber(result.otherCores)} cores, `
    + `lost ${result.drain.lost} of ${result.drain.expected}${closes}${rejected}${retried}`;
}

/** Subscribes the connections, sweeps the publish windows at the highest rate, then measures latency at half of the best rate. */
export async function measureFanout(rig: Rig, settings: FanoutSettings, log: (line: string) => void): Promise<FanoutRound> {
  const label = rig.server.target.label;
  const connect = await connectSubscribers(rig, {
    connections: settings.connections,
    concurrency: 200,
    sampleConnections: 50,
  });
  const failed = connect.failed > 0 ? `, ${connect.failed} failed ${JSON.stringify(connect.failures)}` : '';
  const missed = connect.missedProbe > 0 ? `, ${connect.missedProbe} missed the probe publication` : '';
  log(`  ${label}: ${connect.ready} subscribed in ${Math.round(connect.connectMs)} ms${failed}${missed}`);

  const sweep: RateResult[] = [];
  for (const window of settings.windows) {
    const result = await measureMaxRate(rig, { ...settings, window }, connect.ready);
    log(`  ${label} highest rate, ${window} publishes in flight: ${describeRate(result)}`);
    sweep.push(result);
  }
  const best = sweep.reduce((top, result, index) => (result.deliveriesPerSecond > sweep[top]!.deliveriesPerSecond ? index : top), 0);
  const max = sweep[best]!;

  const rate = max.deliveriesPerSecond / connect.ready / 2;
  const halves = await measureLatencyRepeated(rig, settings, connect.ready, rate, log);
  return { description: rig.server.description, connect, sweep, max, maxWindow: settings.windows[best]!, halves };
}

/** Medians over rounds of one server's fan-out measurements; loss and closes are added up. */
export interface FanoutSummary {
  readonly description: string;
  readonly connections: number;
  readonly deliveriesPerSecond: number;
  readonly cpuPerDeliveryMicros: number;
  readonly serverCores: number;
  readonly clientCores: number;
  readonly otherCores: number;
  readonly serverRssBytes: number;
  /** Publish window of the best rate in each round. */
  readonly maxWindows: readonly number[];
  readonly halfRatePublishes: number;
  readonly halfRateCpuPerDeliveryMicros: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly latencySamples: number;
  /** Latency measurements during which other processes used more than 0.3 cores. */
  readonly noisyLatencyRepeats: number;
  readonly latencyRepeats: number;
  readonly lost: number;
  readonly rejectedPublishes: number;
  readonly closes: Record<string, number>;
  /** Highest deliveries per second of each round. */
  readonly rounds: readonly number[];
}

export function summarizeFanout(rounds: readonly FanoutRound[]): FanoutSummary {
  const closes: Record<string, number> = {};
  let lost = 0;
  let rejected = 0;
  for (const round of rounds) {
    for (const result of [...round.sweep, ...round.halves]) {
      for (const [code, count] of Object.entries(result.closes)) closes[code] = Math.max(closes[code] ?? 0, count);
      lost += Math.max(0, result.drain.lost);
      rejected += result.rejectedPublishes;
    }
  }
  const of = (pick: (round: FanoutRound) => number): number => median(rounds.map(pick));
  const latency = combineLatency(rounds.flatMap((round) => round.halves));
  return {
    description: rounds[0]!.description,
    connections: of((round) => round.connect.ready),
    deliveriesPerSecond: of((round) => round.max.deliveriesPerSecond),
    cpuPerDeliveryMicros: of((round) => round.max.cpuPerDeliveryMicros),
    serverCores: of((round) => round.max.serverCores),
    clientCores: of((round) => round.max.clientCores),
    otherCores: of((round) => round.max.otherCores),
    serverRssBytes: of((round) => round.max.serverRssBytes),
    maxWindows: rounds.map((round) => round.maxWindow),
    halfRatePublishes: latency.publishesPerSecond,
    halfRateCpuPerDeliveryMicros: median(rounds.flatMap((round) => round.halves.map((half) => half.cpuPerDeliveryMicros))),
    p50: latency.p50,
    p99: latency.p99,
    p999: latency.p999,
    latencySamples: latency.samples,
    noisyLatencyRepeats: latency.noisyRepeats,
    latencyRepeats: latency.repeats,
    lost,
    rejectedPublishes: rejected,
    closes,
    rounds: rounds.map((round) => round.max.deliveriesPerSecond),
  };
}

/**
 * Subscribes the connections and measures latency at each of the given publish rates,
 * for comparing servers at the same load rather than each at half of its own highest rate.
 */
export async function measureLatencyAtRates(rig: Rig, settings: FanoutSettings, rates: readonly number[], log: (line: string) => void): Promise<LatencyFigures[]> {
  const connect = await connectSubscribers(rig, { connections: settings.connections, concurrency: 200, sampleConnections: 50 });
  const figures: LatencyFigures[] = [];
  for (const rate of rates) figures.push(combineLatency(await measureLatencyRepeated(rig, settings, connect.ready, rate, log)));
  return figures;
}
