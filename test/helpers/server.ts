import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { RotorServer } from '../../src/server.js';

export const API_KEY = 'test-api-key';

export interface TestServer {
  readonly server: RotorServer;
  readonly url: string;
  readonly dataDir: string;
  /** Calls `POST /api/<method>` with the test key and returns the parsed body. */
  api(method: string, params?: unknown): Promise<{ result?: any; error?: { code: number; message: string } }>;
  close(): Promise<void>;
}

/** Creates a temporary folder that `remove` deletes. */
export function tempDir(prefix = 'rotor-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Starts a server in this process on a free loopback port with its own data directory. */
export async function startServer(overrides: Record<string, unknown> = {}, dataDir?: string): Promise<TestServer> {
  const dir = dataDir === undefined ? tempDir() : undefined;
  const { config } = loadConfig({
    overrides: { port: 0, address: '127.0.0.1', api_key: API_KEY, log_level: 'none', actor_workers: 2, data_dir: dataDir ?? dir!.path, ...overrides },
  });
  const server = await RotorServer.start(config, createLogger(config.log_level));
  const url = server.url;
  return {
    server,
    url,
    dataDir: config.data_dir,
    async api(method, params = {}) {
      const response = await fetch(`${url}/api/${method}`, {
        method: 'POST',
        headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json' },
        body: JSON.stringify(params),
      });
      return (await response.json()) as any;
    },
    async close() {
      await server.close();
      dir?.remove();
    },
  };
}

/** Polls `check` until it returns a value other than undefined or false, or fails after `timeout` ms. */
export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, timeout = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
