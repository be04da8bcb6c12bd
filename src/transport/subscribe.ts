/**
 * The subscribe flow shared by client subscriptions, token `channels` and server API
 * subscriptions: flags from the namespace, presence, recovery and positioning, and the
 * switch from buffered to live delivery once the reply is out.
 */
import { TokenError, type SubscriptionClaims } from '../auth/tokens.js';
import { historyEnabled, type ChannelName } from '../config/channels.js';
import { Disconnects, DisconnectError, Errors, RotorError } from '../protocol/codes.js';
import { encodePush } from '../protocol/client.js';
import { encodePublication, encodePublications } from '../protocol/json.js';
import type { HistoryResult, StreamPosition } from '../storage/history-store.js';
import { canReadPresence, namespaceAllowsSubscribe, userLimitedAllows } from './permissions.js';
import type { Session } from './session.js';
import { Subscription, type SubscriptionFlags } from './subscription.js';

export interface SubscribeRequest {
  readonly channel: string;
  /** The client resubscribes and wants what it missed after `offset` in `epoch`. */
  readonly recover: boolean;
  readonly offset: number;
  readonly epoch: string;
  /** The client asks for recovery and positioning, and for join/leave pushes. */
  readonly recoverable: boolean;
  readonly positioned: boolean;
  readonly joinLeave: boolean;
}

export interface Established {
  readonly subscription: Subscription;
  /** The SubscribeResult as JSON text. */
  readonly result: string;
  /** The stream top the client was positioned at; buffered publications up to it are dropped. */
  readonly top: number;
  /** The fields of a Subscribe push announcing this subscription, as JSON text. */
  readonly push: string;
}

/**
 * Decides whether a resubscribe recovered: the epoch matches and the history read covers
 * every offset from `since.offset + 1` to the top without a gap.
 */
export function recovered(since: StreamPosition, read: HistoryResult): boolean {
  if (since.epoch !== '' && since.epoch !== read.epoch) return false;
  const { publications } = read;
  if (publications.length === 0) return read.offset === since.offset;
  return publications[0]!.offset === since.offset + 1 && publications[publications.length - 1]!.offset === read.offset;
}

/**
 * Checks whether the session may subscribe to the channel as a client (Centrifugo v4
 * order: private channel, token, user-limited channel, namespace options, insecure mode)
 * and returns the verified subscription token claims, if a token was given.
 */
export async function authorizeClientSubscribe(session: Session, name: ChannelName, token: string): Promise<SubscriptionClaims | undefined> {
  const { config, tokens } = session.context;
  if (token !== '') {
    let claims: SubscriptionClaims;
    try {
      claims = await tokens.verifySubscription(token);
    } catch (err) {
      if (err instanceof TokenError && err.kind === 'expired') throw new RotorError(Errors.tokenExpired);
      session.logger.info({ channel: name.channel, detail: (err as Error).message }, 'invalid subscription token');
      throw new RotorError(Errors.permissionDenied, { detail: 'invalid subscription token' });
    }
    if (claims.channel !== name.channel) throw new DisconnectError(Disconnects.invalidToken, 'subscription token is for another channel');
    if (claims.user !== session.user) throw new DisconnectError(Disconnects.invalidToken, 'subscription token is for another user');
    if (claims.client !== undefined && claims.client !== session.id) {
      throw new DisconnectError(Disconnects.invalidToken, 'subscription token is for another connection');
    }
    return claims;
  }
  if (name.private) throw new RotorError(Errors.permissionDenied, { detail: 'private channel needs a subscription token' });
  if (userLimitedAllows(session, name) || namespaceAllowsSubscribe(config, session, name)) return undefined;
  throw new RotorError(Errors.permissionDenied);
}

function flagsFor(session: Session, name: ChannelName, request: SubscribeRequest, serverSide: boolean): SubscriptionFlags {
  const { options } = name;
  const history = historyEnabled(options);
  const recoverable = history && (options.force_recovery || (request.recoverable && options.allow_recovery));
  // NOTE: positioned subscribers get the stream position at subscribe time only. There is
  // no periodic position check, because one node delivers every publication in offset order.
  const positioned = history && (recoverable || options.force_positioning || (request.positioned && options.allow_positioning));
  const requestedJoinLeave = request.joinLeave && options.join_leave && canReadPresence(session.context.config, session, name, true);
  return {
    pushJoinLeave: options.force_push_join_leave || requestedJoinLeave,
    emitJoinLeave: options.join_leave,
    presence: options.presence,
    recoverable,
    positioned,
    serverSide,
  };
}

/**
 * Registers the subscription (buffering), adds presence, reads the stream position or the
 * missed publications, and returns the SubscribeResult. The caller sends the result, then
 * calls `deliverBuffered`, so the reply reaches the client before any publication.
 */
export async function establish(
  session: Session,
  name: ChannelName,
  request: SubscribeRequest,
  serverSide: boolean,
  claims: SubscriptionClaims | undefined,
): Promise<Established> {
  const { node, hub, config } = session.context;
  const flags = flagsFor(session, name, request, serverSide);
  const subscription = new Subscription(session, name, flags, claims?.info);
  const channel = name.channel;
  let fields = '';
  if (claims !== undefined && claims.expireAt > 0) {
    const ttl = Math.ceil(claims.expireAt - Date.now() / 1000);
    if (ttl <= 0) throw new RotorError(Errors.expired, { detail: 'subscription expiry is in the past' });
    subscription.expireAt = claims.expireAt;
    fields += `,"expires":true,"ttl":${ttl}`;
  }

  session.subscriptions.set(channel, subscription);
  hub.addSubscription(subscription);
  if (flags.presence) session.addPresence(subscription);

  let top = 0;
  let push = '';
  try {
    if (flags.positioned) {
      const wantsRecovery = request.recover && flags.recoverable;
      const read = wantsRecovery
        ? await node.scheduler.send({ type: 'recover', channel, offset: request.offset, limit: config.client_recovery_max_publication_limit })
        : await node.scheduler.send({ type: 'history', channel, limit: 0, reverse: false });
      top = read.offset;
      if (flags.recoverable) fields += ',"recoverable":true';
      fields += `,"epoch":${JSON.stringify(read.epoch)}`;
      push = `${flags.recoverable ? ',"recoverable":true' : ''},"epoch":${JSON.stringify(read.epoch)}${top > 0 ? `,"offset":${top}` : ''},"positioned":true`;
      if (wantsRecovery && recovered({ offset: request.offset, epoch: request.epoch }, read)) {
        if (read.publications.length > 0) fields += `,"publications":${encodePublications(read.publications, 'reject')}`;
        fields += ',"recovered":true';
        if (request.offset > 0) fields += `,"offset":${request.offset}`;
      } else if (top > 0) {
        fields += `,"offset":${top}`;
      }
      fields += ',"positioned":true';
    }
    if (subscription.removed) throw new RotorError(Errors.internal, { detail: 'unsubscribed while subscribing' });
  } catch (err) {
    session.dropSubscription(subscription, false);
    throw err;
  }
  if (request.recover) fields += ',"was_recovering":true';
  if (claims?.data !== undefined) {
    fields += `,"data":${claims.data}`;
    push += `,"data":${claims.data}`;
  }
  return { subscription, result: `{${fields.slice(1)}}`, top, push: `{${push.slice(1)}}` };
}

/** Sends what arrived while subscribing, switches to live delivery, and announces the join. */
export function deliverBuffered(session: Session, established: Established): void {
  const { subscription, top } = established;
  for (const publication of subscription.goLive(top)) {
    session.enqueue(encodePush(subscription.channel, 'pub', encodePublication(publication, 'reject')));
  }
  if (subscription.flags.emitJoinLeave) {
    session.context.hub.broadcastPresenceEvent(subscription.channel, 'join', subscription.clientInfo(session.connInfo));
  }
}
