/**
 * The HTTP side of the server API: `POST /api/<method>` with a JSON object body, and the
 * legacy `POST /api` with newline-delimited `{"id","method","params"}` commands.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import type { RotorNode } from '../node.js';
import { Errors, httpStatusOf, RotorError, toReplyError, type ReplyError } from '../protocol/codes.js';
import { LEGACY_METHOD_NAMES, METHODS } from './methods.js';
import { asParams } from './params.js';

class BodyTooLarge extends Error {}

/** Reads the request body up to `limit` bytes, then calls `done` once; past the limit with BodyTooLarge. */
function readBody(req: IncomingMessage, limit: number, done: (err: Error | undefined, body: Buffer) => void): void {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) {
    req.resume();
    done(new BodyTooLarge(), Buffer.alloc(0));
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (err: Error | undefined): void => {
    if (finished) return;
    finished = true;
    if (err !== undefined) done(err, Buffer.alloc(0));
    else done(undefined, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
  };
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > limit) {
      req.removeAllListeners('data');
      req.resume();
      finish(new BodyTooLarge());
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => finish(undefined));
  req.on('error', (err) => finish(err));
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function errorBody(error: ReplyError): string {
  return JSON.stringify({ code: error.code, message: error.message });
}

/**
 * Sends an error with an HTTP status other than 200. The transport error mode gets the bare
 * `{"code","message"}` body. Otherwise the error is wrapped as `{"error":{...}}`, because
 * cent.js 6.1 ignores the status and reads any JSON body without an "error" field as a success.
 */
function sendError(res: ServerResponse, status: number, error: ReplyError, transportMode: boolean, headers: Record<string, string> = {}): void {
  send(res, status, transportMode ? errorBody(error) : `{"error":${errorBody(error)}}`, headers);
}

export class ApiHandler {
  private readonly key: Buffer | undefined;
  private shuttingDown = false;

  constructor(
    private readonly node: RotorNode,
    private readonly logger: Logger,
  ) {
    const { api_key: key, api_insecure: insecure } = node.config;
    this.key = key === '' ? undefined : Buffer.from(key);
    if (insecure) logger.warn('server API runs without authentication (api_insecure is on)');
    else if (this.key === undefined) {
      logger.warn('server API rejects every call with 401: set api_key in the config file, with --api_key or ROTOR_API_KEY (or api_insecure for development)');
    }
  }

  /** Makes new API calls return 503 while the server shuts down. */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  /** Serves one API request; `query` is the raw query string of the URL. */
  handle(req: IncomingMessage, res: ServerResponse, path: string, query: string): void {
    const legacy = path === '/api' || path === '/api/';
    // The legacy endpoint sends newline-delimited replies, so it has no transport error mode.
    const transportMode =
      !legacy &&
      (this.node.config.api_error_mode === 'transport' || req.headers['x-centrifugo-error-mode']?.toString().toLowerCase() === 'transport');
    if (req.method !== 'POST') {
      sendError(res, 405, { code: Errors.badRequest.code, message: 'method not allowed: use POST' }, transportMode, { Allow: 'POST' });
      return;
    }
    if (!this.authorized(req, query)) {
      sendError(res, 401, Errors.unauthorized, transportMode);
      return;
    }
    if (this.shuttingDown) {
      sendError(res, 503, Errors.notAvailable, transportMode, { Connection: 'close' });
      return;
    }
    const limit = this.node.config.api_max_body_size;
    readBody(req, limit, (err, body) => {
      if (err instanceof BodyTooLarge) {
        this.logger.info({ limit, path }, 'api request body too large');
        sendError(res, 413, { code: 107, message: 'request body too large' }, transportMode, { Connection: 'close' });
        return;
      }
      if (err !== undefined) {
        this.logger.debug({ err }, 'api request body read failed');
        return;
      }
      const handled = legacy ? this.handleLegacy(res, body) : this.handleMethod(res, path.slice('/api/'.length), body, transportMode);
      handled.catch((failure: unknown) => {
        this.logger.error({ err: failure, path }, 'api request failed');
        if (!res.headersSent) sendError(res, 500, Errors.internal, transportMode);
      });
    });
  }

  /**
   * Checks the key as Centrifugo does: a non-empty X-API-Key header, else the
   * `Authorization: apikey KEY` header (scheme case-insensitive). The `api_key` query
   * parameter is tried when the headers carry no valid key.
   */
  private authorized(req: IncomingMessage, query: string): boolean {
    if (this.node.config.api_insecure) return true;
    if (this.key === undefined) return false;
    const header = req.headers['x-api-key'];
    if (typeof header === 'string' && header !== '') {
      if (this.keyMatches(header)) return true;
    } else {
      const match = /^apikey\s+(.+)$/i.exec(req.headers.authorization ?? '');
      if (match !== null && this.keyMatches(match[1]!.trim())) return true;
    }
    const fromQuery = query === '' ? null : new URLSearchParams(query).get('api_key');
    return fromQuery !== null && this.keyMatches(fromQuery);
  }

  private keyMatches(presented: string): boolean {
    const candidate = Buffer.from(presented);
    return this.key !== undefined && candidate.length === this.key.length && timingSafeEqual(candidate, this.key);
  }

  private async handleMethod(res: ServerResponse, name: string, body: Buffer, transportMode: boolean): Promise<void> {
    const method = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
    if (method === undefined) {
      sendError(res, 404, Errors.methodNotFound, transportMode);
      return;
    }
    let params: unknown;
    try {
      params = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
    } catch {
      sendError(res, 400, { code: 107, message: 'malformed JSON body' }, transportMode);
      return;
    }
    try {
      const result = await method(this.node, asParams(params, 'request body'));
      send(res, 200, `{"result":${result}}`);
    } catch (err) {
      const error = this.replyError(err, name);
      if (transportMode) send(res, httpStatusOf(error.code), errorBody(error));
      else send(res, 200, `{"error":${errorBody(error)}}`);
    }
  }

  private async handleLegacy(res: ServerResponse, body: Buffer): Promise<void> {
    const lines = body
      .toString('utf8')
      .split('\n')
      .filter((line) => line.trim() !== '');
    if (lines.length === 0) {
      sendError(res, 400, { code: 107, message: 'empty request body' }, false);
      return;
    }
    const commands: Array<Record<string, unknown>> = [];
    for (const line of lines) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        sendError(res, 400, { code: 107, message: 'malformed JSON command' }, false);
        return;
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        sendError(res, 400, { code: 107, message: 'a command must be a JSON object' }, false);
        return;
      }
      commands.push(parsed as Record<string, unknown>);
    }
    const replies: string[] = [];
    for (const command of commands) {
      const id = typeof command.id === 'number' && command.id > 0 ? `"id":${command.id},` : '';
      try {
        const name = legacyMethodName(command.method);
        const method = name === undefined ? undefined : METHODS[name];
        if (method === undefined) throw new RotorError(Errors.methodNotFound, { detail: `unknown method ${JSON.stringify(command.method)}` });
        const result = await method(this.node, asParams(command.params ?? {}, '"params"'));
        replies.push(`{${id}"result":${result}}`);
      } catch (err) {
        replies.push(`{${id}"error":${errorBody(this.replyError(err, String(command.method)))}}`);
      }
    }
    // No trailing newline: clients split the body on '\n' and parse every piece.
    send(res, 200, replies.join('\n'));
  }

  private replyError(err: unknown, method: string): ReplyError {
    const error = toReplyError(err);
    if (error.code === Errors.internal.code) this.logger.error({ err, method }, 'api call failed');
    else this.logger.debug({ method, code: error.code, detail: (err as Error).message }, 'api call rejected');
    return error;
  }
}

/** Resolves a legacy method given as a number or a case-insensitive name. */
function legacyMethodName(method: unknown): string | undefined {
  if (method === undefined || method === null) return 'publish';
  if (typeof method === 'number') return LEGACY_METHOD_NAMES[method];
  if (typeof method !== 'string') return undefined;
  const name = method.toLowerCase();
  return Object.hasOwn(METHODS, name) ? name : undefined;
}
