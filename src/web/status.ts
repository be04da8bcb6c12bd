import { openSync, readSync } from 'node:fs';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { getHeapStatistics, type HeapInfo } from 'node:v8';
import type { RotorNode } from '../node.js';

/** Text every status page contains, for checks by tests and benchmark scripts. */
export const STATUS_MARKER = '<body id="rotor-status">';

/** Cache-Control of the status page: shared caches such as nginx may reuse it for one second. */
export const STATUS_CACHE_CONTROL = 'public, max-age=1';

/** Width of a padded value cell: enough for a byte count in the petabytes. */
const VALUE_WIDTH = 16;

const PROCESS_STARTED_AT = new Date(Date.now() - process.uptime() * 1000);

const STYLE = `
:root { color-scheme: light dark; --line: #d7dbe3; --muted: #5b6476; --accent: #2f6fde; }
@media (prefers-color-scheme: dark) { :root { --line: #30363f; --muted: #9aa3b5; --accent: #7aa7ff; } }
body { margin: 2rem auto; max-width: 60rem; padding: 0 1rem; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.1rem; margin: 1.75rem 0 .5rem; color: var(--accent); }
header p, footer p, td.about { color: var(--muted); }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; width: 14rem; }
td.value { white-space: pre; font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; text-align: right; width: 12rem; }
footer { margin-top: 2rem; font-size: .9rem; }
`;

/** Readings taken once per request, shared by every row of the page. */
interface Sample {
  readonly node: RotorNode;
  /** Resident set size in bytes. */
  readonly rss: number;
  readonly usage: NodeJS.ResourceUsage;
  readonly heap: HeapInfo;
  readonly loopUtilization: number;
  readonly uptime: number;
  readonly now: Date;
}

interface Row {
  /** HTML. */
  readonly label: string;
  /** A fixed value (HTML), or a function that formats the value from a sample. */
  readonly value: string | ((sample: Sample) => string);
  /** HTML. */
  readonly about: string;
}

/**
 * The status page of one node, split into its constant HTML and the functions that fill
 * the gaps between those parts. The constant parts are built once per node.
 */
interface Template {
  /** One more part than there are fills: part 0, fill 0, part 1, ..., fill n-1, part n. */
  readonly parts: readonly string[];
  readonly fills: ReadonlyArray<(sample: Sample) => string>;
}

const templates = new WeakMap<RotorNode, Template>();

/**
 * Renders the status page of a node as HTML, pure ASCII (non-ASCII characters become
 * character references), so its length in bytes is its length in characters. Every
 * changing value is padded to a fixed width, so the page keeps the same length from
 * one request to the next while the values stay within their widths. ApacheBench
 * counts a response whose length differs from the first one as a failed request, and
 * the benchmark kit relies on that check.
 */
export function renderStatusPage(node: RotorNode): string {
  let template = templates.get(node);
  if (template === undefined) {
    template = compileTemplate(node);
    templates.set(node, template);
  }
  const now = Date.now();
  if (processReadings === undefined || now - processReadings.takenAt >= PROCESS_SAMPLE_MS) processReadings = readProcess(now);
  const sample: Sample = { node, ...processReadings, uptime: node.uptime, now: new Date(now) };
  const { parts, fills } = template;
  let html = parts[0]!;
  for (let i = 0; i < fills.length; i++) html += fills[i]!(sample) + parts[i + 1]!;
  return html;
}

/**
 * Age at which process readings are taken again. Together they cost several system calls
 * (/proc reads, getrusage), about as much as rendering the rest of the page, and they
 * change little within 100 ms. The client and channel counters stay live.
 */
const PROCESS_SAMPLE_MS = 100;

type ProcessReadings = Pick<Sample, 'rss' | 'usage' | 'heap' | 'loopUtilization'> & { readonly takenAt: number };

let processReadings: ProcessReadings | undefined;

function readProcess(now: number): ProcessReadings {
  return {
    takenAt: now,
    rss: residentSetSize(),
    usage: process.resourceUsage(),
    heap: getHeapStatistics(),
    loopUtilization: performance.eventLoopUtilization().utilization,
  };
}

/** Lists the sections of the page with their rows. */
function sectionsOf(node: RotorNode): Array<[string, Row[]]> {
  const config = node.config;
  return [
    [
      'Node',
      [
        { label: 'Name', value: escapeHtml(node.name), about: 'The <code>name</code> option, or the host name and port when it is empty.' },
        { label: 'Node ID', value: node.uid, about: 'Random ID chosen at start; it changes on every restart.' },
        { label: 'Version', value: escapeHtml(node.version), about: 'Rotor version from package.json.' },
        { label: 'Uptime, seconds', value: (s) => padNumber(s.uptime), about: 'Whole seconds since this node started.' },
        { label: 'Uptime', value: (s) => pad(formatUptime(s.uptime)), about: 'The same, as days and hours:minutes:seconds.' },
        { label: 'Process started at', value: pad(isoSeconds(PROCESS_STARTED_AT)), about: 'When the operating system process started, UTC.' },
        { label: 'Page generated at', value: (s) => pad(isoSeconds(s.now)), about: 'Server clock, UTC. A cached copy shows when Rotor rendered it.' },
      ],
    ],
    [
      'Process',
      [
        { label: 'Process ID', value: padNumber(process.pid), about: 'Operating system process ID of this node.' },
        { label: 'Host', value: escapeHtml(hostname()), about: 'Host name the operating system reported when the page was first rendered.' },
        { label: 'Node.js', value: pad(process.version), about: 'Runtime version; Rotor needs Node.js 20 or newer.' },
        { label: 'V8', value: pad(process.versions.v8), about: 'JavaScript engine version bundled with Node.js.' },
        { label: 'Platform', value: pad(`${process.platform}-${process.arch}`), about: 'Operating system and CPU architecture.' },
      ],
    ],
    [
      'Clients and channels',
      [
        { label: 'Clients', value: (s) => padNumber(s.node.hub.numClients), about: 'Client connections on this node, over every transport.' },
        { label: 'Users', value: (s) => padNumber(s.node.hub.numUsers), about: 'Distinct user IDs among those clients.' },
        { label: 'Channels', value: (s) => padNumber(s.node.hub.numChannels), about: 'Channels with at least one subscriber on this node.' },
        { label: 'Subscriptions', value: (s) => padNumber(s.node.hub.numSubscriptions), about: 'Client subscriptions on this node, summed over channels.' },
      ],
    ],
    [
      'Process memory',
      [
        memoryRow('Resident set size', (s) => s.rss, 'Memory of the whole process held in RAM, including worker threads.'),
        memoryRow('Heap total', (s) => s.heap.total_heap_size, 'V8 heap reserved by the main thread.'),
        memoryRow('Heap used', (s) => s.heap.used_heap_size, 'V8 heap in use by JavaScript objects of the main thread.'),
        memoryRow('Heap in RAM', (s) => s.heap.total_physical_size, 'Part of the reserved heap that is backed by physical memory.'),
        memoryRow('External', (s) => s.heap.external_memory, 'Memory of C++ objects bound to JavaScript objects, such as buffers.'),
        memoryRow('Peak resident set size', (s) => s.usage.maxRSS * 1024, 'Largest resident set size since the process started.'),
      ],
    ],
    [
      'V8 heap of the main thread',
      [
        memoryRow('Heap size limit', (s) => s.heap.heap_size_limit, 'Largest heap V8 grows to before it fails with out of memory; set with <code>--max-old-space-size</code>.'),
        memoryRow('Available', (s) => s.heap.total_available_size, 'Heap that can still be allocated before the limit.'),
        memoryRow('Malloced memory', (s) => s.heap.malloced_memory, 'Memory V8 took with malloc outside the heap, now.'),
        memoryRow('Peak malloced memory', (s) => s.heap.peak_malloced_memory, 'Most memory V8 held with malloc at one time.'),
        { label: 'Native contexts', value: (s) => padNumber(s.heap.number_of_native_contexts), about: 'Top-level JavaScript contexts; a count that keeps growing means a leak.' },
        { label: 'Detached contexts', value: (s) => padNumber(s.heap.number_of_detached_contexts), about: 'Contexts that are no longer used but not yet collected.' },
      ],
    ],
    [
      'CPU and event loop',
      [
        { label: 'User CPU, seconds', value: (s) => pad((s.usage.userCPUTime / 1e6).toFixed(3)), about: 'CPU time spent in user mode, all threads together.' },
        { label: 'System CPU, seconds', value: (s) => pad((s.usage.systemCPUTime / 1e6).toFixed(3)), about: 'CPU time spent in the kernel on behalf of the process.' },
        {
          label: 'Event loop utilization',
          value: (s) => pad(s.loopUtilization.toFixed(4)),
          about: 'Share of time the main event loop was busy since start; near 1 means saturated.',
        },
        { label: 'Voluntary context switches', value: (s) => padNumber(s.usage.voluntaryContextSwitches), about: 'Times a thread waited for I/O or a lock.' },
        {
          label: 'Involuntary context switches',
          value: (s) => padNumber(s.usage.involuntaryContextSwitches),
          about: 'Times the kernel preempted a thread; high counts mean CPU contention.',
        },
      ],
    ],
    [
      'Channel actors',
      [
        { label: 'Actor pool threads', value: (s) => padNumber(s.node.scheduler.threads.length), about: 'Worker threads running the channel actors and their history storage.' },
        { label: 'History storage', value: pad(config.history_storage), about: 'Where publications are kept: <code>sqlite</code> files or <code>memory</code>.' },
      ],
    ],
    [
      'Client limits in force',
      [
        optionRow('ping_interval', `${config.ping_interval} ms`, 'Period of server pings to each client.'),
        optionRow('pong_timeout', `${config.pong_timeout} ms`, 'Time a client has to answer a ping before it is disconnected.'),
        optionRow('client_queue_max_size', `${config.client_queue_max_size} B`, 'Bytes queued for one client before it is disconnected as slow.'),
        optionRow('client_channel_limit', String(config.client_channel_limit), 'Channels one connection may subscribe to; 0 means no limit.'),
        optionRow('client_user_connection_limit', String(config.client_user_connection_limit), 'Connections per user on this node; 0 means no limit.'),
        optionRow('websocket_message_size_limit', `${config.websocket_message_size_limit} B`, 'Largest incoming WebSocket message.'),
        optionRow('client_recovery_max_publication_limit', String(config.client_recovery_max_publication_limit), 'Most publications one recovery replays.'),
        optionRow('history_meta_ttl', `${config.history_meta_ttl} ms`, 'How long a stream keeps its offset and epoch after its last publish; 0 keeps it forever.'),
        optionRow('presence_ttl', `${config.presence_ttl} ms`, 'How long a presence entry lives without a refresh.'),
        optionRow('api_max_body_size', `${config.api_max_body_size} B`, 'Largest server API request body.'),
      ],
    ],
  ];
}

/** Open descriptor of /proc/self/statm; null where it cannot be read (not Linux). */
let statmFd: number | null | undefined;
let pageSize = 0;
const statmBuffer = Buffer.alloc(256);

/**
 * Returns the resident set size in bytes. On Linux it reads /proc/self/statm through a
 * descriptor kept open, which costs about 2 µs. process.memoryUsage.rss() reads
 * /proc/self/stat, where the kernel also sums the CPU time of every thread, and cost
 * 7 to 11 µs per call on the 2-vCPU test VM with the actor pool running.
 */
function residentSetSize(): number {
  if (statmFd === undefined) {
    try {
      statmFd = openSync('/proc/self/statm', 'r');
      // Node does not expose the page size. It is a power of two, so round the ratio of the two RSS readings.
      pageSize = 2 ** Math.round(Math.log2(process.memoryUsage.rss() / readResidentPages(statmFd)));
    } catch {
      statmFd = null;
    }
  }
  if (statmFd === null) return process.memoryUsage.rss();
  return readResidentPages(statmFd) * pageSize;
}

/** Reads the second field of /proc/self/statm: resident pages. */
function readResidentPages(fd: number): number {
  const length = readSync(fd, statmBuffer, 0, statmBuffer.length, 0);
  const pages = Number(statmBuffer.toString('latin1', 0, length).split(' ')[1]);
  if (!Number.isFinite(pages) || pages <= 0) throw new Error('unexpected /proc/self/statm content');
  return pages;
}

function compileTemplate(node: RotorNode): Template {
  const name = escapeHtml(node.name);
  const parts: string[] = [];
  const fills: Array<(sample: Sample) => string> = [];
  let text =
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n' +
    `<title>Rotor status: ${name}</title>\n<style>${STYLE}</style>\n</head>\n${STATUS_MARKER}\n` +
    `<header>\n<h1>Rotor node status</h1>\n<p>Node <b>${name}</b>, Rotor ${escapeHtml(node.version)}.</p>\n</header>\n`;
  for (const [title, rows] of sectionsOf(node)) {
    text += `<section>\n<h2>${title}</h2>\n<table>\n`;
    for (const row of rows) {
      text += `<tr><th>${row.label}</th><td class="value">`;
      if (typeof row.value === 'string') text += row.value;
      else {
        parts.push(text);
        fills.push(row.value);
        text = '';
      }
      text += `</td><td class="about">${row.about}</td></tr>\n`;
    }
    text += '</table>\n</section>\n';
  }
  text +=
    '<footer>\n<p>Counters cover this node only. Memory and CPU figures are sampled at most every ' +
    `${PROCESS_SAMPLE_MS} ms. The page may be cached for one second (Cache-Control: ` +
    `${STATUS_CACHE_CONTROL}), so values behind nginx can be that old. Machines should read <code>/health</code> ` +
    'and the server API <code>info</code> method, not this page, whose layout may change.</p>\n</footer>\n</body>\n</html>\n';
  parts.push(text);
  return { parts, fills };
}

/** Builds the row of a configuration option. None of the options on the page is a secret. */
function optionRow(option: string, value: string, about: string): Row {
  return { label: `<code>${option}</code>`, value: pad(value), about };
}

function memoryRow(label: string, bytes: (sample: Sample) => number, about: string): Row {
  return {
    label,
    value: (sample) => {
      const value = bytes(sample);
      return `${padNumber(value)} B\n${pad((value / 1024 / 1024).toFixed(1))} MiB`;
    },
    about,
  };
}

function pad(text: string): string {
  return text.padStart(VALUE_WIDTH);
}

function padNumber(value: number): string {
  return pad(String(value));
}

/** Formats seconds as `<days>d hh:mm:ss`. */
function formatUptime(totalSeconds: number): string {
  const days = Math.floor(totalSeconds / 86_400);
  const hours = Math.floor((totalSeconds % 86_400) / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  return `${days}d ${two(hours)}:${two(minutes)}:${two(seconds)}`;
}

function two(value: number): string {
  return String(value).padStart(2, '0');
}

/** Formats a time as ISO 8601 without milliseconds, for example 2026-12-04T20:00:00Z. */
function isoSeconds(date: Date): string {
  return date.toISOString().slice(0, 19) + 'Z';
}

/** Escapes HTML syntax characters and every non-ASCII character as a numeric character reference. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"'\u0080-\u{10FFFF}]/gu, (char) => `&#${char.codePointAt(0)};`);
}
