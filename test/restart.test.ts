/**
 * The `rotor` command as a child process: restarts on the same data directory, crash
 * durability, start-up failures and command-line handling.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { API_KEY, tempDir, waitFor } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'src', 'cli.ts');
// Resolved here because the child runs in a temporary folder where 'tsx' is not installed.
const TSX_LOADER = import.meta.resolve('tsx');
/** Time a child gets to start: tsx compiles the sources and the worker pool starts. */
const START_TIMEOUT_MS = 30_000;

const HISTORY_CONFIG = { api_key: API_KEY, history_size: 1000, history_ttl: '300s', actor_workers: 2 };

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A running or finished `rotor` child process with its collected output. */
class RotorProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  private stdout = '';
  private stderr = '';

  constructor(args: string[], cwd: string, env: Record<string, string> = {}) {
    // ROTOR_* variables of the outer environment must not change what a test configures.
    const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('ROTOR_')));
    this.child = spawn(process.execPath, ['--import', TSX_LOADER, CLI, ...args], {
      cwd,
      env: { ...base, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(this);
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        running.delete(this);
        resolve(this.exit);
      });
    });
  }

  /** stdout and stderr together, for failure messages and text checks. */
  get output(): string {
    return `${this.stdout}\n${this.stderr}`;
  }

  get errorOutput(): string {
    return this.stderr;
  }

  /** The complete JSON log lines written to stdout so far. */
  get logLines(): LogLine[] {
    const lines: LogLine[] = [];
    for (const line of this.stdout.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // The last line may still be incomplete.
      }
    }
    return lines;
  }

  /** Waits for the "rotor listening" log line and returns its URL. Fails if the process exits first. */
  async listening(): Promise<string> {
    const line = await waitFor(
      () => {
        const found = this.logLines.find((entry) => entry.msg === 'rotor listening');
        if (found !== undefined) return found;
        if (this.exit !== undefined) throw new Error(`rotor exited with ${JSON.stringify(this.exit)} before listening:\n${this.output}`);
        return undefined;
      },
      START_TIMEOUT_MS,
      'the "rotor listening" log line',
    );
    assert.equal(typeof line.url, 'string');
    return line.url as string;
  }

  /** Sends one signal and waits for the process to exit. */
  async stop(signal: NodeJS.Signals): Promise<Exit> {
    this.child.kill(signal);
    return this.exited;
  }
}

const running = new Set<RotorProcess>();
const dirs: Array<{ remove(): void }> = [];
after(async () => {
  // Only a failed test leaves a child behind. It is killed by its own pid.
  for (const rotor of running) rotor.child.kill('SIGKILL');
  await Promise.all([...running].map((rotor) => rotor.exited));
  for (const dir of dirs) dir.remove();
});

function workDir(): string {
  const dir = tempDir('rotor-restart-');
  dirs.push(dir);
  return dir.path;
}

function writeConfig(dir: string, options: Record<string, unknown>, name = 'config.json'): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(options));
  return path;
}

async function startRotor(dir: string, args: string[], env: Record<string, string> = {}): Promise<{ rotor: RotorProcess; url: string }> {
  const rotor = new RotorProcess(args, dir, env);
  return { rotor, url: await rotor.listening() };
}

async function api(url: string, method: string, params: unknown, key = API_KEY): Promise<{ result?: any; error?: { code: number } }> {
  const response = await fetch(`${url}/api/${method}`, {
    method: 'POST',
    headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
    body: JSON.stringify(params),
  });
  assert.equal(response.status, 200, `${method} HTTP status`);
  return (await response.json()) as { result?: any; error?: { code: number } };
}

/** Returns a port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = await listenOnFreePort();
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function listenOnFreePort(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe('restart on the same data_dir', () => {
  test('graceful restart keeps history', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, data_dir: 'data' });

    const first = await startRotor(dir, ['--config', config, '--port', '0']);
    const positions = [];
    for (let n = 1; n <= 5; n++) positions.push((await api(first.url, 'publish', { channel: 'kept', data: { n } })).result);
    const epoch = positions[0].epoch as string;
    assert.deepEqual(
      positions.map((position) => position.offset),
      range(1, 5),
    );
    const stopped = await first.rotor.stop('SIGTERM');
    assert.equal(stopped.code, 0);
    assert.equal(stopped.signal, null);
    assert.ok(first.rotor.logLines.some((line) => line.msg === 'shutdown complete'));

    const second = await startRotor(dir, ['--config', config, '--port', '0']);
    const history = await api(second.url, 'history', { channel: 'kept', limit: -1 });
    assert.equal(history.result.epoch, epoch);
    assert.equal(history.result.offset, 5);
    assert.deepEqual(
      history.result.publications.map((publication: { data: unknown }) => publication.data),
      range(1, 5).map((n) => ({ n })),
    );
    const next = await api(second.url, 'publish', { channel: 'kept', data: { n: 6 } });
    assert.equal(next.result.offset, 6);
    assert.equal(next.result.epoch, epoch);
    assert.equal((await second.rotor.stop('SIGTERM')).code, 0);
  });

  test('SIGKILL keeps answered publishes', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, data_dir: 'data' });

    const first = await startRotor(dir, ['--config', config, '--port', '0']);
    const answered = new Map<string, number>();
    for (let n = 1; n <= 10; n++) {
      const reply = await api(first.url, 'publish', { channel: 'crash', data: { n } });
      answered.set(`crash:${n}`, reply.result.offset);
    }
    // Concurrent publishes across channels go out as batches on several shards.
    const channels = ['crash', 'crash-a', 'crash-b', 'crash-c'];
    const concurrent = await Promise.all(
      range(11, 40).map(async (n) => {
        const channel = channels[n % channels.length]!;
        const reply = await api(first.url, 'publish', { channel, data: { n } });
        return { key: `${channel}:${n}`, offset: reply.result.offset as number, epoch: reply.result.epoch as string };
      }),
    );
    first.rotor.child.kill('SIGKILL');
    const killed = await first.rotor.exited;
    assert.equal(killed.signal, 'SIGKILL');
    for (const { key, offset } of concurrent) answered.set(key, offset);

    const second = await startRotor(dir, ['--config', config, '--port', '0']);
    for (const channel of channels) {
      const history = await api(second.url, 'history', { channel, limit: -1 });
      const stored = new Map<string, number>(
        history.result.publications.map((publication: { data: { n: number }; offset: number }) => [`${channel}:${publication.data.n}`, publication.offset]),
      );
      const expected = [...answered].filter(([key]) => key.startsWith(`${channel}:`));
      assert.equal(stored.size, expected.length, channel);
      for (const [key, offset] of expected) assert.equal(stored.get(key), offset, key);
      const epochs = concurrent.filter((entry) => entry.key.startsWith(`${channel}:`)).map((entry) => entry.epoch);
      for (const epoch of epochs) assert.equal(history.result.epoch, epoch, channel);
    }
    assert.equal((await second.rotor.stop('SIGTERM')).code, 0);
  });

  test('SIGKILL after single publish', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, data_dir: 'data' });
    const first = await startRotor(dir, ['--config', config, '--port', '0']);
    const reply = await api(first.url, 'publish', { channel: 'last', data: { n: 1 } });
    first.rotor.child.kill('SIGKILL');
    await first.rotor.exited;

    const second = await startRotor(dir, ['--config', config, '--port', '0']);
    const history = await api(second.url, 'history', { channel: 'last', limit: -1 });
    assert.equal(history.result.offset, reply.result.offset);
    assert.equal(history.result.epoch, reply.result.epoch);
    assert.equal(history.result.publications.length, 1);
    assert.equal((await second.rotor.stop('SIGTERM')).code, 0);
  });
});

describe('start-up failures', () => {
  test('port in use exits 1', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, data_dir: 'data' });
    const blocker = await listenOnFreePort();
    const { port } = blocker.address() as AddressInfo;
    try {
      const rotor = new RotorProcess(['--config', config, '--port', String(port)], dir);
      const exit = await rotor.exited;
      assert.equal(exit.code, 1, rotor.output);
      const fatal = rotor.logLines.find((line) => line.level === 60);
      assert.ok(fatal !== undefined, rotor.output);
      assert.match(fatal.msg, new RegExp(`\\b${port}\\b`));
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test('shared data_dir exits 1', { timeout: 30_000 }, async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, data_dir: 'data' });
    const { rotor: first } = await startRotor(dir, ['--config', config, '--port', '0']);
    const second = new RotorProcess(['--config', config, '--port', '0'], dir);
    const exit = await second.exited;
    assert.equal(exit.code, 1, second.output);
    const fatal = second.logLines.find((line) => line.level === 60);
    assert.ok(fatal !== undefined, second.output);
    assert.ok(fatal.msg.includes(join(dir, 'data')), fatal.msg);
    assert.ok(fatal.msg.includes(`pid ${first.child.pid}`), fatal.msg);
    assert.deepEqual(await first.stop('SIGTERM'), { code: 0, signal: null });
  });

  test('signal right after listening is graceful', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, data_dir: 'data' });
    // The handlers must be in place when the server announces itself; repeated because
    // the window before them was narrow.
    for (let attempt = 0; attempt < 3; attempt++) {
      const { rotor } = await startRotor(dir, ['--config', config, '--port', '0']);
      const exit = await rotor.stop('SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null }, rotor.output);
      assert.ok(rotor.logLines.some((line) => line.msg === 'shutdown complete'), rotor.output);
    }
  });

  test('data_dir under a file exits 1', async () => {
    const dir = workDir();
    const file = join(dir, 'file');
    writeFileSync(file, 'not a folder\n');
    const dataDir = join(file, 'data');
    const config = writeConfig(dir, { ...HISTORY_CONFIG, data_dir: dataDir });
    const rotor = new RotorProcess(['--config', config, '--port', '0'], dir);
    const exit = await rotor.exited;
    assert.equal(exit.code, 1, rotor.output);
    const fatal = rotor.logLines.find((line) => line.level === 60);
    assert.ok(fatal !== undefined, rotor.output);
    assert.ok(fatal.msg.includes(dataDir), fatal.msg);
    assert.equal(rotor.logLines.some((line) => line.msg === 'rotor listening'), false);
  });

  test('read-only data_dir exits 1', { skip: process.getuid?.() === 0 ? 'root can write to read-only folders' : false }, async () => {
    const dir = workDir();
    const dataDir = join(dir, 'readonly');
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o500);
    try {
      const config = writeConfig(dir, { ...HISTORY_CONFIG, data_dir: dataDir });
      const rotor = new RotorProcess(['--config', config, '--port', '0'], dir);
      const exit = await rotor.exited;
      assert.equal(exit.code, 1, rotor.output);
      const fatal = rotor.logLines.find((line) => line.level === 60);
      assert.ok(fatal !== undefined, rotor.output);
      assert.ok(fatal.msg.includes(dataDir), fatal.msg);
    } finally {
      chmodSync(dataDir, 0o700);
    }
  });

  test('invalid config exits 1', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, history_size: 'ten' });
    const rotor = new RotorProcess(['--config', config, '--port', '0'], dir);
    const exit = await rotor.exited;
    assert.equal(exit.code, 1, rotor.output);
    assert.ok(rotor.errorOutput.includes('"history_size"'), rotor.output);
    assert.equal(existsSync(join(dir, 'data')), false);
  });
});

describe('config commands', () => {
  test('checkconfig rejects bad option', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { api_key: API_KEY, history_ttl: 300 });
    const rotor = new RotorProcess(['checkconfig', '--config', config], dir);
    const exit = await rotor.exited;
    assert.notEqual(exit.code, 0);
    assert.ok(rotor.errorOutput.includes('"history_ttl"'), rotor.output);
  });

  test('checkconfig accepts valid config', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, frobnicate: true });
    const rotor = new RotorProcess(['checkconfig', '--config', config], dir);
    const exit = await rotor.exited;
    assert.equal(exit.code, 0, rotor.output);
    assert.ok(rotor.errorOutput.includes('"frobnicate"'), rotor.output);
  });

  test('genconfig output passes checkconfig', async () => {
    const dir = workDir();
    const generated = new RotorProcess(['genconfig', '-c', 'generated.json'], dir);
    assert.equal((await generated.exited).code, 0, generated.output);
    assert.ok(existsSync(join(dir, 'generated.json')));

    const checked = new RotorProcess(['checkconfig', '--config', 'generated.json'], dir);
    assert.equal((await checked.exited).code, 0, checked.output);
    assert.equal(checked.errorOutput, '');

    const again = new RotorProcess(['genconfig', '-c', 'generated.json'], dir);
    assert.equal((await again.exited).code, 1, again.output);
  });

  test('unknown option warns and starts', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, data_dir: 'data', frobnicate: true });
    const { rotor, url } = await startRotor(dir, ['--config', config, '--port', '0']);
    const warning = rotor.logLines.find((line) => line.level === 40 && String(line.detail).includes('"frobnicate"'));
    assert.ok(warning !== undefined, rotor.output);
    const reply = await api(url, 'publish', { channel: 'warned', data: {} });
    assert.equal(reply.result.offset, 1);
    assert.equal((await rotor.stop('SIGTERM')).code, 0);
  });
});

describe('command-line flags', () => {
  test('flags override config file', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, port: 0, data_dir: 'file-data', log_level: 'error' });
    const port = await freePort();
    const { rotor, url } = await startRotor(dir, ['--config', config, '--port', String(port), '--data_dir', 'flag-data', '--log_level', 'debug']);

    assert.equal(new URL(url).port, String(port));
    assert.ok(existsSync(join(dir, 'flag-data', 'rotor.json')));
    assert.equal(existsSync(join(dir, 'file-data')), false);
    await api(url, 'publish', { channel: 'flags', data: {} });
    // Debug lines appear only because --log_level overrides the file's "error".
    await waitFor(() => rotor.logLines.some((line) => line.level === 20), 10_000, 'a debug log line');
    assert.equal((await rotor.stop('SIGTERM')).code, 0);
  });

  test('flag with equals sign', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, log_level: 'info' });
    const { rotor } = await startRotor(dir, [`--config=${config}`, '--port=0', '--data_dir=eq-data']);
    assert.ok(existsSync(join(dir, 'eq-data', 'rotor.json')));
    assert.equal((await rotor.stop('SIGTERM')).code, 0);
  });

  test('env sets api_key', async () => {
    const dir = workDir();
    const config = writeConfig(dir, { ...HISTORY_CONFIG, data_dir: 'data' });
    const { rotor, url } = await startRotor(dir, ['--config', config, '--port', '0'], { ROTOR_API_KEY: 'from-env' });
    const fromEnv = await api(url, 'publish', { channel: 'env', data: {} }, 'from-env');
    assert.equal(fromEnv.result.offset, 1);
    const denied = await fetch(`${url}/api/publish`, { method: 'POST', headers: { 'X-API-Key': API_KEY }, body: '{"channel":"env","data":{}}' });
    assert.equal(denied.status, 401);
    assert.equal((await rotor.stop('SIGTERM')).code, 0);
  });

  test('unknown flag exits 1', async () => {
    const dir = workDir();
    const rotor = new RotorProcess(['--prot', '9000'], dir);
    const exit = await rotor.exited;
    assert.equal(exit.code, 1);
    assert.ok(rotor.errorOutput.includes('"prot"'), rotor.output);
  });
});
