/**
 * The JSON encoding of the client protocol (v2): newline-delimited commands in, replies
 * and pushes out. Replies are built as text so that payloads stored as JSON text are
 * embedded without parsing them again.
 */
import { Disconnects, DisconnectError, type ReplyError } from './codes.js';

export const CLIENT_METHODS = [
  'connect',
  'subscribe',
  'unsubscribe',
  'publish',
  'presence',
  'presence_stats',
  'history',
  'ping',
  'send',
  'rpc',
  'refresh',
  'sub_refresh',
] as const;

export type ClientMethod = (typeof CLIENT_METHODS)[number];

export interface ClientCommand {
  /** Command id; 0 for `send` and for the empty pong. */
  readonly id: number;
  /** The request field that is set; undefined for an empty command (a pong). */
  readonly method: ClientMethod | undefined;
  readonly params: Readonly<Record<string, unknown>>;
}

const METHOD_SET: ReadonlySet<string> = new Set(CLIENT_METHODS);

function decodeCommand(line: string): ClientCommand {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new DisconnectError(Disconnects.badRequest, 'malformed JSON command');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new DisconnectError(Disconnects.badRequest, 'a command must be a JSON object');
  }
  const record = parsed as Record<string, unknown>;
  const id = record.id ?? 0;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xffffffff) {
    throw new DisconnectError(Disconnects.badRequest, 'command id must be a uint32');
  }
  let method: ClientMethod | undefined;
  for (const key in record) {
    if (METHOD_SET.has(key)) {
      method = key as ClientMethod;
      break;
    }
  }
  let params: Record<string, unknown> = {};
  if (method !== undefined) {
    const value = record[method];
    if (value !== null && value !== undefined) {
      if (typeof value !== 'object' || Array.isArray(value)) throw new DisconnectError(Disconnects.badRequest, `"${method}" must be an object`);
      params = value as Record<string, unknown>;
    }
  }
  return { id, method, params };
}

/** Decodes a frame of newline-delimited commands; any malformed line is the 3501 disconnect. */
export function decodeCommands(text: string): ClientCommand[] {
  const commands: ClientCommand[] = [];
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end).trim();
    if (line !== '') commands.push(decodeCommand(line));
    start = end + 1;
  }
  if (commands.length === 0) throw new DisconnectError(Disconnects.badRequest, 'empty frame');
  return commands;
}

export function encodeReply(id: number, method: string, resultJson: string): string {
  return `{"id":${id},"${method}":${resultJson}}`;
}

export function encodeErrorReply(id: number, error: ReplyError): string {
  return `{"id":${id},"error":${JSON.stringify(error)}}`;
}

/** Encodes an asynchronous push, for example `encodePush("news", "pub", publicationJson)`. */
export function encodePush(channel: string, kind: string, bodyJson: string): string {
  return channel === '' ? `{"push":{"${kind}":${bodyJson}}}` : `{"push":{"channel":${JSON.stringify(channel)},"${kind}":${bodyJson}}}`;
}

/** The server ping: an empty reply. */
export const PING = '{}';
