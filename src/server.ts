import { accessSync, constants, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Scheduler } from './actors/scheduler.js';
import { ApiHandler } from './api/handler.js';
import { ChannelResolver } from './config/channels.js';
import type { Config } from './config/options.js';
import type { Logger } from './log.js';
import { RotorNode } from './node.js';
import { TokenVerifier } from './auth/tokens.js';
import { Disconnects } from './protocol/codes.js';
import { Hub } from './transport/hub.js';
import type { Session } from './transport/session.js';
import { TimerWheel } from './transport/timer-wheel.js';
import { WEBSOCKET_PATH, WebSocketEndpoint } from './transport/websocket.js';
import { WriteScheduler } from './transport/write-scheduler.js';
import { handlePage } from './web/pages.js';

/** A start-up failure an operator can fix (port taken, data directory not writable). */
export class StartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartError';
  }
}

const MANIFEST = 'rotor.json';
const LOCK = 'rotor.lock';
/** How often expired history and presence are deleted; expiry itself is checked on every read. */
const SWEEP_INTERVAL_MS = 10_000;

interface Manifest {
  readonly format: 1;
  readonly shards: number;
}

/**
 * Creates the data directory, checks that it is writable, and returns the shard count
 * it was created with: the shard of a channel must never change for a data directory.
 */
function prepareDataDir(config: Config, logger: Logger): { dir: string; shards: number } {
  const dir = resolve(config.data_dir);
  const manifestPath = join(dir, MANIFEST);
  try {
    makeDirectory(dir);
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new StartError(dataDirProblem(dir, err as NodeJS.ErrnoException), { cause: err });
  }
  lockDataDir(dir, logger);
  let manifest: Manifest | undefined;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new StartError(`cannot read ${manifestPath}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (manifest !== undefined) {
    if (manifest.shards !== config.actor_shards) {
      logger.warn({ configured: config.actor_shards, stored: manifest.shards, dataDir: dir }, 'actor_shards differs from the data directory; using the stored value');
    }
    return { dir, shards: manifest.shards };
  }
  try {
    writeFileSync(manifestPath, JSON.stringify({ format: 1, shards: config.actor_shards } satisfies Manifest) + '\n');
  } catch (err) {
    throw new StartError(dataDirProblem(dir, err as NodeJS.ErrnoException), { cause: err });
  }
  return { dir, shards: config.actor_shards };
}

/**
 * Creates a directory and its missing parents one level at a time. mkdirSync with
 * `recursive` loops forever on paths it cannot create under /proc (Node 20).
 */
function makeDirectory(dir: string): void {
  try {
    mkdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if (!statSync(dir).isDirectory()) throw err;
      return;
    }
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err;
    makeDirectory(dirname(dir));
    mkdirSync(dir);
  }
}

/**
 * Takes the data directory for this process: two nodes writing the same SQLite files
 * would hand out the same offsets. The lock file holds the owner's pid; a lock whose
 * process is gone (a crash, kill -9) is taken over.
 */
function lockDataDir(dir: string, logger: Logger): void {
  const lockPath = join(dir, LOCK);
  if (lockedHere.has(dir)) throw new StartError(`data directory ${dir} is in use by another server in this process: set data_dir to another path`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockPath, `${process.pid}\n`, { flag: 'wx' });
      lockedHere.add(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StartError(dataDirProblem(dir, err as NodeJS.ErrnoException), { cause: err });
    }
    const owner = Number.parseInt(readFileSync(lockPath, 'utf8'), 10);
    if (Number.isInteger(owner) && owner !== process.pid && processExists(owner)) {
      throw new StartError(`data directory ${dir} is in use by another Rotor process (pid ${owner}): stop it or set data_dir to another path`);
    }
    logger.warn({ lock: lockPath, pid: owner }, 'removing a stale data directory lock');
    rmSync(lockPath, { force: true });
  }
  throw new StartError(`cannot lock data directory ${dir}: another process keeps taking ${lockPath}`);
}

/** Data directories locked by servers of this process; the lock file alone cannot tell them apart. */
const lockedHere = new Set<string>();

function releaseDataDir(dir: string): void {
  if (!lockedHere.delete(dir)) return;
  const lockPath = join(dir, LOCK);
  try {
    if (Number.parseInt(readFileSync(lockPath, 'utf8'), 10) === process.pid) rmSync(lockPath, { force: true });
  } catch {
    // Already gone: nothing to release.
  }
}

// A process that exits without close() (an uncaught error) still frees its directories.
process.on('exit', () => {
  for (const dir of [...lockedHere]) releaseDataDir(dir);
});

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Describes why the data directory cannot be used, with what to do about it. */
function dataDirProblem(dir: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOTDIR':
      return `cannot create data directory ${dir}: part of the path is a file, not a directory; set data_dir to another path`;
    case 'EEXIST':
      return `data directory ${dir} exists and is not a directory; remove it or set data_dir to another path`;
    default:
      return `data directory ${dir} is not writable (${err.code}): fix its permissions or set data_dir to another path`;
  }
}

/**
 * Splits a request target into path and raw query string. Cheaper than `new URL` on
 * every request; the path is not normalized, so handlers must reject `..` themselves.
 */
function splitUrl(target = '/'): { path: string; query: string } {
  if (!target.startsWith('/')) {
    // Absolute form, as sent to proxies: http://host/path?query.
    const url = new URL(target, 'http://localhost');
    return { path: url.pathname, query: url.search.slice(1) };
  }
  const mark = target.indexOf('?');
  return mark === -1 ? { path: target, query: '' } : { path: target.slice(0, mark), query: target.slice(mark + 1) };
}

/** Returns the default pool size: one thread per spare core, leaving one core for sockets. */
function defaultWorkers(): number {
  return Math.max(1, Math.min(8, availableParallelism() - 1));
}

/** One Rotor node: the HTTP server, the server API, and the actor pool behind them. */
export class RotorServer {
  readonly node: RotorNode;
  readonly scheduler: Scheduler;
  private readonly http: Server;
  private readonly api: ApiHandler;
  private readonly wheel: TimerWheel;
  private readonly websocket: WebSocketEndpoint;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly config: Config,
    private readonly logger: Logger,
    port: number,
    private readonly dataDir: string,
    shards: number,
  ) {
    const workers = Math.min(config.actor_workers || defaultWorkers(), shards);
    this.scheduler = new Scheduler({ workers, shards, workerData: { config, dataDir }, logger: logger.child({ component: 'scheduler' }) });
    const hub = new Hub<Session>();
    this.node = new RotorNode(config, new ChannelResolver(config), this.scheduler, hub, logger, port);
    this.api = new ApiHandler(this.node, logger.child({ component: 'api' }));
    this.wheel = new TimerWheel((err) => logger.error({ err }, 'connection timer failed'));
    this.websocket = new WebSocketEndpoint({
      node: this.node,
      config,
      hub,
      wheel: this.wheel,
      tokens: new TokenVerifier(config),
      writes: new WriteScheduler(),
      logger: logger.child({ component: 'client' }),
    });
    this.http = createServer((req, res) => this.route(req, res));
    this.http.on('upgrade', (req, socket, head) => {
      const { path } = splitUrl(req.url);
      if (path === WEBSOCKET_PATH) this.websocket.upgrade(req, socket, head);
      else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    logger.info({ workers, shards, storage: config.history_storage, dataDir }, 'actor pool started');
  }

  /** Starts a server and resolves once it listens. */
  static async start(config: Config, logger: Logger): Promise<RotorServer> {
    const { dir, shards } = config.history_storage === 'sqlite' ? prepareDataDir(config, logger) : { dir: resolve(config.data_dir), shards: config.actor_shards };
    const server = new RotorServer(config, logger, config.port, dir, shards);
    try {
      await server.listen();
    } catch (err) {
      await server.scheduler.close();
      if (config.history_storage === 'sqlite') releaseDataDir(dir);
      throw err;
    }
    server.sweepTimer = setInterval(() => {
      server.scheduler.sweep().catch((err: unknown) => logger.error({ err }, 'history sweep failed'));
    }, SWEEP_INTERVAL_MS);
    server.sweepTimer.unref();
    return server;
  }

  /** The address the server listens on. */
  get address(): AddressInfo {
    return this.http.address() as AddressInfo;
  }

  /** The base URL of the server, for example http://127.0.0.1:8000. */
  get url(): string {
    const { address, port, family } = this.address;
    return `http://${family === 'IPv6' ? `[${address}]` : address}:${port}`;
  }

  private listen(): Promise<void> {
    const { address, port } = this.config;
    return new Promise((resolvePromise, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        if (err.code === 'EADDRINUSE') {
          reject(new StartError(`port ${port} on ${address} is already in use: stop the other process or set another port (--port)`, { cause: err }));
        } else if (err.code === 'EACCES') {
          reject(new StartError(`no permission to listen on ${address}:${port}: use a port above 1023 or run with the needed privileges`, { cause: err }));
        } else reject(new StartError(`cannot listen on ${address}:${port}: ${err.message}`, { cause: err }));
      };
      this.http.once('error', onError);
      this.http.listen(port, address, () => {
        this.http.off('error', onError);
        this.logger.info({ url: this.url, version: this.node.version, name: this.node.name }, 'rotor listening');
        resolvePromise();
      });
    });
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    const { path, query } = splitUrl(req.url);
    if (path === '/api' || path.startsWith('/api/')) {
      this.api.handle(req, res, path, query);
      return;
    }
    if (path === '/health') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 2 }).end('{}');
      return;
    }
    if (handlePage(req, res, path, this.node)) return;
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
  }

  /**
   * Shuts down gracefully: stops accepting connections, lets the commands in flight
   * finish and commit, closes the databases and the worker pool.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.logger.info('shutting down');
    clearInterval(this.sweepTimer);
    this.api.beginShutdown();
    const stopped = new Promise<void>((done) => this.http.close(() => done()));
    this.http.closeIdleConnections();
    this.websocket.closeAll(Disconnects.shutdown);
    await this.scheduler.close();
    this.wheel.close();
    if (this.config.history_storage === 'sqlite') releaseDataDir(this.dataDir);
    // Keep-alive connections with a request in progress get their response before they close.
    const timeout = setTimeout(() => this.http.closeAllConnections(), this.config.shutdown_timeout);
    await stopped;
    clearTimeout(timeout);
    this.logger.info('shutdown complete');
  }
}
