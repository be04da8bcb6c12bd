/**
 * The publisher of the pub/sub benchmarks, run inside the load client process: it sends
 * 100-byte payloads through a server's HTTP publish route over keep-alive connections.
 * Each payload carries its send time on the shared clock, so that the subscribers can
 * compute publish-to-delivery latency.
 *
 * Modes:
 * - `max` is a closed loop: at most `window` requests in flight, and at most `window`
 *   publications not yet received by every subscriber. The second bound matters for
 *   servers that acknowledge a publish before writing it to the subscribers (Rotor). Without
 *   it the publisher runs ahead, the undelivered backlog grows without limit in socket
 *   buffers, and the measured rate is not one the server can sustain.
 * - `rate` is an open loop: `rate` publications per second in 1 ms steps, never more than
 *   `window` requests in flight (a publication that would exceed it waits, and
 *   `maxBacklog` records how far the publisher fell behind schedule).
 *
 * This file runs as compiled JavaScript in the load client process; it imports only Node
 * built-ins and the other child-side files.
 */
import { Agent, request } from 'node:http';
import { PAYLOAD_BYTES, buildPayload, isPublishAccepted, publishRequest, sharedClockMs, type PublishRequest, type Target } from './pubsub-protocols.js';

export interface StartParams {
  readonly target: Target;
  readonly mode: 'max' | 'rate';
  /** Requests in flight at most; in `max` mode also the most publications not yet delivered to every subscriber. */
  readonly window: number;
  /** Publications per second in `rate` mode. */
  readonly rate?: number;
}

export interface PublisherStats {
  /** Time of the snapshot on the shared clock, in milliseconds. */
  readonly now: number;
  readonly sent: number;
  readonly accepted: number;
  readonly rejected: number;
  /** Requests sent again because the server had closed the idle keep-alive connection they went out on. */
  readonly retried: number;
}

export interface StopResult extends PublisherStats {
  /** HTTP status codes of the rejected publications (or the network error code), with counts. */
  readonly rejections: Record<string, number>;
  readonly firstRejection: string | undefined;
  /** Maximum number of publications the `rate` mode was behind schedule at one moment. */
  readonly maxBacklog: number;
}

/** How far the subscribers are: publications each one has received on average since a given moment. */
export interface DeliveryProgress {
  /** Publications received per open subscriber since `start` was called. */
  deliveredPerSubscriber(): number;
  /** Calls `wake` once after the next delivery. */
  onNextDelivery(wake: () => void): void;
}

export class Publisher {
  private target: Target | undefined;
  private agent: Agent | undefined;
  private sequence = 0;
  private sent = 0;
  private accepted = 0;
  private rejected = 0;
  private retried = 0;
  private inFlight = 0;
  private rejections: Record<string, number> = {};
  private firstRejection: string | undefined;
  private running = false;
  private maxBacklog = 0;
  private ticker: NodeJS.Timeout | undefined;
  private onIdle: (() => void) | undefined;
  private onResponse: (() => void) | undefined;

  constructor(private readonly progress: DeliveryProgress) {}

  /** Starts publishing; `progress` counts deliveries from this moment on. */
  start(params: StartParams): void {
    if (this.running) throw new Error('the publisher is already running; stop it first');
    this.useTarget(params.target, params.window);
    this.running = true;
    if (params.mode === 'max') this.startMax(params.window);
    else this.startRate(params.window, params.rate ?? 1);
  }

  stats(): PublisherStats {
    return { now: sharedClockMs(), sent: this.sent, accepted: this.accepted, rejected: this.rejected, retried: this.retried };
  }

  /** Stops sending and resolves once every request in flight has completed. */
  async stop(): Promise<StopResult> {
    this.running = false;
    clearInterval(this.ticker);
    this.ticker = undefined;
    this.onResponse = undefined;
    await this.waitIdle();
    return this.result();
  }

  /** Publishes exactly `count` payloads, `window` at a time, and resolves when all have completed. */
  async publishCount(target: Target, count: number, window: number): Promise<StopResult> {
    if (this.running) throw new Error('the publisher is already running; stop it first');
    this.useTarget(target, window);
    this.running = true;
    const finished = new Promise<void>((resolve) => {
      this.onResponse = () => {
        while (this.running && this.sent < count && this.inFlight < window) this.publishOne();
        if (this.sent === count && this.inFlight === 0) resolve();
      };
    });
    this.onResponse!();
    await finished;
    this.running = false;
    this.onResponse = undefined;
    return this.result();
  }

  private result(): StopResult {
    return { ...this.stats(), rejections: this.rejections, firstRejection: this.firstRejection, maxBacklog: this.maxBacklog };
  }

  /** Points the publisher at a server, with a fresh keep-alive pool of `window` connections, and zeroes the counters. */
  private useTarget(target: Target, window: number): void {
    this.target = target;
    this.agent?.destroy();
    this.agent = new Agent({ keepAlive: true, maxSockets: window });
    this.sent = 0;
    this.accepted = 0;
    this.rejected = 0;
    this.retried = 0;
    this.rejections = {};
    this.firstRejection = undefined;
    this.maxBacklog = 0;
  }

  private reject(reason: string, detail: string): void {
    this.rejected++;
    this.rejections[reason] = (this.rejections[reason] ?? 0) + 1;
    this.firstRejection ??= detail;
  }

  private publishOne(): void {
    this.inFlight++;
    this.sent++;
    this.send(publishRequest(this.target!, buildPayload(++this.sequence, PAYLOAD_BYTES)));
  }

  private send(publish: PublishRequest): void {
    const target = this.target!;
    const { path, headers, body } = publish;
    const finish = (): void => {
      this.inFlight--;
      this.onResponse?.();
      if (this.inFlight === 0) this.onIdle?.();
    };
    const req = request({ host: target.host, port: target.port, method: 'POST', path, agent: this.agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (isPublishAccepted(target.kind, res.statusCode ?? 0, text)) this.accepted++;
        else this.reject(String(res.statusCode), `HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
        finish();
      });
      res.on('error', (err: NodeJS.ErrnoException) => {
        this.reject(err.code ?? 'response error', err.message);
        finish();
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      // A server may close an idle keep-alive connection just as a request goes out on it.
      // Node's documentation recommends sending such a request again.
      if (err.code === 'ECONNRESET' && req.reusedSocket) {
        this.retried++;
        this.send(publish);
        return;
      }
      this.reject(err.code ?? 'request error', err.message);
      finish();
    });
    req.end(body);
  }

  private startMax(window: number): void {
    let waitingForDelivery = false;
    const fill = (): void => {
      while (this.running && this.inFlight < window) {
        if (this.sent - this.progress.deliveredPerSubscriber() >= window) {
          if (!waitingForDelivery) {
            waitingForDelivery = true;
            this.progress.onNextDelivery(() => {
              waitingForDelivery = false;
              fill();
            });
          }
          return;
        }
        this.publishOne();
      }
    };
    this.onResponse = fill;
    fill();
  }

  private startRate(window: number, rate: number): void {
    const started = sharedClockMs();
    let due = 0;
    const tick = (): void => {
      due = Math.floor(((sharedClockMs() - started) * rate) / 1000);
      while (this.running && this.sent < due && this.inFlight < window) this.publishOne();
      this.maxBacklog = Math.max(this.maxBacklog, due - this.sent);
    };
    this.onResponse = () => {
      if (this.sent < due) tick();
    };
    this.ticker = setInterval(tick, 1);
  }

  private waitIdle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.onIdle = () => {
        this.onIdle = undefined;
        resolve();
      };
    });
  }
}
