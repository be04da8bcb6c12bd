/**
 * The measurements of the pub/sub benchmarks, the same for every server. They cover fan-out
 * at the highest rate the server sustains, publish-to-delivery latency at a fixed rate,
 * memory and CPU with idle connections, and the time to recover missed publications after
 * the connections drop. A `Rig` is one server with its load client process, which also publishes.
 */
import type { ClientStats, LatencySummary, OpenParams, OpenResult, RecoveryParams, RecoveryResult } from './pubsub-client.js';
import type { ChildScripts } from './pubsub-build.js';
import { ChildRpc } from './pubsub-ipc.js';
import type { Target } from './pubsub-protocols.js';
import type { PublisherStats, StartParams, StopResult } from './pubsub-publisher.js';
import type { ServerUnderTest } from './pubsub-servers.js';
import { machineBusySeconds, sampleTree, sleep, sourceAddresses, trackChild, waitForQuietMachine, type TreeSample } from './pubsub-system.js';

/** Wraps the load client child process (perf/lib/pubsub-client.ts), which also runs the publisher. */
export class LoadClient {
  private readonly untrack: () => void;

  constructor(private readonly rpc: ChildRpc) {
    this.untrack = trackChild(() => rpc.stop());
  }

  static start(scripts: ChildScripts): LoadClient {
    return new LoadClient(new ChildRpc('load client', scripts.client));
  }

  get pid(): number {
    return this.rpc.pid;
  }

  open(params: OpenParams): Promise<OpenResult> {
    return this.rpc.request('open', params, params.timeoutMs + 30_000);
  }

  stats(): Promise<ClientStats> {
    return this.rpc.request('stats');
  }

  latencyStart(): Promise<void> {
    return this.rpc.request('latencyStart');
  }

  latencyStop(): Promise<LatencySummary> {
    return this.rpc.request('latencyStop');
  }

  drop(): Promise<number> {
    return this.rpc.request('drop');
  }

  reconnect(params: RecoveryParams): Promise<RecoveryResult> {
    return this.rpc.request('reconnect', params, params.timeoutMs + 30_000);
  }

  /** Tells the client that the server is about to close every connection. */
  async expectClose(): Promise<void> {
    await this.rpc.request('expectClose');
  }

  publishStart(params: StartParams): Promise<void> {
    return this.rpc.request('publishStart', params);
  }

  publishStats(): Promise<PublisherStats> {
    return this.rpc.request('publishStats');
  }

  /** Stops publishing and resolves once every publish request has completed. */
  publishStop(): Promise<StopResult> {
    return this.rpc.request('publishStop', {}, 120_000);
  }

  /** Publishes exactly `count` payloads and fails unless the server accepted every one. */
  async publishCount(target: Target, count: number, window: number): Promise<StopResult> {
    const result = await this.rpc.request<StopResult>('publishCount', { target, count, window }, 120_000);
    if (result.accepted !== count) throw new Error(`${target.label} accepted ${result.accepted} of ${count} publications: ${JSON.stringify(result.rejections)}, first: ${result.firstRejection}`);
    return result;
  }

  /** Ends the client process. */
  async stop(): Promise<void> {
    this.untrack();
    await this.rpc.stop();
  }
}

/** One server under test with its load client. */
export interface Rig {
  readonly server: ServerUnderTest;
  readonly client: LoadClient;
}

/** Starts a server and a load client, runs `body`, and stops both. */
export async function withRig<T>(scripts: ChildScripts, startServer: () => Promise<ServerUnderTest>, body: (rig: Rig) => Promise<T>): Promise<T> {
  const server = await startServer();
  const client = LoadClient.start(scripts);
  try {
    return await body({ server, client });
  } finally {
    // The server goes first, so that the TIME_WAIT entries stay on its side (see expectClose).
    await client.expectClose().catch(() => undefined);
    await server.stop();
    await client.stop();
  }
}

export interface ConnectSettings {
  readonly connections: number;
  /** WebSocket handshakes in flight at once. */
  readonly concurrency: number;
  /** Connections whose deliveries are timed. */
  readonly sampleConnections: number;
  readonly recoverable?: boolean;
}

export interface ConnectResult {
  readonly ready: number;
  readonly failed: number;
  /** Time to open and subscribe every connection, in milliseconds. */
  readonly connectMs: number;
  /** Connections that did not receive the probe publication sent after subscribing. */
  readonly missedProbe: number;
  readonly failures: Record<string, number>;
}

/**
 * Opens and subscribes the connections from fresh source addresses, then publishes one probe and waits until every
 * subscribed connection received it, which proves the subscriptions are live.
 */
export async function connectSubscribers(rig: Rig, settings: ConnectSettings): Promise<ConnectResult> {
  const opened = await rig.client.open({
    target: rig.server.target,
    count: settings.connections,
    localAddresses: sourceAddresses(settings.connections),
    concurrency: settings.concurrency,
    sampleConnections: settings.sampleConnections,
    recoverable: settings.recoverable ?? false,
    timeoutMs: 180_000,
  });
  if (opened.ready === 0) throw new Error(`no connection to ${rig.server.target.label} became ready: ${JSON.stringify(opened.failures)}\n${rig.server.output()}`);
  await rig.client.publishCount(rig.server.target, 1, 1);
  const deadline = Date.now() + 10_000;
  let stats = await rig.client.stats();
  while (stats.connectionsWithDeliveries < opened.ready && Date.now() < deadline) {
    await sleep(100);
    stats = await rig.client.stats();
  }
  return { ready: opened.ready, failed: opened.failed, connectMs: opened.ms, missedProbe: opened.ready - stats.connectionsWithDeliveries, failures: opened.failures };
}

export interface DrainResult {
  readonly expected: number;
  readonly received: number;
  /** Expected deliveries that never arrived (negative: more arrived than expected). */
  readonly lost: number;
  readonly drainMs: number;
}

/**
 * Waits until the client has received `expected` deliveries since `before`, or until
 * nothing arrived for 3 s (at most 60 s in all).
 */
async function drain(client: LoadClient, before: ClientStats, expected: number): Promise<DrainResult> {
  const started = Date.now();
  let last = await client.stats();
  let lastChange = Date.now();
  while (last.delivered - before.delivered < expected && Date.now() - lastChange < 3_000 && Date.now() - started < 60_000) {
    await sleep(100);
    const stats = await client.stats();
    if (stats.delivered !== last.delivered) lastChange = Date.now();
    last = stats;
  }
  const received = last.delivered - before.delivered;
  return { expected, received, lost: expected - received, drainMs: Date.now() - started };
}

export interface LoadSettings {
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Maximum number of publish requests in flight. */
  readonly window: number;
  /** Maximum wait for other load on the machine to calm down before a measurement. */
  readonly quietWaitMs: number;
}

export interface RateResult {
  /** Publications received by all clients per second over the measured window. */
  readonly deliveriesPerSecond: number;
  /** Publications the server accepted per second over the measured window. */
  readonly publishesPerSecond: number;
  /** Server CPU time per delivered publication, in microseconds. */
  readonly cpuPerDeliveryMicros: number;
  /** Server CPU use in cores (1 = one core busy all the time). */
  readonly serverCores: number;
  /** Load client (subscribers and publisher) CPU use in cores; near 1 means the client, not the server, may be the limit. */
  readonly clientCores: number;
  /** CPU use of everything else on the machine (other sessions, the kernel's own threads), in cores. */
  readonly otherCores: number;
  readonly serverRssBytes: number;
  readonly drain: DrainResult;
  readonly rejectedPublishes: number;
  readonly rejections: Record<string, number>;
  /** Publish requests sent again after the server closed an idle keep-alive connection under them. */
  readonly retriedPublishes: number;
  /** Connections still open at the end of the window. */
  readonly openConnections: number;
  readonly closes: Record<string, number>;
  /** Maximum number of publications the rate-limited publisher was behind schedule. */
  readonly publisherBacklog: number;
  /** Busy cores of the machine in the second before the measurement started. */
  readonly busyCoresBefore: number;
}

export interface LatencyResult extends RateResult {
  /** Publications per second requested from the publisher. */
  readonly targetPublishRate: number;
  readonly latency: LatencySummary;
}

interface Window {
  readonly client: ClientStats;
  readonly server: TreeSample;
  readonly publisher: PublisherStats;
  /** Busy CPU seconds of the whole machine. */
  readonly machineBusy: number;
}

async function snapshot(rig: Rig): Promise<Window> {
  const machineBusy = machineBusySeconds();
  const server = sampleTree(rig.server.pid);
  const [client, publisher] = await Promise.all([rig.client.stats(), rig.client.publishStats()]);
  return { client, server, publisher, machineBusy };
}

function rates(start: Window, end: Window, stop: StopResult, drained: DrainResult, busyCoresBefore: number): RateResult {
  const seconds = (end.client.now - start.client.now) / 1000;
  const deliveries = end.client.delivered - start.client.delivered;
  const cpu = end.server.cpuSeconds - start.server.cpuSeconds;
  const serverSeconds = (end.server.at - start.server.at) / 1000;
  const clientCpu = (end.client.cpuMs - start.client.cpuMs) / 1000;
  return {
    deliveriesPerSecond: deliveries / seconds,
    publishesPerSecond: (end.publisher.accepted - start.publisher.accepted) / ((end.publisher.now - start.publisher.now) / 1000),
    cpuPerDeliveryMicros: deliveries === 0 ? Number.NaN : (cpu / deliveries) * 1e6,
    serverCores: cpu / serverSeconds,
    clientCores: clientCpu / seconds,
    otherCores: Math.max(0, end.machineBusy - start.machineBusy - cpu - clientCpu) / serverSeconds,
    serverRssBytes: end.server.rssBytes,
    drain: drained,
    rejectedPublishes: stop.rejected,
    rejections: stop.rejections,
    retriedPublishes: stop.retried,
    openConnections: end.client.open,
    closes: end.client.closes,
    publisherBacklog: stop.maxBacklog,
    busyCoresBefore,
  };
}

/** Publishes as fast as the server accepts (at most `window` publications in flight) and measures the fan-out rate. */
export async function measureMaxRate(rig: Rig, settings: LoadSettings, subscribers: number): Promise<RateResult> {
  const busyCoresBefore = await waitForQuietMachine(settings.quietWaitMs);
  const before = await rig.client.stats();
  await rig.client.publishStart({ target: rig.server.target, mode: 'max', window: settings.window });
  await sleep(settings.warmupMs);
  const start = await snapshot(rig);
  await sleep(settings.measureMs);
  const end = await snapshot(rig);
  const stop = await rig.client.publishStop();
  const drained = await drain(rig.client, before, stop.accepted * subscribers);
  return rates(start, end, stop, drained, busyCoresBefore);
}

/** Publishes `rate` publications per second and measures publish-to-delivery latency over the window. */
export async function measureLatency(rig: Rig, settings: LoadSettings, subscribers: number, rate: number): Promise<LatencyResult> {
  const busyCoresBefore = await waitForQuietMachine(settings.quietWaitMs);
  const before = await rig.client.stats();
  await rig.client.publishStart({ target: rig.server.target, mode: 'rate', window: settings.window, rate });
  await sleep(settings.warmupMs);
  await rig.client.latencyStart();
  const start = await snapshot(rig);
  await sleep(settings.measureMs);
  const end = await snapshot(rig);
  const latency = await rig.client.latencyStop();
  const stop = await rig.client.publishStop();
  const drained = await drain(rig.client, before, stop.accepted * subscribers);
  return { ...rates(start, end, stop, drained, busyCoresBefore), targetPublishRate: rate, latency };
}

export interface IdleResult {
  readonly connect: ConnectResult;
  readonly rssBeforeBytes: number;
  readonly rssConnectedBytes: number;
  readonly rssAfterIdleBytes: number;
  /** (RSS after the idle window − RSS before connecting) / connections, in bytes. */
  readonly bytesPerConnection: number;
  /** The same right after connecting and settling, before garbage from the handshakes is collected. */
  readonly bytesPerConnectionConnected: number;
  /** Server CPU time per second of wall time while the connections sit idle, in milliseconds. */
  readonly idleCpuMsPerSecond: number;
  readonly idleSeconds: number;
  /** Connections still open after the idle window, so every ping got its pong in time. */
  readonly openAfterIdle: number;
  readonly closes: Record<string, number>;
}

export interface IdleSettings extends ConnectSettings {
  /** Time between connecting and the connected RSS sample, for the server to settle. */
  readonly settleMs: number;
  readonly idleMs: number;
}

/** Connects idle subscribers and measures the server's memory per connection and CPU at rest. */
export async function measureIdle(rig: Rig, settings: IdleSettings): Promise<IdleResult> {
  await sleep(2_000);
  const before = sampleTree(rig.server.pid);
  const connect = await connectSubscribers(rig, settings);
  await sleep(settings.settleMs);
  const connected = sampleTree(rig.server.pid);
  const idleStart = sampleTree(rig.server.pid);
  await sleep(settings.idleMs);
  const idleEnd = sampleTree(rig.server.pid);
  const stats = await rig.client.stats();
  const idleSeconds = (idleEnd.at - idleStart.at) / 1000;
  return {
    connect,
    rssBeforeBytes: before.rssBytes,
    rssConnectedBytes: connected.rssBytes,
    rssAfterIdleBytes: idleEnd.rssBytes,
    bytesPerConnection: (idleEnd.rssBytes - before.rssBytes) / connect.ready,
    bytesPerConnectionConnected: (connected.rssBytes - before.rssBytes) / connect.ready,
    idleCpuMsPerSecond: ((idleEnd.cpuSeconds - idleStart.cpuSeconds) * 1000) / idleSeconds,
    idleSeconds,
    openAfterIdle: stats.open,
    closes: stats.closes,
  };
}

export interface RecoverySettings extends ConnectSettings {
  /** Publications sent while the connections are down. */
  readonly missed: number;
}

export interface RecoveryMeasurement {
  readonly connect: ConnectResult;
  readonly recovery: RecoveryResult;
}

/**
 * Subscribes resumable connections, lets each receive a few publications (so that each
 * has a position), cuts all connections without a close frame, publishes `missed`
 * publications, then reconnects all at once and times until each has them all back.
 */
export async function measureRecovery(rig: Rig, settings: RecoverySettings): Promise<RecoveryMeasurement> {
  const connect = await connectSubscribers(rig, { ...settings, recoverable: true });
  const before = await rig.client.stats();
  await rig.client.publishCount(rig.server.target, 3, 1);
  await drain(rig.client, before, 3 * connect.ready);
  await rig.client.drop();
  // Lets the server notice the closed connections before anything is published.
  await sleep(1_000);
  await rig.client.publishCount(rig.server.target, settings.missed, 16);
  const recovery = await rig.client.reconnect({ expected: settings.missed, concurrency: settings.concurrency, timeoutMs: 60_000 });
  return { connect, recovery };
}
