/**
 * Server API methods that act on live connections: subscribe, unsubscribe, disconnect
 * and refresh. They find the user's connections on this node and return `{}`.
 */
import type { RotorNode } from '../node.js';
import { Disconnects, Errors, RotorError } from '../protocol/codes.js';
import { encodePush } from '../protocol/client.js';
import type { Hub } from '../transport/hub.js';
import type { Session } from '../transport/session.js';
import { scheduleSubscriptionExpiry } from '../transport/commands.js';
import { deliverBuffered, establish } from '../transport/subscribe.js';
import { asParams, readBool, readInt, readPosition, readRawJson, readString, readStrings, type Params } from './params.js';

/** Maximum close reason size in bytes: a close frame carries 125 payload bytes, 2 of them the code (RFC 6455). */
const MAX_CLOSE_REASON_BYTES = 123;

/** Cuts a close reason to MAX_CLOSE_REASON_BYTES of UTF-8 without splitting a character. */
function truncateCloseReason(reason: string): string {
  const bytes = Buffer.from(reason, 'utf8');
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return reason;
  let end = MAX_CLOSE_REASON_BYTES;
  // Continuation bytes are 10xxxxxx: step back to the first byte of the character at the cut.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

/** Returns the connected sessions of `user`, narrowed to one client id when `client` is set. */
function targets(node: RotorNode, params: Params): Session[] {
  const user = readString(params, 'user');
  const client = readString(params, 'client');
  const hub = node.hub as Hub<Session>;
  if (user === '' && client === '') throw new RotorError(Errors.badRequest, { detail: 'missing "user"' });
  const sessions = client !== '' ? [hub.client(client)].filter((session) => session !== undefined) : [...hub.userClients(user)];
  return sessions.filter((session) => session.state === 'connected' && (user === '' || session.user === user));
}

export const CONNECTION_METHODS = {
  async subscribe(node: RotorNode, params: Params): Promise<string> {
    const channel = readString(params, 'channel', true);
    const name = node.channels.resolve(channel);
    const since = readPosition(params, 'recover_since');
    const info = readRawJson(params, 'info');
    const data = readRawJson(params, 'data');
    const expireAt = readInt(params, 'expire_at', 0);
    const claims = { channel, user: '', expireAt, ...(info === undefined ? {} : { info }), ...(data === undefined ? {} : { data }) };
    await Promise.all(
      targets(node, params).map(async (session) => {
        if (session.subscriptions.has(channel)) return;
        const request = {
          channel,
          recover: since !== undefined,
          offset: since?.offset ?? 0,
          epoch: since?.epoch ?? '',
          recoverable: false,
          positioned: false,
          joinLeave: false,
        };
        const done = await establish(session, name, request, true, claims);
        if (session.state !== 'connected') return;
        session.enqueue(encodePush(channel, 'subscribe', done.push));
        deliverBuffered(session, done);
        scheduleSubscriptionExpiry(session, done.subscription);
      }),
    );
    return '{}';
  },

  async unsubscribe(node: RotorNode, params: Params): Promise<string> {
    const channel = readString(params, 'channel', true);
    for (const session of targets(node, params)) {
      const subscription = session.subscriptions.get(channel);
      if (subscription !== undefined) session.pushUnsubscribe(subscription, 2000, 'server unsubscribe');
    }
    return '{}';
  },

  async disconnect(node: RotorNode, params: Params): Promise<string> {
    const keep = new Set(readStrings(params, 'whitelist'));
    let reason = Disconnects.forceNoReconnect;
    if (params.disconnect !== undefined && params.disconnect !== null) {
      const custom = asParams(params.disconnect, '"disconnect"');
      const code = readInt(custom, 'code', reason.code);
      if (code < 3000 || code > 4999) throw new RotorError(Errors.badRequest, { detail: 'disconnect code must be from 3000 to 4999' });
      // ws throws from close() on a longer reason, and the connection would stay open.
      reason = { code, reason: truncateCloseReason(readString(custom, 'reason')) || reason.reason };
    }
    for (const session of targets(node, params)) {
      if (!keep.has(session.id)) session.disconnect(reason);
    }
    return '{}';
  },

  async refresh(node: RotorNode, params: Params): Promise<string> {
    const expired = readBool(params, 'expired');
    const expireAt = readInt(params, 'expire_at', -1);
    const info = readRawJson(params, 'info');
    for (const session of targets(node, params)) {
      if (expired) {
        session.disconnect(Disconnects.expired);
        continue;
      }
      if (info !== undefined) session.connInfo = info;
      if (expireAt >= 0) session.setExpiry(expireAt);
    }
    return '{}';
  },
} satisfies Record<string, (node: RotorNode, params: Params) => Promise<string>>;

