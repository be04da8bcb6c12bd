/** Builds Rotor when its compiled output is missing or older than the sources, and runs it as a child process. */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './http-nginx.js';
import { startChild, waitUntil, type Child } from './http-process.js';

const CLI = join(REPO_ROOT, 'dist', 'cli.js');

/** Returns the newest modification time, in milliseconds, of the files under a folder. */
function newestMtime(folder: string): number {
  let newest = 0;
  for (const entry of readdirSync(folder, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/**
 * Runs `npm run build` when dist/cli.js or dist/web/pages.js is missing or older than a
 * file under src/ or package.json. tsc rewrites every output file on each build, so the
 * time of dist/cli.js is the time of the last build. Returns whether it built.
 */
export function ensureBuilt(log: (line: string) => void): boolean {
  const pages = join(REPO_ROOT, 'dist', 'web', 'pages.js');
  const reason = !existsSync(CLI) || !existsSync(pages)
    ? 'dist/ is missing'
    : Math.max(newestMtime(join(REPO_ROOT, 'src')), statSync(join(REPO_ROOT, 'package.json')).mtimeMs) > statSync(CLI).mtimeMs
      ? 'dist/ is older than src/'
      : undefined;
  if (reason === undefined) return false;
  log(`${reason}: running npm run build`);
  const result = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error(`npm run build failed (${result.status ?? result.signal ?? result.error?.message}); fix the compile errors above and run again`);
  return true;
}

/**
 * Starts the compiled Rotor on 127.0.0.1:`port` with in-memory history and resolves once
 * GET /health returns 200.
 */
export async function startRotor(port: number): Promise<Child> {
  const args = [CLI, '--port', String(port), '--address', '127.0.0.1', '--log_level', 'warn', '--history_storage', 'memory', '--name', 'perf-http'];
  const child = await startChild('rotor', process.execPath, args, { cwd: REPO_ROOT });
  await waitForHealth(child, '127.0.0.1', port);
  return child;
}

/** Waits until a Rotor child returns 200 for GET /health; stops it and throws after 20 s. */
export async function waitForHealth(child: Child, host: string, port: number): Promise<void> {
  const healthy = async (): Promise<boolean> => {
    try {
      const response = await fetch(`http://${host}:${port}/health`);
      await response.arrayBuffer();
      return response.status === 200;
    } catch {
      return false;
    }
  };
  try {
    await waitUntil(`Rotor to answer GET /health on port ${port}`, healthy, 20_000, child);
  } catch (err) {
    await child.stop();
    throw err;
  }
}
