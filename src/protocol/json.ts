/**
 * JSON text builders for replies that embed raw JSON payloads. Payload fields (`data`,
 * `conn_info`, `chan_info`) are stored as JSON text and written into replies verbatim,
 * so a publication is never parsed and re-serialized on its way to subscribers.
 */
import type { ClientInfo, Publication } from '../storage/history-store.js';
import { Disconnects, DisconnectError } from './codes.js';

/** How to write binary data (from `b64data`) that is not JSON. */
export type BinaryMode = 'b64' | 'reject';

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Returns the data field of a publication. The server API writes binary data as a base64
 * `b64data` field. JSON protocol clients cannot receive binary data, so 'reject' throws
 * the 3506 disconnect, as Centrifugo does.
 */
function dataField(data: string | Uint8Array, binary: BinaryMode): string {
  if (typeof data === 'string') return `"data":${data}`;
  if (binary === 'reject') throw new DisconnectError(Disconnects.inappropriateProtocol, 'binary data on a JSON connection');
  return `"b64data":${JSON.stringify(Buffer.from(data).toString('base64'))}`;
}

export function encodeClientInfo(info: ClientInfo): string {
  let text = `{"user":${JSON.stringify(info.user)},"client":${JSON.stringify(info.client)}`;
  if (info.conn_info !== undefined) text += `,"conn_info":${info.conn_info}`;
  if (info.chan_info !== undefined) text += `,"chan_info":${info.chan_info}`;
  return text + '}';
}

/** Encodes a publication; `offset` is left out when 0 (not saved to history), as upstream does. */
export function encodePublication(publication: Publication, binary: BinaryMode): string {
  let text = '{' + dataField(publication.data, binary);
  if (publication.info !== undefined) text += `,"info":${encodeClientInfo(publication.info)}`;
  if (publication.offset > 0) text += `,"offset":${publication.offset}`;
  if (publication.tags !== undefined && Object.keys(publication.tags).length > 0) text += `,"tags":${JSON.stringify(publication.tags)}`;
  return text + '}';
}

export function encodePublications(publications: readonly Publication[], binary: BinaryMode): string {
  let text = '[';
  for (let i = 0; i < publications.length; i++) {
    if (i > 0) text += ',';
    text += encodePublication(publications[i]!, binary);
  }
  return text + ']';
}

/**
 * Turns bytes from a `b64data` field into the stored form: JSON text when the bytes are
 * UTF-8 JSON (so JSON clients can receive them), the bytes otherwise.
 */
export function dataFromBytes(bytes: Uint8Array): string | Uint8Array {
  try {
    const text = decoder.decode(bytes);
    return JSON.stringify(JSON.parse(text));
  } catch {
    return bytes;
  }
}
