/**
 * Child processes, tools and ports for the HTTP benchmark and the nginx test: finding an
 * installed tool, picking free loopback ports, starting a child in its own process group
 * and stopping that whole group.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { connect, createServer } from 'node:net';
import { delimiter, join } from 'node:path';

/** The Debian command that installs every tool the HTTP benchmark uses. */
export const INSTALL_HINT = 'apt-get install -y nginx apache2-utils wrk';

/**
 * Returns the path of an executable found on PATH or in the sbin folders (nginx lives in
 * /usr/sbin, which a normal user's PATH often lacks), or undefined when there is none.
 */
export function findTool(name: string): string | undefined {
  const folders = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const folder of folders) {
    if (folder === '') continue;
    const candidate = join(folder, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this folder.
    }
  }
  return undefined;
}

/** Resolves true when nothing listens on the loopback port and it can be bound. */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Returns a loopback port that was free a moment ago; another process may still take it. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves true when a TCP connection to the loopback port succeeds. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A child process running in its own process group. */
export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Resolves with the exit code (or the signal name) when the process exits. */
  readonly exited: Promise<number | string>;
  /** The last 16 KB the process wrote to stdout and stderr, for error messages. */
  output(): string;
  /**
   * Sends `signal`, waits up to `timeoutMs` for the process to exit, then kills whatever
   * is left in its process group with SIGKILL. Safe to call more than once.
   */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

const OUTPUT_LIMIT = 16 * 1024;

/** Children started by startChild that have not exited yet, newest last. */
const running = new Set<Child>();

/** Stops every child still running, newest first, including those still starting up. */
export async function stopAllChildren(): Promise<void> {
  for (const child of [...running].reverse()) await child.stop();
}

/**
 * Starts a program in a new process group, so that `stop` also reaches the processes it
 * starts itself (nginx workers). Throws when the program cannot be started.
 */
export async function startChild(name: string, command: string, args: readonly string[], options: { cwd?: string } = {}): Promise<Child> {
  const child: ChildProcess = spawn(command, args, { cwd: options.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const append = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);

  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new Error(`cannot start ${name} (${command}): ${err.message}`)));
  });
  const pid = child.pid!;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  let exitCode: number | string | undefined;
  void exited.then((code) => (exitCode = code));

  let stopping: Promise<void> | undefined;
  const stop = (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> => {
    stopping ??= (async () => {
      if (exitCode === undefined) {
        try {
          process.kill(pid, signal);
        } catch {
          // Already gone.
        }
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
        await Promise.race([exited, timedOut]);
        clearTimeout(timer);
      }
      killGroup(pid);
      if (exitCode === undefined) await exited;
    })();
    return stopping;
  };
  const handle: Child = { name, pid, exited, output: () => output, stop };
  running.add(handle);
  void exited.then(() => running.delete(handle));
  return handle;
}

/** Kills every process left in the group with SIGKILL; ESRCH means the group is empty. */
function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/**
 * Polls `check` every 25 ms until it resolves true. Fails when `deadlineMs` passes or when
 * `child` exits first, with the child's last output in the message.
 */
export async function waitUntil(what: string, check: () => Promise<boolean>, deadlineMs: number, child?: Child): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let exitCode: number | string | undefined;
  void child?.exited.then((code) => (exitCode = code));
  for (;;) {
    if (await check()) return;
    if (exitCode !== undefined) throw new Error(`${child!.name} exited (${exitCode}) before ${what}:\n${child!.output()}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${child ? `; ${child.name} output:\n${child.output()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
