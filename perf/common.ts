/** Helpers shared by the perf scripts: statistics, machine description, temporary folders, CPU time from /proc. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

/** Returns the median of a non-empty list (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median requires at least one value');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Returns the CPU count and model, the Node.js version and the platform, for result records. */
export function machine(): { cpus: number; cpuModel: string; node: string; platform: string } {
  return {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

/** Creates a temporary folder that `remove` deletes with its contents. */
export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Parses a positive integer command-line value, or throws an error that names the flag. */
export function positiveInt(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new Error(`invalid value for --${flag}: expected a positive integer, got ${JSON.stringify(value)}`);
  return parsed;
}

/** Rounds a value to `digits` decimal places for reports. */
export function round(value: number, digits = 0): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Milliseconds of CPU per clock tick in /proc: Linux reports these times in USER_HZ, which is 100. */
const MS_PER_TICK = 10;

/** Reads user plus system CPU time, in milliseconds, from a /proc `stat` file. */
function readStatCpuMs(path: string): number {
  const stat = readFileSync(path, 'utf8');
  // The command name in brackets may contain spaces, so the fields are counted after its closing bracket.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * MS_PER_TICK;
}

/**
 * Returns the CPU time of each thread of a process (thread id to milliseconds), or
 * undefined where /proc is missing (not Linux). The resolution is 10 ms.
 */
export function threadCpuTimes(pid: number = process.pid): Map<number, number> | undefined {
  const tasks = `/proc/${pid}/task`;
  if (!existsSync(tasks)) return undefined;
  const times = new Map<number, number>();
  for (const tid of readdirSync(tasks)) {
    try {
      times.set(Number(tid), readStatCpuMs(`${tasks}/${tid}/stat`));
    } catch {
      // The thread exited between the listing and the read.
    }
  }
  return times;
}

/** Returns the CPU time of a whole process in milliseconds, threads that exited included, or undefined without /proc. */
export function processCpuMs(pid: number): number | undefined {
  const path = `/proc/${pid}/stat`;
  return existsSync(path) ? readStatCpuMs(path) : undefined;
}

/**
 * Prints the header comment of a benchmark script (its description and usage) and exits
 * when the command line has --help or -h.
 */
export function printUsageOnHelp(scriptUrl: string): void {
  if (!process.argv.includes('--help') && !process.argv.includes('-h')) return;
  const source = readFileSync(new URL(scriptUrl), 'utf8');
  const header = /\/\*\*([\s\S]*?)\*\//.exec(source)?.[1] ?? ' * No description.';
  process.stdout.write(header.replace(/^\s*\* ?/gm, '').trim() + '\n');
  process.exit(0);
}
