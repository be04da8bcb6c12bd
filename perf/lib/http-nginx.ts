/**
 * Runs the repository's nginx.conf in a separate prefix folder, on ports chosen at run
 * time, for the HTTP benchmark and the nginx test.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canConnect, startChild, waitUntil, type Child } from './http-process.js';

/** The repository root: this file is perf/lib/http-nginx.ts. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The two lines of nginx.conf that carry ports; the run-time copy changes only these. */
const LISTEN_LINE = /^(\s*listen\s+127\.0\.0\.1:)8080(;)/m;
const UPSTREAM_LINE = /^(\s*server\s+127\.0\.0\.1:)8000(;)/m;

export interface NginxPrefixOptions {
  /** Folder to use as the nginx prefix; created when missing. */
  readonly dir: string;
  /** Port nginx listens on, on 127.0.0.1. */
  readonly listenPort: number;
  /** Port of the Rotor server nginx proxies to, on 127.0.0.1. */
  readonly upstreamPort: number;
  /** Folder nginx serves /static/ from, as <publicDir>/static/. Default: the repository's public/. */
  readonly publicDir?: string;
}

/**
 * Builds a prefix folder for one nginx run: a copy of nginx.conf with the two ports
 * replaced, a `public` symbolic link to the served folder, and an empty `run/` folder.
 * Folders get mode 755 because nginx workers started by root run as nobody and must
 * reach the files through them.
 */
export function prepareNginxPrefix(options: NginxPrefixOptions): string {
  const { dir } = options;
  const source = readFileSync(join(REPO_ROOT, 'nginx.conf'), 'utf8');
  for (const [line, what] of [
    [LISTEN_LINE, 'listen 127.0.0.1:8080;'],
    [UPSTREAM_LINE, 'server 127.0.0.1:8000;'],
  ] as const) {
    const matches = source.match(new RegExp(line.source, 'gm'))?.length ?? 0;
    if (matches !== 1) throw new Error(`nginx.conf must contain the line "${what}" exactly once to set its port; found it ${matches} times`);
  }
  const config = source.replace(LISTEN_LINE, `$1${options.listenPort}$2`).replace(UPSTREAM_LINE, `$1${options.upstreamPort}$2`);

  mkdirSync(join(dir, 'run'), { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(join(dir, 'run'), 0o755);
  writeFileSync(join(dir, 'nginx.conf'), config);
  rmSync(join(dir, 'public'), { force: true });
  symlinkSync(options.publicDir ?? join(REPO_ROOT, 'public'), join(dir, 'public'));
  return dir;
}

/** Runs `nginx -t` on a prefix folder; `output` contains what nginx printed. */
export function testNginxConfig(nginx: string, prefix: string): { ok: boolean; output: string } {
  const result = spawnSync(nginx, ['-t', '-p', prefix, '-c', 'nginx.conf'], { encoding: 'utf8' });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`;
  return { ok: result.status === 0, output };
}

/**
 * Starts nginx in the foreground (`daemon off`) on a prepared prefix and resolves once it
 * accepts connections on `listenPort`. The returned child's `stop` ends the master and
 * its workers.
 */
export async function startNginx(nginx: string, prefix: string, listenPort: number): Promise<Child> {
  const child = await startChild('nginx', nginx, ['-p', prefix, '-c', 'nginx.conf', '-g', 'daemon off;']);
  try {
    await waitUntil(`nginx to listen on 127.0.0.1:${listenPort}`, () => canConnect(listenPort), 10_000, child);
  } catch (err) {
    await child.stop();
    const errorLog = readTail(join(prefix, 'run', 'error.log'));
    throw new Error(`${(err as Error).message}${errorLog ? `\nrun/error.log:\n${errorLog}` : ''}`);
  }
  return child;
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-4096);
  } catch {
    return '';
  }
}
