/**
 * Starts the servers the pub/sub benchmarks compare, each as a child process on a free
 * loopback port: Rotor (from dist/), the reference `ws` broadcast server, the socket.io
 * server, and nginx with the nchan module (configured in the run folder).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../common.js';
import { canConnect, findTool, freePort, startChild, waitUntil, type Child } from './http-process.js';
import { ensureBuilt, waitForHealth } from './http-rotor.js';
import { REPO_DIR, type ChildScripts } from './pubsub-build.js';
import { CHANNEL, type ServerKind, type Target } from './pubsub-protocols.js';
import { openFileLimits, trackChild } from './pubsub-system.js';

/** A running server under test. */
export interface ServerUnderTest {
  readonly target: Target;
  /** Root of the process tree whose CPU time and memory are measured. */
  readonly pid: number;
  /** Program, version and the settings that matter, for the results. */
  readonly description: string;
  /** The last output of the server, for error messages. */
  output(): string;
  /** Stops the server and its child processes and removes its temporary files. */
  stop(): Promise<void>;
}

export const ROTOR_API_KEY = 'perf-pubsub-key';
const LOOPBACK = '127.0.0.1';
/** The Debian packages that provide nginx and its nchan module. */
export const NCHAN_INSTALL_HINT = 'apt-get install -y nginx libnginx-mod-nchan';
const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(REPO_DIR, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function wrap(kind: ServerKind, label: string, port: number, child: Child, description: string, cleanup?: () => void): ServerUnderTest {
  const untrack = trackChild(() => child.stop());
  return {
    target: { kind, label, host: LOOPBACK, port, ...(kind === 'rotor' ? { apiKey: ROTOR_API_KEY } : {}) },
    pid: child.pid,
    description,
    output: () => child.output(),
    stop: async () => {
      untrack();
      // Rotor closes every connection and its worker pool on SIGTERM; give it time to do so.
      await child.stop('SIGTERM', 15_000);
      cleanup?.();
    },
  };
}

async function waitListening(child: Child, port: number, serverName: string): Promise<void> {
  try {
    await waitUntil(`${serverName} to listen on ${LOOPBACK}:${port}`, () => canConnect(port), 20_000, child);
  } catch (err) {
    await child.stop();
    throw err;
  }
}

export interface RotorOptions {
  /** Sets `force_recovery`, so that every subscription can be recovered. */
  readonly recovery?: boolean;
  /** Folder for V8 CPU profiles (`node --cpu-prof`) of the server; none when undefined. */
  readonly cpuProfileDir?: string;
  readonly log?: (line: string) => void;
}

/**
 * Builds Rotor when dist/ is out of date and starts `node dist/cli.js` with history on
 * (SQLite in a temporary folder, 1,000 publications for 300 s) and insecure clients, so
 * that clients connect without a token and subscribe to any channel.
 */
export async function startRotor(options: RotorOptions = {}): Promise<ServerUnderTest> {
  ensureBuilt(options.log ?? ((line) => console.error(line)));
  const port = await freePort();
  const data = tempDir('rotor-pubsub-');
  const settings = ['--history_size', '1000', '--history_ttl', '300s', ...(options.recovery === true ? ['--force_recovery', 'true'] : [])];
  const args = [
    ...(options.cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir]),
    join(REPO_DIR, 'dist', 'cli.js'),
    '--port', String(port),
    '--address', LOOPBACK,
    '--api_key', ROTOR_API_KEY,
    '--client_insecure', 'true',
    '--log_level', 'error',
    '--data_dir', data.path,
    ...settings,
  ];
  const child = await startChild('rotor', process.execPath, args, { cwd: REPO_DIR });
  try {
    await waitForHealth(child, LOOPBACK, port);
  } catch (err) {
    data.remove();
    throw err;
  }
  const version = (JSON.parse(readFileSync(join(REPO_DIR, 'package.json'), 'utf8')) as { version: string }).version;
  return wrap('rotor', 'Rotor', port, child, `Rotor ${version} (node dist/cli.js ${settings.join(' ')}, SQLite history)`, data.remove);
}

/** Starts the reference `ws` broadcast server (perf/pubsub-reference-ws.ts). */
export async function startReferenceWs(scripts: ChildScripts): Promise<ServerUnderTest> {
  const port = await freePort();
  const child = await startChild('ws-reference', process.execPath, [scripts.referenceWs, '--port', String(port)]);
  await waitListening(child, port, 'the reference ws server');
  return wrap('ws-reference', 'ws reference', port, child, `plain ws ${packageVersion('ws')} broadcast server (perf/pubsub-reference-ws.ts)`);
}

/** Starts the socket.io server (perf/pubsub-socketio-server.ts). */
export async function startSocketIo(scripts: ChildScripts): Promise<ServerUnderTest> {
  const port = await freePort();
  const child = await startChild('socket.io', process.execPath, [scripts.socketio, '--port', String(port)]);
  await waitListening(child, port, 'the socket.io server');
  return wrap('socketio', 'socket.io', port, child, `socket.io ${packageVersion('socket.io')} with connection state recovery (perf/pubsub-socketio-server.ts)`);
}

/** Path of nginx and the versions of nginx and nchan, or the reason they cannot be used. */
export type NchanInstall = { readonly nginx: string; readonly version: string } | { readonly missing: string };

/** Looks for nginx and the nchan dynamic module of Debian's libnginx-mod-nchan. */
export function findNchan(): NchanInstall {
  const nginx = findTool('nginx');
  if (nginx === undefined) return { missing: `nginx is not installed; to compare with nchan run: ${NCHAN_INSTALL_HINT}` };
  if (!existsSync(NCHAN_MODULE)) return { missing: `the nchan module (${NCHAN_MODULE}) is not installed; to compare with nchan run: ${NCHAN_INSTALL_HINT}` };
  const result = spawnSync(nginx, ['-v'], { encoding: 'utf8' });
  const nginxVersion = /nginx\/(\S+)/.exec(`${result.stderr}${result.stdout}`)?.[1] ?? 'unknown';
  const module = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'libnginx-mod-nchan'], { encoding: 'utf8' });
  const moduleVersion = module.status === 0 && module.stdout !== '' ? module.stdout : 'version unknown';
  return { nginx, version: `nginx ${nginxVersion} with nchan (libnginx-mod-nchan ${moduleVersion})` };
}

/**
 * Writes an nginx config for one worker process with the nchan module. WebSocket
 * subscribers connect at /sub/bench, start at the newest message and get a ping every
 * 25 s. Publishers POST to /pub/bench. The message buffer is as large and as long as
 * Rotor's history (1,000 messages, 300 s), and a subscriber resumes from it with
 * `last_event_id`.
 */
function writeNchanConfig(prefix: string, port: number): void {
  const { hard } = openFileLimits();
  // An unprivileged worker may raise its soft limit up to the hard one, not beyond.
  const files = Number.isFinite(hard) ? Math.min(hard, 1_048_576) : 65_536;
  const config = `# Generated by perf/lib/pubsub-servers.ts for one benchmark run.
load_module ${NCHAN_MODULE};
worker_processes 1;
worker_rlimit_nofile ${files};
error_log run/error.log warn;
pid run/nginx.pid;
events {
  worker_connections ${files - 64};
}
http {
  access_log off;
  client_body_temp_path run/client_body;
  proxy_temp_path run/proxy;
  fastcgi_temp_path run/fastcgi;
  uwsgi_temp_path run/uwsgi;
  scgi_temp_path run/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  nchan_shared_memory_size 256M;
  server {
    listen ${LOOPBACK}:${port};
    location = /sub/${CHANNEL} {
      nchan_subscriber websocket;
      nchan_channel_id ${CHANNEL};
      nchan_subscriber_first_message newest;
      nchan_websocket_ping_interval 25;
    }
    location = /pub/${CHANNEL} {
      nchan_publisher http;
      nchan_channel_id ${CHANNEL};
      nchan_message_buffer_length 1000;
      nchan_message_timeout 300s;
    }
  }
}
`;
  mkdirSync(join(prefix, 'run'), { recursive: true });
  chmodSync(prefix, 0o755);
  chmodSync(join(prefix, 'run'), 0o755);
  writeFileSync(join(prefix, 'nginx.conf'), config);
}

/** Starts nginx with nchan in `<runDir>/nchan-<n>/`; fails with nginx's own message when the config is rejected. */
export async function startNchan(install: { nginx: string; version: string }, runDir: string): Promise<ServerUnderTest> {
  const port = await freePort();
  const prefix = join(runDir, `nchan-${port}`);
  writeNchanConfig(prefix, port);
  const check = spawnSync(install.nginx, ['-t', '-p', prefix, '-c', 'nginx.conf'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx rejected the generated nchan config ${join(prefix, 'nginx.conf')}:\n${check.stderr}${check.stdout}`);
  const child = await startChild('nginx', install.nginx, ['-p', prefix, '-c', 'nginx.conf', '-g', 'daemon off;']);
  await waitListening(child, port, 'nginx with nchan');
  return wrap('nchan', 'nchan', port, child, `${install.version}, 1 worker process`);
}
