/**
 * Operating-system side of the pub/sub benchmarks: CPU time and resident memory of a
 * server's process tree from /proc, the open-file limit, and stopping every child process
 * when the script ends, fails or is interrupted.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** Returns the kernel's clock ticks per second (`getconf CLK_TCK`), the unit of utime and stime in /proc. */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const parsed = Number(result.stdout?.trim());
    // NOTE: 100 is the Linux value on x86 and arm64; it is used only when getconf is missing.
    ticksPerSecond = Number.isInteger(parsed) && parsed > 0 ? parsed : 100;
  }
  return ticksPerSecond;
}

interface StatFields {
  readonly ppid: number;
  /** utime + stime in clock ticks, all threads included. */
  readonly cpuTicks: number;
}

/** Reads /proc/<pid>/stat; undefined when the process is gone. */
function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces, so fields are
  // counted from the last ")": state is field 3, ppid 4, utime 14 and stime 15.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
}

/** Reads VmRSS from /proc/<pid>/status in bytes; 0 when the process is gone. */
function readRss(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}

/** Returns `root` and all its live descendants (nginx workers, for example). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (stat === undefined) continue;
    let siblings = children.get(stat.ppid);
    if (siblings === undefined) {
      siblings = [];
      children.set(stat.ppid, siblings);
    }
    siblings.push(pid);
  }
  const tree: number[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    tree.push(pid);
    pending.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** CPU time and memory of a process tree at one moment. */
export interface TreeSample {
  /** Time of the sample, `performance.now()` in milliseconds. */
  readonly at: number;
  /** User plus system CPU time of the live processes, in seconds. */
  readonly cpuSeconds: number;
  /** Sum of the processes' resident set sizes, in bytes. */
  readonly rssBytes: number;
  readonly processes: number;
}

/**
 * Samples a process tree. CPU time of descendants that already exited is not included,
 * so the tree should stay the same between two samples that are compared.
 */
export function sampleTree(root: number): TreeSample {
  const pids = processTree(root);
  let ticks = 0;
  let rss = 0;
  for (const pid of pids) {
    ticks += readStat(pid)?.cpuTicks ?? 0;
    rss += readRss(pid);
  }
  return { at: performance.now(), cpuSeconds: ticks / clockTicksPerSecond(), rssBytes: rss, processes: pids.length };
}

/** Returns the soft and hard limits on open files of this process (children inherit them). */
export function openFileLimits(): { soft: number; hard: number } {
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const parse = (value: string | undefined): number => (value === undefined || value === 'unlimited' ? Number.POSITIVE_INFINITY : Number(value));
  return { soft: parse(match?.[1]), hard: parse(match?.[2]) };
}

type Stopper = () => Promise<void>;

const stoppers = new Set<Stopper>();
const foldersToRemove = new Set<string>();

/** Deletes `dir` with its contents when the script ends, whether it succeeds, fails or is interrupted. */
export function removeFolderAtExit(dir: string): void {
  foldersToRemove.add(dir);
}

function removeFolders(): void {
  for (const dir of foldersToRemove) rmSync(dir, { recursive: true, force: true });
  foldersToRemove.clear();
}

/**
 * Registers a function that stops a child process when the script ends early; returns
 * the function that unregisters it, for a normal stop.
 */
export function trackChild(stop: Stopper): () => void {
  stoppers.add(stop);
  return () => stoppers.delete(stop);
}

/** Stops every tracked child process, the newest first. */
export async function stopAllChildren(): Promise<void> {
  const list = [...stoppers].reverse();
  stoppers.clear();
  for (const stop of list) {
    try {
      await stop();
    } catch (err) {
      console.error(`stopping a child process failed: ${(err as Error).message}`);
    }
  }
}

/**
 * Makes Ctrl-C and SIGTERM stop every tracked child process before exiting with 130 or
 * 143, as shells report a death by these signals.
 */
export function stopChildrenOnSignals(): void {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      console.error(`${signal} received: stopping ${stoppers.size} child process(es)`);
      void stopAllChildren().finally(() => {
        removeFolders();
        process.exit(code);
      });
    });
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs a benchmark's main function: children are stopped and folders registered with
 * `removeFolderAtExit` deleted on Ctrl-C, SIGTERM, failure and success alike. A failure
 * is printed and ends the process with exit code 1.
 */
export function runBenchmark(main: () => Promise<void>): void {
  stopChildrenOnSignals();
  main()
    .catch((err: unknown) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
      process.exitCode = 1;
    })
    .finally(async () => {
      await stopAllChildren();
      removeFolders();
    });
}

let nextSourceAddress = 2;

/**
 * Returns fresh loopback source addresses for `count` client connections, one per 10,000,
 * from 127.0.0.2 up, never the same twice in one script run. A source address has only
 * the ephemeral port range (32768-60999 by default, about 28,000 ports), and ports of
 * closed connections stay in TIME_WAIT for a minute.
 */
export function sourceAddresses(count: number): string[] {
  const needed = Math.max(1, Math.ceil(count / 10_000));
  const addresses = Array.from({ length: needed }, (_, index) => {
    const host = nextSourceAddress + index;
    return `127.0.${Math.floor(host / 256)}.${host % 256}`;
  });
  nextSourceAddress += needed;
  return addresses;
}

/**
 * Returns the CPU time all cores of the machine spent busy since boot, in seconds, from
 * the first line of /proc/stat. Busy time is user, nice, system, irq and softirq, while
 * idle, iowait and time stolen by the hypervisor are not.
 */
export function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = fields;
  return (user + nice + system + irq + softirq) / clockTicksPerSecond();
}

/**
 * Waits until the machine is quiet: less than `maxCores` cores busy over one second
 * (other sessions may run their own benchmarks on the same cores). Gives up after
 * `maxWaitMs` and returns the busy cores of the last second either way, so that the
 * caller can report a noisy measurement.
 */
export async function waitForQuietMachine(maxWaitMs: number, maxCores = 0.3): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  for (;;) {
    const startBusy = machineBusySeconds();
    const startAt = performance.now();
    await sleep(1_000);
    const cores = (machineBusySeconds() - startBusy) / ((performance.now() - startAt) / 1000);
    if (cores < maxCores || Date.now() >= deadline) return cores;
  }
}

/**
 * Throws when `connections` WebSocket connections would not fit the open-file limit that
 * the server and the load client inherit from this process (one descriptor each, plus
 * some for the process itself).
 */
export function checkOpenFileLimit(connections: number): void {
  const { soft } = openFileLimits();
  const needed = connections + 256;
  if (needed > soft) throw new Error(`${connections} connections need an open-file limit of at least ${needed}, but it is ${soft}; lower --connections or raise the limit (ulimit -n ${needed}) and run again`);
}
