/**
 * Request and response over the IPC channel of a forked child process: the benchmark
 * script calls `ChildRpc.request`, the child replies with `serveRequests`.
 *
 * This file runs in the child processes too, so it imports nothing but Node built-ins.
 */
import { fork, type ChildProcess } from 'node:child_process';

interface RequestMessage {
  readonly id: number;
  readonly op: string;
  readonly params: unknown;
}

interface ResponseMessage {
  readonly id: number;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: string;
}

/** Handlers of a child process, by operation name. */
export type Handlers = Record<string, (params: never) => unknown>;

/**
 * Runs the named handler for each request from the parent process and sends back its result. The child exits when
 * the parent goes away, so that a killed benchmark leaves no load processes behind.
 */
export function serveRequests(handlers: Handlers): void {
  if (process.send === undefined) throw new Error('this program is a benchmark child process; the perf scripts start it with fork()');
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: RequestMessage) => {
    const handler = handlers[message.op] as ((params: unknown) => unknown) | undefined;
    const respond = (response: ResponseMessage): void => {
      if (process.connected) process.send!(response);
    };
    if (handler === undefined) {
      respond({ id: message.id, ok: false, error: `unknown operation "${message.op}"` });
      return;
    }
    Promise.resolve()
      .then(() => handler(message.params))
      .then(
        (result) => respond({ id: message.id, ok: true, result }),
        (err: unknown) => respond({ id: message.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      );
  });
}

const OUTPUT_LIMIT = 16 * 1024;

/** A forked child process in its own process group, driven by requests. */
export class ChildRpc {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>();
  private output = '';
  private exitCode: number | string | undefined;
  readonly exited: Promise<number | string>;
  private readonly child: ChildProcess;

  /**
   * Forks `script` with plain `node` (no TypeScript loader, so the child pays for none),
   * detached so that `stop` can kill its whole process group.
   */
  constructor(
    readonly name: string,
    script: string,
    args: readonly string[] = [],
  ) {
    this.child = fork(script, args, { execArgv: [], detached: true, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const append = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
    };
    this.child.stdout!.on('data', append);
    this.child.stderr!.on('data', append);
    this.child.on('message', (message: ResponseMessage) => {
      const waiter = this.pending.get(message.id);
      if (waiter === undefined) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(`${this.name}: ${message.error}`));
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code ?? signal ?? 'unknown';
        for (const waiter of this.pending.values()) waiter.reject(new Error(`${this.name} exited (${this.exitCode}) during a request:\n${this.output}`));
        this.pending.clear();
        resolve(this.exitCode);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Sends one request and resolves with the child's result; fails after `timeoutMs`. */
  request<Result>(op: string, params: unknown = {}, timeoutMs = 60_000): Promise<Result> {
    if (this.exitCode !== undefined) return Promise.reject(new Error(`${this.name} has exited (${this.exitCode}):\n${this.output}`));
    const id = this.nextId++;
    return new Promise<Result>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: request "${op}" timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as Result);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.child.send({ id, op, params } satisfies RequestMessage);
    });
  }

  /** Disconnects the IPC channel (the child then exits), waits up to 5 s, then kills the group. */
  async stop(): Promise<void> {
    if (this.exitCode === undefined) {
      if (this.child.connected) this.child.disconnect();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.exited, new Promise((resolve) => (timer = setTimeout(resolve, 5_000)))]);
      clearTimeout(timer);
    }
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
    await this.exited;
  }
}
