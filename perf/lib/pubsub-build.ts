/**
 * Compiles the child-process programs of the pub/sub benchmarks (load client with its
 * publisher, reference ws server, socket.io server) to plain JavaScript in the run folder.
 * They then run on `node` alone, as Rotor runs from dist/, so no TypeScript loader thread
 * or esbuild process counts in a server's CPU time and memory.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The perf/ folder of the repository; this file is perf/lib/pubsub-build.ts. */
export const PERF_DIR = fileURLToPath(new URL('../', import.meta.url));
export const REPO_DIR = fileURLToPath(new URL('../../', import.meta.url));

/** Child programs and the files they import, relative to perf/. */
const CHILD_SOURCES = [
  'lib/pubsub-protocols.ts',
  'lib/pubsub-ipc.ts',
  'lib/pubsub-client.ts',
  'lib/pubsub-publisher.ts',
  'pubsub-reference-ws.ts',
  'pubsub-socketio-server.ts',
];

/** Paths of the compiled child programs. */
export interface ChildScripts {
  readonly client: string;
  readonly referenceWs: string;
  readonly socketio: string;
}

/**
 * Transpiles the child sources into `<runDir>/js/` with the layout of perf/, so that their
 * relative imports resolve, and `ws` and `socket.io` resolve from the repository's
 * node_modules. Type errors are left to `npm run typecheck`.
 */
export function buildChildScripts(runDir: string): ChildScripts {
  const outDir = join(runDir, 'js');
  rmSync(outDir, { recursive: true, force: true });
  for (const source of CHILD_SOURCES) {
    const text = readFileSync(join(PERF_DIR, source), 'utf8');
    const output = ts.transpileModule(text, {
      fileName: source,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
    });
    const target = join(outDir, source.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, output.outputText);
  }
  writeFileSync(join(outDir, 'package.json'), '{"type":"module"}\n');
  return {
    client: join(outDir, 'lib', 'pubsub-client.js'),
    referenceWs: join(outDir, 'pubsub-reference-ws.js'),
    socketio: join(outDir, 'pubsub-socketio-server.js'),
  };
}

/**
 * Creates a fresh folder for one script run under perf/run/ (ignored by git), named after
 * the script and the start time, readable by the unprivileged nginx workers.
 */
export function createRunFolder(script: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
  const dir = join(PERF_DIR, 'run', `${script}-${stamp}-${process.pid}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}
