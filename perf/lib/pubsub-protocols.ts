/**
 * Facts about each server under test that the load client and its publisher use: the
 * publish route and body, the check of a publish response, and the marker that finds a
 * delivered publication in received text without parsing JSON.
 *
 * This file runs in the child processes too, so it imports nothing but Node built-ins.
 */

/** The servers the pub/sub benchmarks drive. */
export type ServerKind = 'rotor' | 'ws-reference' | 'nchan' | 'socketio';

/** The channel (or socket.io room, or nchan channel id) every benchmark uses. */
export const CHANNEL = 'bench';

/** Address of one server under test; plain data, so it crosses the IPC channel. */
export interface Target {
  readonly kind: ServerKind;
  /** Name used in printed results, for example "Rotor" or "nchan". */
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** The X-API-Key value for Rotor's server API. */
  readonly apiKey?: string;
}

/**
 * The payload's first key, which occurs exactly once per delivered publication with every
 * server. Rotor, nchan and the reference embed the payload verbatim, socket.io
 * re-serializes it with the same keys, and none of their framing contains these bytes.
 */
export const PUBLICATION_MARKER = '"ts":';

/** Size of every benchmark payload in bytes, as the JSON text the publisher sends. */
export const PAYLOAD_BYTES = 100;

/** Returns the current time in milliseconds on a clock that every process of the machine shares. */
export function sharedClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Builds a payload of `bytes` bytes (more when `bytes` is below about 50, the length
 * without padding): `{"ts":<send time in ms>,"seq":<n>,"pad":"xx…"}`. The send time comes
 * first so that receivers find it right after the marker.
 */
export function buildPayload(seq: number, bytes: number = PAYLOAD_BYTES): string {
  const head = `{"ts":${sharedClockMs().toFixed(3)},"seq":${seq},"pad":"`;
  const padding = Math.max(0, bytes - head.length - 2);
  return `${head}${'x'.repeat(padding)}"}`;
}

/** An HTTP request that publishes one payload into the benchmark channel. */
export interface PublishRequest {
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Returns the publish request for a server; each server has its own route and body shape. */
export function publishRequest(target: Target, payload: string): PublishRequest {
  switch (target.kind) {
    case 'rotor':
      return {
        path: '/api/publish',
        headers: { 'content-type': 'application/json', 'x-api-key': target.apiKey ?? '' },
        body: `{"channel":"${CHANNEL}","data":${payload}}`,
      };
    case 'nchan':
      return { path: `/pub/${CHANNEL}`, headers: { 'content-type': 'application/json' }, body: payload };
    case 'ws-reference':
    case 'socketio':
      return { path: '/publish', headers: { 'content-type': 'application/json' }, body: payload };
  }
}

/**
 * Checks a publish response. Rotor returns 200 with `{"result":…}`, and an API error is
 * also a 200, with `{"error":…}`. nchan returns 201 with subscribers present and 202
 * without. The two benchmark servers of this folder return 204.
 */
export function isPublishAccepted(kind: ServerKind, status: number, body: string): boolean {
  switch (kind) {
    case 'rotor':
      return status === 200 && body.startsWith('{"result"');
    case 'nchan':
      return status === 201 || status === 202;
    case 'ws-reference':
    case 'socketio':
      return status === 204;
  }
}

/** Counts the occurrences of `marker` in `data`. */
export function countOccurrences(data: Buffer, marker: Buffer): number {
  let count = 0;
  let from = data.indexOf(marker);
  while (from !== -1) {
    count++;
    from = data.indexOf(marker, from + marker.length);
  }
  return count;
}
