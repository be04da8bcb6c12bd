import { createReadStream, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import type { Logger } from '../log.js';
import { contentTypeOf } from './mime.js';

export interface StaticFilesOptions {
  /** Files up to this size in bytes are kept in memory; larger ones are streamed from disk. */
  readonly maxCachedFileSize?: number;
  /** Total bytes of cached file bodies; the least recently loaded files are dropped first. */
  readonly maxCacheBytes?: number;
  /**
   * How long a cached file is served without checking it on disk, in milliseconds. A file
   * changed on disk may be served in its old version for this long.
   */
  readonly revalidateMs?: number;
}

/** A file in memory with its response headers. */
interface CachedFile {
  readonly body: Buffer;
  readonly headers: OutgoingHttpHeaders;
  readonly etag: string;
  /** Modification time in whole seconds, as Last-Modified carries it. */
  readonly mtimeSeconds: number;
  readonly mtimeMs: number;
  readonly size: number;
  checkedAt: number;
}

/** Result of a disk check: a file now in memory, or the Stats of one too large to keep there. */
type Loaded = { readonly kind: 'cached'; readonly entry: CachedFile } | { readonly kind: 'large'; readonly stats: Stats };

/** The outcome of mapping a URL path onto the folder. */
type Resolved = { readonly file: string } | { readonly status: 400 | 404 };

const ALLOWED_METHODS = 'GET, HEAD';

/**
 * Serves the files of one folder over HTTP: GET and HEAD, Content-Type from the file
 * extension, Content-Length, Last-Modified and ETag, and 304 responses to If-None-Match and
 * If-Modified-Since. Small files are kept in memory and checked on disk at most once per
 * `revalidateMs`. ETags have nginx's form (`"<mtime hex>-<size hex>"`), so a file has
 * the same ETag whether nginx or Rotor serves it.
 */
export class StaticFiles {
  private readonly maxCachedFileSize: number;
  private readonly maxCacheBytes: number;
  private readonly revalidateMs: number;
  private readonly cache = new Map<string, CachedFile>();
  /** Loads in progress by file path, so concurrent misses read a file once. */
  private readonly loading = new Map<string, Promise<Loaded | undefined>>();
  private cachedBytes = 0;
  /** The served folder as an absolute path without a trailing separator. */
  readonly root: string;

  constructor(
    root: string,
    private readonly logger: Logger,
    options: StaticFilesOptions = {},
  ) {
    this.root = resolve(root);
    this.maxCachedFileSize = options.maxCachedFileSize ?? 256 * 1024;
    this.maxCacheBytes = options.maxCacheBytes ?? 32 * 1024 * 1024;
    this.revalidateMs = options.revalidateMs ?? 1000;
  }

  /**
   * Serves a request for `urlPath`, the still percent-encoded path below the folder
   * (for example `static/sample.html`).
   */
  serve(req: IncomingMessage, res: ServerResponse, urlPath: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'method not allowed\n', { Allow: ALLOWED_METHODS });
      return;
    }
    const resolved = this.resolve(urlPath);
    if ('status' in resolved) {
      sendText(res, resolved.status, resolved.status === 400 ? 'bad request\n' : 'not found\n');
      return;
    }
    const cached = this.cache.get(resolved.file);
    if (cached !== undefined && Date.now() - cached.checkedAt < this.revalidateMs) {
      sendCached(req, res, cached);
      return;
    }
    this.load(resolved.file).then(
      (found) => {
        if (found === undefined) sendText(res, 404, 'not found\n');
        else if (found.kind === 'cached') sendCached(req, res, found.entry);
        else this.stream(req, res, resolved.file, found.stats);
      },
      (err: unknown) => {
        if (res.headersSent) {
          res.destroy();
        } else if (isForbidden(err)) {
          sendText(res, 403, 'forbidden\n');
        } else {
          this.logger.error({ err, file: resolved.file }, 'reading a static file failed');
          sendText(res, 500, 'internal server error\n');
        }
      },
    );
  }

  /**
   * Maps a percent-encoded path onto a file inside the folder. Rejects with 400 any
   * segment that decodes to `.` or `..`, or that contains a slash, a backslash or a NUL
   * byte, so no request reaches a file outside the folder.
   * NOTE: symbolic links inside the folder are followed, as nginx does by default.
   */
  private resolve(urlPath: string): Resolved {
    const segments = urlPath.split('/');
    const decoded: string[] = [];
    for (const segment of segments) {
      let name: string;
      try {
        name = decodeURIComponent(segment);
      } catch {
        return { status: 400 };
      }
      if (name === '.' || name === '..' || /[/\\\0]/.test(name)) return { status: 400 };
      // An empty segment comes from a trailing or doubled slash: no file has that name.
      if (name === '') return { status: 404 };
      decoded.push(name);
    }
    const file = join(this.root, ...decoded);
    if (!file.startsWith(this.root + sep)) return { status: 400 };
    return { file };
  }

  /**
   * Checks a file on disk and returns its cached form (reading it when it is new or has
   * changed), its Stats when it is too large to cache, or undefined when there is no
   * regular file at that path. Concurrent calls for one file share one check.
   */
  private load(file: string): Promise<Loaded | undefined> {
    let pending = this.loading.get(file);
    if (pending === undefined) {
      pending = this.check(file).finally(() => this.loading.delete(file));
      this.loading.set(file, pending);
    }
    return pending;
  }

  private async check(file: string): Promise<Loaded | undefined> {
    let stats: Stats;
    try {
      stats = await stat(file);
    } catch (err) {
      if (isMissing(err)) {
        this.forget(file);
        return undefined;
      }
      throw err;
    }
    if (!stats.isFile()) {
      this.forget(file);
      return undefined;
    }
    const cached = this.cache.get(file);
    if (cached !== undefined && cached.mtimeMs === stats.mtimeMs && cached.size === stats.size) {
      cached.checkedAt = Date.now();
      return { kind: 'cached', entry: cached };
    }
    this.forget(file);
    if (stats.size > this.maxCachedFileSize) return { kind: 'large', stats };

    let body: Buffer;
    try {
      body = await readFile(file);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    // The file may have changed between stat and read; the headers must describe the bytes sent.
    const entry = makeEntry(file, body, body.length === stats.size ? stats.mtimeMs : Date.now());
    this.remember(file, entry);
    return { kind: 'cached', entry };
  }

  private remember(file: string, entry: CachedFile): void {
    this.cache.set(file, entry);
    this.cachedBytes += entry.size;
    for (const [oldest, old] of this.cache) {
      if (this.cachedBytes <= this.maxCacheBytes) break;
      this.cache.delete(oldest);
      this.cachedBytes -= old.size;
    }
  }

  private forget(file: string): void {
    const cached = this.cache.get(file);
    if (cached === undefined) return;
    this.cache.delete(file);
    this.cachedBytes -= cached.size;
  }

  /** Sends a file too large to cache straight from disk. */
  private stream(req: IncomingMessage, res: ServerResponse, file: string, stats: Stats): void {
    const etag = etagOf(stats.mtimeMs, stats.size);
    const mtimeSeconds = Math.floor(stats.mtimeMs / 1000);
    const headers = fileHeaders(file, stats.size, mtimeSeconds, etag);
    if (isNotModified(req, etag, mtimeSeconds)) {
      sendNotModified(res, headers);
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, headers).end();
      return;
    }
    // Stop at the size in Content-Length even if the file has grown since the stat.
    const input = createReadStream(file, { start: 0, end: stats.size - 1 });
    input.once('open', () => {
      res.writeHead(200, headers);
      input.pipe(res);
    });
    input.once('error', (err) => {
      if (!res.headersSent) {
        if (isMissing(err)) sendText(res, 404, 'not found\n');
        else if (isForbidden(err)) sendText(res, 403, 'forbidden\n');
        else {
          this.logger.error({ err, file }, 'reading a static file failed');
          sendText(res, 500, 'internal server error\n');
        }
      } else {
        this.logger.warn({ err, file }, 'static file read failed mid-response');
        res.destroy();
      }
    });
    res.once('close', () => input.destroy());
  }
}

function makeEntry(file: string, body: Buffer, mtimeMs: number): CachedFile {
  const etag = etagOf(mtimeMs, body.length);
  const mtimeSeconds = Math.floor(mtimeMs / 1000);
  return {
    body,
    headers: fileHeaders(file, body.length, mtimeSeconds, etag),
    etag,
    mtimeSeconds,
    mtimeMs,
    size: body.length,
    checkedAt: Date.now(),
  };
}

function fileHeaders(file: string, size: number, mtimeSeconds: number, etag: string): OutgoingHttpHeaders {
  return {
    'Content-Type': contentTypeOf(extname(file)),
    'Content-Length': size,
    'Last-Modified': new Date(mtimeSeconds * 1000).toUTCString(),
    ETag: etag,
  };
}

/** Builds an ETag as nginx does: modification time in seconds and size, both in hex. */
function etagOf(mtimeMs: number, size: number): string {
  return `"${Math.floor(mtimeMs / 1000).toString(16)}-${size.toString(16)}"`;
}

function sendCached(req: IncomingMessage, res: ServerResponse, file: CachedFile): void {
  if (isNotModified(req, file.etag, file.mtimeSeconds)) {
    sendNotModified(res, file.headers);
    return;
  }
  res.writeHead(200, file.headers);
  if (req.method === 'HEAD') res.end();
  else res.end(file.body);
}

/**
 * Evaluates the conditional request headers as RFC 9110 section 13.2.2 orders them:
 * If-None-Match when present, otherwise If-Modified-Since.
 */
function isNotModified(req: IncomingMessage, etag: string, mtimeSeconds: number): boolean {
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() === '*') return true;
    // Weak comparison: W/"x" matches "x".
    return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
  }
  const ifModifiedSince = req.headers['if-modified-since'];
  if (ifModifiedSince === undefined) return false;
  const since = Date.parse(ifModifiedSince);
  return !Number.isNaN(since) && mtimeSeconds * 1000 <= since;
}

function sendNotModified(res: ServerResponse, headers: OutgoingHttpHeaders): void {
  res.writeHead(304, { ETag: headers.ETag, 'Last-Modified': headers['Last-Modified'] }).end();
}

function sendText(res: ServerResponse, status: number, text: string, extra: OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...extra }).end(text);
}

/** Returns true for file system errors that mean there is no such file, including a name too long to exist. */
function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'ENAMETOOLONG';
}

/** Returns true when the file exists but Rotor's user may not read it; nginx returns 403 then too. */
function isForbidden(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM';
}
