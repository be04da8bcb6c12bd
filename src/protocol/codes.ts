/**
 * The code tables of the Centrifugo client protocol (v2) and the server API.
 * Reply errors keep the connection open; disconnects close it with a code that decides
 * whether the client reconnects (3000-3499 and 4000-4499 reconnect, 3500-3999 and
 * 4500-4999 are terminal).
 */

/** A reply error as it travels on the wire: `{"code":103,"message":"permission denied"}`. */
export interface ReplyError {
  readonly code: number;
  readonly message: string;
  readonly temporary?: boolean;
}

function replyError(code: number, message: string, temporary = false): ReplyError {
  return Object.freeze(temporary ? { code, message, temporary } : { code, message });
}

/** Reply error codes shared by the client protocol and the server API. */
export const Errors = Object.freeze({
  internal: replyError(100, 'internal server error', true),
  unauthorized: replyError(101, 'unauthorized'),
  unknownChannel: replyError(102, 'unknown channel'),
  permissionDenied: replyError(103, 'permission denied'),
  methodNotFound: replyError(104, 'method not found'),
  alreadySubscribed: replyError(105, 'already subscribed'),
  limitExceeded: replyError(106, 'limit exceeded'),
  badRequest: replyError(107, 'bad request'),
  notAvailable: replyError(108, 'not available'),
  tokenExpired: replyError(109, 'token expired'),
  expired: replyError(110, 'expired'),
  tooManyRequests: replyError(111, 'too many requests', true),
  unrecoverablePosition: replyError(112, 'unrecoverable position'),
});

/** A disconnect: the close code and reason sent in the WebSocket close frame. */
export interface Disconnect {
  readonly code: number;
  readonly reason: string;
}

function disconnect(code: number, reason: string): Disconnect {
  return Object.freeze({ code, reason });
}

/** Disconnect codes of the v2 protocol. */
export const Disconnects = Object.freeze({
  shutdown: disconnect(3001, 'shutdown'),
  internal: disconnect(3004, 'internal server error'),
  expired: disconnect(3005, 'connection expired'),
  subExpired: disconnect(3006, 'subscription expired'),
  slow: disconnect(3008, 'slow'),
  writeError: disconnect(3009, 'write error'),
  insufficientState: disconnect(3010, 'insufficient state'),
  forceReconnect: disconnect(3011, 'force reconnect'),
  noPong: disconnect(3012, 'no pong'),
  tooManyRequests: disconnect(3013, 'too many requests'),
  invalidToken: disconnect(3500, 'invalid token'),
  badRequest: disconnect(3501, 'bad request'),
  stale: disconnect(3502, 'stale'),
  forceNoReconnect: disconnect(3503, 'force disconnect'),
  connectionLimit: disconnect(3504, 'connection limit'),
  channelLimit: disconnect(3505, 'channel limit'),
  inappropriateProtocol: disconnect(3506, 'inappropriate protocol'),
  permissionDenied: disconnect(3507, 'permission denied'),
  notAvailable: disconnect(3508, 'not available'),
  tooManyErrors: disconnect(3509, 'too many errors'),
});

/** Unsubscribe push codes: below 2500 the client stays unsubscribed, from 2500 it resubscribes. */
export const Unsubscribes = Object.freeze({
  server: disconnect(2000, 'server unsubscribe'),
  insufficientState: disconnect(2500, 'insufficient state'),
  expired: disconnect(2501, 'subscription expired'),
});

/**
 * An error that carries a reply error code. Internal failures are wrapped in it with
 * `cause` so the transport edge can log the cause and send only the code.
 */
export class RotorError extends Error {
  readonly reply: ReplyError;

  constructor(reply: ReplyError, options?: { cause?: unknown; detail?: string }) {
    super(options?.detail ? `${reply.message}: ${options.detail}` : reply.message, options);
    this.name = 'RotorError';
    this.reply = reply;
  }
}

/** A protocol violation that ends the connection with the given disconnect. */
export class DisconnectError extends Error {
  readonly disconnect: Disconnect;

  constructor(reason: Disconnect, detail?: string) {
    super(detail ? `${reason.reason}: ${detail}` : reason.reason);
    this.name = 'DisconnectError';
    this.disconnect = reason;
  }
}

/** Maps any thrown value to the reply error a client or API caller may see. */
export function toReplyError(err: unknown): ReplyError {
  if (err instanceof RotorError) return err.reply;
  return Errors.internal;
}

/** HTTP status for an API error in the transport error mode. */
export function httpStatusOf(code: number): number {
  switch (code) {
    case 100:
      return 500;
    case 101:
      return 401;
    case 102:
    case 104:
      return 404;
    case 107:
    case 108:
      return 400;
    case 112:
      return 416;
    case 113:
      return 409;
    default:
      return 400;
  }
}
