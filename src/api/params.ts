/** Readers for server API request fields; a wrong type is error 107 naming the field. */
import { Errors, RotorError } from '../protocol/codes.js';
import { dataFromBytes } from '../protocol/json.js';
import type { StreamPosition } from '../storage/history-store.js';

export type Params = Readonly<Record<string, unknown>>;

function bad(detail: string): RotorError {
  return new RotorError(Errors.badRequest, { detail });
}

export function asParams(value: unknown, name: string): Params {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad(`${name} must be a JSON object`);
  return value as Params;
}

export function readString(params: Params, field: string, required = false): string {
  const value = params[field];
  if (value === undefined || value === null) {
    if (required) throw bad(`missing "${field}"`);
    return '';
  }
  if (typeof value !== 'string') throw bad(`"${field}" must be a string`);
  if (required && value === '') throw bad(`empty "${field}"`);
  return value;
}

export function readBool(params: Params, field: string): boolean {
  const value = params[field];
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw bad(`"${field}" must be true or false`);
  return value;
}

export function readInt(params: Params, field: string, fallback: number): number {
  const value = params[field];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw bad(`"${field}" must be an integer`);
  return value;
}

export function readStrings(params: Params, field: string): string[] {
  const value = params[field];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw bad(`"${field}" must be a list of strings`);
  return value;
}

export function readTags(params: Params): Record<string, string> | undefined {
  const value = params.tags;
  if (value === undefined || value === null) return undefined;
  const tags = asParams(value, '"tags"');
  for (const [key, tag] of Object.entries(tags)) {
    if (typeof tag !== 'string') throw bad(`tag "${key}" must be a string`);
  }
  return Object.keys(tags).length > 0 ? (tags as Record<string, string>) : undefined;
}

export function readPosition(params: Params, field: string): StreamPosition | undefined {
  const value = params[field];
  if (value === undefined || value === null) return undefined;
  const position = asParams(value, `"${field}"`);
  const offset = readInt(position, 'offset', 0);
  if (offset < 0) throw bad(`"${field}.offset" must not be negative`);
  return { offset, epoch: readString(position, 'epoch') };
}

/**
 * Reads the payload of `data` (any JSON, kept as compact JSON text) or `b64data`
 * (base64 bytes). Exactly one must be present.
 */
export function readData(params: Params, prefix = ''): string | Uint8Array {
  const data = params[`${prefix}data`];
  const b64 = params[`${prefix}b64data`];
  if (data !== undefined && data !== null) return JSON.stringify(data);
  if (b64 === undefined || b64 === null || b64 === '') throw bad(`missing "${prefix}data"`);
  if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw bad(`"${prefix}b64data" is not valid base64`);
  }
  return dataFromBytes(Buffer.from(b64, 'base64'));
}

/** Reads optional raw JSON such as `info`, or its base64 form `b64info`, as JSON text. */
export function readRawJson(params: Params, field: string): string | undefined {
  const value = params[field];
  if (value !== undefined && value !== null) return JSON.stringify(value);
  const b64 = params[`b64${field}`];
  if (b64 === undefined || b64 === null || b64 === '') return undefined;
  if (typeof b64 !== 'string') throw bad(`"b64${field}" must be a string`);
  const decoded = dataFromBytes(Buffer.from(b64, 'base64'));
  if (typeof decoded !== 'string') throw bad(`"b64${field}" must hold JSON`);
  return decoded;
}
