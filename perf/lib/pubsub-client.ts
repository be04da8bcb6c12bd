/**
 * The load client of the pub/sub benchmarks: a child process that keeps many WebSocket
 * subscribers to one server open and counts the publications they receive. The benchmark
 * script drives it over IPC (see the handlers at the end).
 *
 * Counting is cheap on purpose, so that one process can receive a million publications a
 * second: a frame is scanned for the payload marker instead of being parsed, and only the
 * connections picked for latency sampling read the send time embedded in each payload.
 * Control messages (connect and subscribe replies, pings) are parsed only until a
 * connection is ready, or where a server sends them in frames of their own.
 *
 * This file runs as compiled JavaScript in its own process; it imports only `ws`, Node
 * built-ins and the other child-side files.
 */
import { WebSocket } from 'ws';
import { serveRequests } from './pubsub-ipc.js';
import { Publisher, type StartParams, type StopResult, type PublisherStats } from './pubsub-publisher.js';
import { CHANNEL, PUBLICATION_MARKER, countOccurrences, sharedClockMs, type Target } from './pubsub-protocols.js';

const MARKER = Buffer.from(PUBLICATION_MARKER);
const OFFSET_KEY = Buffer.from('"offset":');
const PING_LINE = Buffer.from('{}');
const NEWLINE = 0x0a;
/** Most latency samples kept per measurement; later ones are dropped and counted. */
const MAX_LATENCY_SAMPLES = 4_000_000;

export interface OpenParams {
  readonly target: Target;
  readonly count: number;
  /** Source addresses to spread the connections over, so that ephemeral ports do not run out. */
  readonly localAddresses: readonly string[];
  /** WebSocket handshakes in flight at once. */
  readonly concurrency: number;
  /** Connections, evenly spread over the connection order, whose received send times are sampled. */
  readonly sampleConnections: number;
  /** Subscribe in a way the server can later resume from (Rotor recovery, nchan message ids, socket.io session ids). */
  readonly recoverable: boolean;
  readonly timeoutMs: number;
}

export interface OpenResult {
  readonly ready: number;
  readonly failed: number;
  readonly ms: number;
  /** Failure reasons with their counts. */
  readonly failures: Record<string, number>;
}

export interface ClientStats {
  /** Time of the snapshot on the shared clock, in milliseconds. */
  readonly now: number;
  readonly delivered: number;
  readonly open: number;
  readonly ready: number;
  /** Closes that this process did not request, by close code. */
  readonly closes: Record<string, number>;
  readonly errors: Record<string, number>;
  /** CPU time of this process (user plus system), in milliseconds. */
  readonly cpuMs: number;
  readonly connectionsWithDeliveries: number;
}

export interface LatencySummary {
  readonly samples: number;
  readonly dropped: number;
  /** Publish-to-delivery latency percentiles in milliseconds. */
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export interface RecoveryParams {
  /** Publications each connection must get back. */
  readonly expected: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
}

export interface RecoveryResult {
  /** Time from the first reconnect attempt until the last connection had all publications back. */
  readonly ms: number;
  /** Median time for one connection, from the first reconnect attempt. */
  readonly medianMs: number;
  readonly complete: number;
  /** Connections whose server reported the state as not recovered (Rotor `recovered:false`, a new socket.io session). */
  readonly notRecovered: number;
  readonly failed: number;
  /** Connections that got more publications than were missed. */
  readonly duplicates: number;
  readonly minReceived: number;
  readonly maxReceived: number;
  readonly failures: Record<string, number>;
}

interface Connection {
  readonly index: number;
  readonly sampled: boolean;
  socket: WebSocket | undefined;
  ready: boolean;
  /** Ready and not closed since: counted in `liveConnections`. */
  live: boolean;
  finished: boolean;
  /** A close that this process asked for, which is not counted as a failure. */
  closing: boolean;
  delivered: number;
  /** Publications received since the last reconnect. */
  sinceResume: number;
  resuming: boolean;
  /** Rotor epoch, socket.io session id (pid); unused for the others. */
  session: string | undefined;
  /** Rotor offset, nchan message id or socket.io offset of the last publication received. */
  position: string | undefined;
  recovered: boolean;
  doneAt: number;
}

let target: Target | undefined;
let localAddresses: readonly string[] = [];
let recoverable = false;
let connections: Connection[] = [];
let delivered = 0;
const closes: Record<string, number> = {};
const errors: Record<string, number> = {};
let failures: Record<string, number> = {};
let latencySamples: number[] = [];
let latencyDropped = 0;
let recordingLatency = false;
let expectedAfterResume = 0;
let onProgress: (() => void) | undefined;
let liveConnections = 0;
let deliveredAtPublishStart = 0;
let deliveryWaiter: (() => void) | undefined;

const publisher = new Publisher({
  deliveredPerSubscriber: () => (liveConnections === 0 ? Number.POSITIVE_INFINITY : (delivered - deliveredAtPublishStart) / liveConnections),
  onNextDelivery: (wake) => {
    deliveryWaiter = wake;
  },
});

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function endpoint(connection: Connection): { url: string; protocol: string | undefined } {
  const { host, port, kind } = target!;
  const base = `ws://${host}:${port}`;
  switch (kind) {
    case 'rotor':
      return { url: `${base}/connection/websocket`, protocol: 'centrifuge-json' };
    case 'ws-reference':
      return { url: `${base}/ws`, protocol: undefined };
    case 'nchan': {
      const resume = connection.resuming && connection.position !== undefined ? `?last_event_id=${encodeURIComponent(connection.position)}` : '';
      // The ws+meta.nchan subprotocol prefixes each message with its id, which a resume needs.
      return { url: `${base}/sub/${CHANNEL}${resume}`, protocol: recoverable ? 'ws+meta.nchan' : undefined };
    }
    case 'socketio':
      return { url: `${base}/socket.io/?EIO=4&transport=websocket`, protocol: undefined };
  }
}

function markReady(connection: Connection): void {
  if (connection.ready) return;
  connection.ready = true;
  connection.live = true;
  liveConnections++;
  checkFinished(connection);
}

function fail(connection: Connection, reason: string): void {
  if (connection.finished) return;
  connection.finished = true;
  connection.doneAt = sharedClockMs();
  bump(failures, reason);
  connection.closing = true;
  connection.socket?.terminate();
  onProgress?.();
}

/** Marks a connection finished: ready, and after a reconnect, with every missed publication back. */
function checkFinished(connection: Connection): void {
  if (connection.finished || !connection.ready) return;
  if (connection.resuming && connection.recovered && connection.sinceResume < expectedAfterResume) return;
  connection.finished = true;
  connection.doneAt = sharedClockMs();
  onProgress?.();
}

function countDeliveries(connection: Connection, data: Buffer, receivedAt: number): void {
  const count = countOccurrences(data, MARKER);
  if (count === 0) return;
  delivered += count;
  connection.delivered += count;
  connection.sinceResume += count;
  if (connection.sampled && recordingLatency) recordLatencies(data, receivedAt);
  if (deliveryWaiter !== undefined) {
    const wake = deliveryWaiter;
    deliveryWaiter = undefined;
    wake();
  }
}

/** Reads the send time after each marker; the payload puts a comma right after it. */
function recordLatencies(data: Buffer, receivedAt: number): void {
  let from = data.indexOf(MARKER);
  while (from !== -1) {
    const start = from + MARKER.length;
    const end = data.indexOf(0x2c, start);
    const sentAt = Number(data.toString('latin1', start, end));
    if (latencySamples.length < MAX_LATENCY_SAMPLES) latencySamples.push(receivedAt - sentAt);
    else latencyDropped++;
    from = data.indexOf(MARKER, end);
  }
}

/** True when a line of the frame is exactly `{}`, Centrifugo's ping. */
function hasPingLine(data: Buffer): boolean {
  let at = data.indexOf(PING_LINE);
  while (at !== -1) {
    const startsLine = at === 0 || data[at - 1] === NEWLINE;
    const endsLine = at + 2 === data.length || data[at + 2] === NEWLINE;
    if (startsLine && endsLine) return true;
    at = data.indexOf(PING_LINE, at + 2);
  }
  return false;
}

function lastRotorOffset(data: Buffer): string | undefined {
  const at = data.lastIndexOf(OFFSET_KEY);
  if (at === -1) return undefined;
  const start = at + OFFSET_KEY.length;
  let end = start;
  while (end < data.length && data[end]! >= 0x30 && data[end]! <= 0x39) end++;
  return data.toString('latin1', start, end);
}

interface RotorReply {
  id?: number;
  error?: { code: number; message: string };
  subscribe?: { epoch?: string; offset?: number; recovered?: boolean; publications?: Array<{ offset?: number }> };
}

/** Handles a Rotor frame before the subscribe reply: every line is parsed. */
function rotorHandshake(connection: Connection, data: Buffer, receivedAt: number): void {
  for (const line of data.toString('utf8').split('\n')) {
    if (line === '{}') {
      connection.socket!.send('{}');
      continue;
    }
    const lineBuffer = Buffer.from(line);
    if (!line.startsWith('{"id":')) {
      countDeliveries(connection, lineBuffer, receivedAt);
      if (recoverable) connection.position = lastRotorOffset(lineBuffer) ?? connection.position;
      continue;
    }
    const reply = JSON.parse(line) as RotorReply;
    if (reply.error !== undefined) {
      fail(connection, `${reply.id === 1 ? 'connect' : 'subscribe'} error ${reply.error.code} ${reply.error.message}`);
      return;
    }
    if (reply.id !== 2 || reply.subscribe === undefined) continue;
    const result = reply.subscribe;
    const publications = result.publications ?? [];
    countDeliveries(connection, lineBuffer, receivedAt);
    if (connection.resuming && result.recovered !== true) {
      connection.recovered = false;
      bump(failures, 'not recovered');
    }
    if (recoverable) {
      connection.session = result.epoch;
      const last = publications.at(-1)?.offset;
      connection.position = String(last ?? result.offset ?? 0);
    }
    markReady(connection);
  }
}

function onRotorMessage(connection: Connection, data: Buffer, receivedAt: number): void {
  if (!connection.ready) {
    rotorHandshake(connection, data, receivedAt);
    return;
  }
  if (hasPingLine(data)) connection.socket!.send('{}');
  countDeliveries(connection, data, receivedAt);
  if (recoverable) connection.position = lastRotorOffset(data) ?? connection.position;
  checkFinished(connection);
}

function onSocketIoMessage(connection: Connection, data: Buffer, receivedAt: number): void {
  // Engine.IO v4 over WebSocket sends one packet per frame. The first digit is the
  // Engine.IO packet type (0 open, 2 ping, 4 message), and the second is the Socket.IO
  // packet type (0 connect, 1 disconnect, 2 event, 4 connect error).
  const type = data[0];
  if (type === 0x32 && data.length === 1) {
    connection.socket!.send('3');
    return;
  }
  if (type === 0x30) {
    const resume = connection.resuming && connection.session !== undefined && connection.position !== undefined;
    connection.socket!.send(resume ? `40${JSON.stringify({ pid: connection.session, offset: connection.position })}` : '40');
    return;
  }
  if (type !== 0x34) return;
  const packet = data[1];
  if (packet === 0x32) {
    countDeliveries(connection, data, receivedAt);
    if (recoverable && data.length > 2 && data[data.length - 2] === 0x22) {
      // With connection state recovery the server appends the packet's offset as the last argument.
      const start = data.lastIndexOf(0x22, data.length - 3);
      connection.position = data.toString('latin1', start + 1, data.length - 2);
    }
    checkFinished(connection);
  } else if (packet === 0x30) {
    const reply = JSON.parse(data.toString('utf8', 2)) as { sid?: string; pid?: string };
    if (connection.resuming && (reply.pid === undefined || reply.pid !== connection.session)) {
      connection.recovered = false;
      bump(failures, 'not recovered');
    }
    connection.session = reply.pid;
    markReady(connection);
  } else if (packet === 0x34) {
    fail(connection, `socket.io connect error ${data.toString('utf8', 2)}`);
  } else if (packet === 0x31) {
    fail(connection, 'socket.io disconnect packet');
  }
}

/** Handles a frame of nchan or of the reference server: one bare payload, no control messages. */
function onPlainMessage(connection: Connection, data: Buffer, receivedAt: number): void {
  countDeliveries(connection, data, receivedAt);
  if (recoverable && data[0] === 0x69) {
    // "id: <message id>\n" comes first with the ws+meta.nchan subprotocol.
    const end = data.indexOf(NEWLINE);
    connection.position = data.toString('latin1', 4, end);
  }
  checkFinished(connection);
}

const MESSAGE_HANDLERS: Record<Target['kind'], (connection: Connection, data: Buffer, receivedAt: number) => void> = {
  rotor: onRotorMessage,
  socketio: onSocketIoMessage,
  nchan: onPlainMessage,
  'ws-reference': onPlainMessage,
};

function onOpen(connection: Connection): void {
  switch (target!.kind) {
    case 'rotor': {
      const resume = connection.resuming && connection.position !== undefined
        ? `,"recover":true,"offset":${connection.position},"epoch":${JSON.stringify(connection.session ?? '')}`
        : '';
      connection.socket!.send(`{"connect":{"name":"bench"},"id":1}\n{"subscribe":{"channel":"${CHANNEL}"${resume}},"id":2}`);
      return;
    }
    case 'socketio':
      return; // The client replies to the Engine.IO open packet in onSocketIoMessage.
    case 'ws-reference':
    case 'nchan':
      markReady(connection);
  }
}

/** Opens one connection; resolves once the WebSocket handshake ended, either way. */
function connect(connection: Connection, localAddress: string | undefined): Promise<void> {
  const { url, protocol } = endpoint(connection);
  connection.ready = false;
  connection.finished = false;
  connection.closing = false;
  connection.sinceResume = 0;
  connection.recovered = true;
  const socket = new WebSocket(url, protocol === undefined ? [] : [protocol], {
    perMessageDeflate: false,
    skipUTF8Validation: true,
    handshakeTimeout: 30_000,
    maxPayload: 256 * 1024 * 1024,
    ...(localAddress === undefined ? {} : { localAddress }),
  });
  connection.socket = socket;
  const onMessage = MESSAGE_HANDLERS[target!.kind];
  return new Promise((resolve) => {
    socket.on('open', () => {
      resolve();
      onOpen(connection);
    });
    socket.on('message', (data: Buffer) => {
      try {
        onMessage(connection, data, sharedClockMs());
      } catch (err) {
        fail(connection, `unreadable message: ${(err as Error).message}`);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      bump(errors, err.code ?? err.message);
      resolve();
      fail(connection, `error ${err.code ?? err.message}`);
    });
    socket.on('close', (code: number) => {
      resolve();
      if (connection.live) {
        connection.live = false;
        liveConnections--;
      }
      if (!connection.closing) {
        bump(closes, String(code));
        fail(connection, `closed ${code}`);
      }
    });
  });
}

/** Opens the given connections, `concurrency` handshakes at a time; resolves when every one finished or `timeoutMs` passed. */
async function openAll(list: readonly Connection[], concurrency: number, timeoutMs: number): Promise<number> {
  const started = sharedClockMs();
  let next = 0;
  const allFinished = new Promise<void>((resolve) => {
    // Each call of onProgress is one connection turning finished.
    let remaining = list.length;
    onProgress = () => {
      remaining--;
      if (remaining === 0) resolve();
    };
    if (remaining === 0) resolve();
  });
  const worker = async (): Promise<void> => {
    while (next < list.length) {
      const connection = list[next++]!;
      const address = localAddresses.length === 0 ? undefined : localAddresses[connection.index % localAddresses.length];
      await connect(connection, address);
    }
  };
  const workers = Array.from({ length: Math.min(concurrency, list.length) }, worker);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all([Promise.all(workers), allFinished]), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
  onProgress = undefined;
  for (const connection of list) if (!connection.finished) fail(connection, 'timed out');
  return sharedClockMs() - started;
}

function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}


serveRequests({
  async open(params: OpenParams): Promise<OpenResult> {
    target = params.target;
    localAddresses = params.localAddresses;
    recoverable = params.recoverable;
    failures = {};
    const sampleEvery = Math.max(1, Math.floor(params.count / Math.max(1, params.sampleConnections)));
    connections = Array.from({ length: params.count }, (_, index) => ({
      index,
      sampled: index % sampleEvery === 0,
      socket: undefined,
      ready: false,
      live: false,
      finished: false,
      closing: false,
      delivered: 0,
      sinceResume: 0,
      resuming: false,
      session: undefined,
      position: undefined,
      recovered: true,
      doneAt: 0,
    }));
    const ms = await openAll(connections, params.concurrency, params.timeoutMs);
    const ready = connections.filter((connection) => connection.ready && connection.socket?.readyState === WebSocket.OPEN).length;
    return { ready, failed: params.count - ready, ms, failures };
  },

  stats(): ClientStats {
    const usage = process.cpuUsage();
    let open = 0;
    let ready = 0;
    let withDeliveries = 0;
    for (const connection of connections) {
      if (connection.socket?.readyState === WebSocket.OPEN) open++;
      if (connection.ready) ready++;
      if (connection.delivered > 0) withDeliveries++;
    }
    return { now: sharedClockMs(), delivered, open, ready, closes, errors, cpuMs: (usage.user + usage.system) / 1000, connectionsWithDeliveries: withDeliveries };
  },

  latencyStart(): void {
    latencySamples = [];
    latencyDropped = 0;
    recordingLatency = true;
  },

  latencyStop(): LatencySummary {
    recordingLatency = false;
    const sorted = Float64Array.from(latencySamples).sort();
    latencySamples = [];
    return { samples: sorted.length, dropped: latencyDropped, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), p999: percentile(sorted, 0.999), max: sorted.at(-1) ?? Number.NaN };
  },

  /** Cuts every connection without a close frame, as a network failure would. */
  async drop(): Promise<number> {
    const closed = connections.map((connection) => new Promise<void>((resolve) => {
      const socket = connection.socket;
      connection.closing = true;
      if (socket === undefined || socket.readyState === WebSocket.CLOSED) {
        resolve();
        return;
      }
      socket.once('close', () => resolve());
      socket.terminate();
    }));
    await Promise.all(closed);
    return connections.length;
  },

  /** Reconnects every connection with its last position and waits until each has `expected` publications back. */
  async reconnect(params: RecoveryParams): Promise<RecoveryResult> {
    failures = {};
    expectedAfterResume = params.expected;
    for (const connection of connections) connection.resuming = true;
    const started = sharedClockMs();
    await openAll(connections, params.concurrency, params.timeoutMs);
    const received = connections.map((connection) => connection.sinceResume);
    const succeeded = connections.filter((connection) => connection.ready && connection.recovered && connection.sinceResume >= params.expected);
    const times = succeeded.map((connection) => connection.doneAt - started).sort((a, b) => a - b);
    for (const connection of connections) connection.resuming = false;
    return {
      ms: times.length === connections.length ? times.at(-1)! : Number.NaN,
      medianMs: times.length === 0 ? Number.NaN : times[Math.floor(times.length / 2)]!,
      complete: succeeded.length,
      notRecovered: connections.filter((connection) => connection.ready && !connection.recovered).length,
      failed: connections.filter((connection) => !connection.ready).length,
      duplicates: connections.filter((connection) => connection.sinceResume > params.expected).length,
      minReceived: Math.min(...received),
      maxReceived: Math.max(...received),
      failures,
    };
  },

  publishStart(params: StartParams): void {
    deliveredAtPublishStart = delivered;
    publisher.start(params);
  },

  publishStats(): PublisherStats {
    return publisher.stats();
  },

  publishStop(): Promise<StopResult> {
    return publisher.stop();
  },

  publishCount(params: { target: Target; count: number; window: number }): Promise<StopResult> {
    return publisher.publishCount(params.target, params.count, params.window);
  },

  /**
   * Marks every connection as closing, so that the server's closes do not count as
   * failures. The benchmark stops the server next, which then closes the TCP connections
   * first, so the TIME_WAIT entries stay on its side instead of using up client ports.
   */
  expectClose(): void {
    for (const connection of connections) connection.closing = true;
  },
});
