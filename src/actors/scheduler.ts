import type { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Logger } from '../log.js';
import { Errors, RotorError } from '../protocol/codes.js';
import {
  shardOf,
  toWire,
  type ActorCommand,
  type BatchReply,
  type ResultOf,
  type WorkerData,
  type WorkerReply,
  type WorkerTask,
} from './messages.js';

export interface SchedulerOptions {
  /** Worker threads in the pool. */
  readonly workers: number;
  /** Number of shards; the shard of a channel is a hash of its name modulo this. */
  readonly shards: number;
  readonly workerData: WorkerData;
  readonly logger: Logger;
  /**
   * Sends the commands of one shard gathered during an event-loop turn as one task.
   * Off, every command is its own task (only for measuring what batching buys).
   * @default true
   */
  readonly batching?: boolean;
  /**
   * Maximum commands in one task; the rest wait for the next task of the shard.
   * @default 4096
   */
  readonly maxBatch?: number;
}

interface Pending {
  readonly command: ActorCommand;
  readonly resolve: (value: never) => void;
  readonly reject: (err: Error) => void;
}

interface ShardQueue {
  pending: Pending[];
  inFlight: boolean;
}

/** Worker entry: the compiled module in production, the TypeScript source under tsx. */
const WORKER_FILE = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url).href;

/**
 * Routes channel commands from the main thread to the channel actors. Every shard has at
 * most one task in flight. Commands that arrive meanwhile wait and go out together as the
 * next task, so batches grow with load. A custom piscina load balancer sends each shard
 * to the one worker that owns it (`shard % workers` picks the owner slot). That keeps
 * the commands of a channel in order and its SQLite file in one thread.
 */
export class Scheduler {
  private readonly pool: Piscina;
  private readonly queues: ShardQueue[];
  private readonly dirty = new Set<number>();
  private flushScheduled = false;
  private outstanding = 0;
  private idleWaiters: Array<() => void> = [];
  private closed = false;
  private readonly batching: boolean;
  private readonly maxBatch: number;
  private readonly logger: Logger;

  constructor(private readonly options: SchedulerOptions) {
    this.batching = options.batching ?? true;
    this.maxBatch = options.maxBatch ?? 4096;
    this.logger = options.logger;
    this.queues = Array.from({ length: options.shards }, () => ({ pending: [], inFlight: false }));
    const slots: Array<number | undefined> = new Array(options.workers).fill(undefined);
    this.pool = new Piscina({
      filename: WORKER_FILE,
      minThreads: options.workers,
      maxThreads: options.workers,
      idleTimeout: Infinity,
      // Workers run timers and I/O between tasks only with atomics off.
      atomics: 'disabled',
      workerData: options.workerData,
      // A batch keeps thousands of commands alive until its reply arrives. A young
      // generation of V8's default size promotes them and spends the time in the old one.
      resourceLimits: { maxYoungGenerationSizeMb: 64 },
      loadBalancer: (task, workers) => {
        const shard = (task as unknown as Record<symbol, number | null>)[Piscina.queueOptionsSymbol];
        const slot = (shard ?? 0) % slots.length;
        const usable = (worker: (typeof workers)[number]): boolean => !worker.terminating && !worker.destroyed;
        const owner = workers.find((worker) => worker.id === slots[slot] && usable(worker));
        if (owner !== undefined) return owner;
        // The owner died (or has not started): hand the slot to a worker that owns none.
        const owned = new Set(slots);
        const successor = workers.find((worker) => !owned.has(worker.id) && usable(worker));
        if (successor === undefined) return null;
        slots[slot] = successor.id;
        return successor;
      },
    });
    this.pool.on('error', (err: Error) => this.logger.error({ err }, 'actor worker failed'));
    this.pool.on('workerDestroy', (worker: { id: number }) => {
      if (!this.closed) this.logger.warn({ worker: worker.id }, 'actor worker exited, starting a replacement');
    });
  }

  /** The pool's worker threads, for diagnostics and tests. */
  get threads(): readonly Worker[] {
    return this.pool.threads;
  }

  /** Sends a command to its channel's actor; resolves once the worker has run it (and committed its writes). */
  send<C extends ActorCommand>(command: C): Promise<ResultOf<C>> {
    if (this.closed) return Promise.reject(new RotorError(Errors.internal, { detail: 'scheduler is closed' }));
    const shard = shardOf(command.channel, this.options.shards);
    return new Promise<ResultOf<C>>((resolve, reject) => {
      this.outstanding++;
      if (!this.batching) {
        this.dispatch(shard, [{ command, resolve: resolve as (value: never) => void, reject }]);
        return;
      }
      this.queues[shard]!.pending.push({ command, resolve: resolve as (value: never) => void, reject });
      this.markDirty(shard);
    });
  }

  /** Deletes expired history and presence in every shard. */
  async sweep(): Promise<void> {
    await Promise.all(this.queues.map((_, shard) => this.runTask({ type: 'sweep', shard }, shard)));
  }

  /** Waits for every command sent so far, closes the shards' storage and stops the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.outstanding > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.closed = true;
    const results = await Promise.allSettled(this.queues.map((_, shard) => this.runTask({ type: 'close', shard }, shard)));
    for (const result of results) {
      if (result.status === 'rejected') this.logger.error({ err: result.reason }, 'closing shard storage failed');
    }
    await this.pool.destroy();
  }

  private markDirty(shard: number): void {
    this.dirty.add(shard);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate runs after this turn's I/O callbacks, so their commands share one task.
    setImmediate(() => {
      this.flushScheduled = false;
      for (const dirtyShard of this.dirty) {
        const queue = this.queues[dirtyShard]!;
        if (queue.inFlight) continue;
        this.dirty.delete(dirtyShard);
        const batch = queue.pending.length > this.maxBatch ? queue.pending.splice(0, this.maxBatch) : queue.pending;
        if (batch === queue.pending) queue.pending = [];
        queue.inFlight = true;
        this.dispatch(dirtyShard, batch);
      }
    });
  }

  private dispatch(shard: number, batch: Pending[]): void {
    const commands = batch.map((entry) => toWire(entry.command));
    this.runTask({ type: 'batch', shard, commands }, shard).then(
      (reply) => this.settle(shard, batch, reply as BatchReply),
      (err: unknown) => {
        this.logger.error({ err, shard, commands: batch.length }, 'actor task failed');
        const error = new RotorError(Errors.internal, { cause: err, detail: 'actor worker failed' });
        this.settle(shard, batch, undefined, error);
      },
    );
  }

  private settle(shard: number, batch: Pending[], reply: BatchReply | undefined, failure?: Error): void {
    if (reply === undefined) {
      const error = failure ?? new RotorError(Errors.internal, { detail: 'missing actor result' });
      for (const entry of batch) entry.reject(error);
    } else {
      let nextError = 0;
      for (let i = 0; i < batch.length; i++) {
        const failed = reply.errors[nextError];
        if (failed !== undefined && failed[0] === i) {
          nextError++;
          batch[i]!.reject(new RotorError(failed[1]));
        } else if (batch[i]!.command.type === 'publish') {
          batch[i]!.resolve({ offset: reply.values[i], epoch: reply.epochs[i] } as never);
        } else {
          batch[i]!.resolve(reply.values[i] as never);
        }
      }
    }
    this.outstanding -= batch.length;
    if (this.batching) {
      const queue = this.queues[shard]!;
      queue.inFlight = false;
      if (queue.pending.length > 0) this.markDirty(shard);
    }
    if (this.outstanding === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  private runTask(task: WorkerTask, shard: number): Promise<WorkerReply> {
    return this.pool.run({ ...task, [Piscina.queueOptionsSymbol]: shard }) as Promise<WorkerReply>;
  }
}
