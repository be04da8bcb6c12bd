/**
 * Summarizes V8 CPU profiles (the .cpuprofile files `node --cpu-prof` writes) by self
 * time per function, to show where a server spends its CPU during a benchmark.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  /** Microseconds between a sample and the one before it. */
  readonly timeDeltas: readonly number[];
}

export interface FunctionSelfTime {
  /** Function name with its file and line, for example "flush src/transport/session.ts:132". */
  readonly name: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) sampled time, in percent. */
  readonly percent: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly sampledMs: number;
  /** Sampled time outside "(idle)", in milliseconds. */
  readonly busyMs: number;
  readonly top: readonly FunctionSelfTime[];
}

/** Adds up the self time of each function in one profile and returns the `limit` largest. */
export function summarizeProfile(file: string, repoDir: string, limit = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const names = new Map<number, string>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url === '' ? '' : ` ${url.startsWith('file://') ? relative(repoDir, new URL(url).pathname) : url}:${lineNumber + 1}`;
    names.set(node.id, `${functionName === '' ? '(anonymous)' : functionName}${where}`);
  }
  const selfMicros = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((nodeId, index) => {
    // A sample's time is the delta to the next sample, as Chrome DevTools counts it.
    const micros = profile.timeDeltas[index + 1] ?? 0;
    const name = names.get(nodeId) ?? '(unknown)';
    selfMicros.set(name, (selfMicros.get(name) ?? 0) + micros);
    total += micros;
  });
  const idle = selfMicros.get('(idle)') ?? 0;
  const busy = total - idle;
  const top = [...selfMicros.entries()]
    .filter(([name]) => name !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, micros]) => ({ name, selfMs: micros / 1000, percent: busy === 0 ? 0 : (micros / busy) * 100 }));
  return { file, sampledMs: total / 1000, busyMs: busy / 1000, top };
}

/** Summarizes every .cpuprofile in a folder (one per thread of the profiled process), the busiest first. */
export function summarizeProfiles(dir: string, repoDir: string, limit = 15): ProfileSummary[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => summarizeProfile(join(dir, name), repoDir, limit))
    .sort((a, b) => b.busyMs - a.busyMs);
}
