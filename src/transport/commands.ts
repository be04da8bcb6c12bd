/**
 * Handlers of the client protocol commands. Each either replies through the session,
 * throws RotorError (sent as a reply error, the connection stays) or throws
 * DisconnectError (the connection closes with that code).
 */
import { TokenError, type ConnectionClaims } from '../auth/tokens.js';
import { asParams, readBool, readInt, readPosition, readString, type Params } from '../api/params.js';
import { historyEnabled, type ChannelName } from '../config/channels.js';
import { DisconnectError, Disconnects, Errors, RotorError } from '../protocol/codes.js';
import type { ClientCommand } from '../protocol/client.js';
import { encodeClientInfo, encodePublications } from '../protocol/json.js';
import { canPublish, canReadHistory, canReadPresence } from './permissions.js';
import type { Session } from './session.js';
import { authorizeClientSubscribe, deliverBuffered, establish, type Established, type SubscribeRequest } from './subscribe.js';
import type { Subscription } from './subscription.js';

function badRequest(detail: string): DisconnectError {
  return new DisconnectError(Disconnects.badRequest, detail);
}

function nowSeconds(): number {
  return Date.now() / 1000;
}

/** Seconds from now until `expireAt`, at least 1. */
function ttlOf(expireAt: number): number {
  return Math.max(1, Math.ceil(expireAt - nowSeconds()));
}

function requireChannel(params: Params): string {
  const channel = readString(params, 'channel');
  if (channel === '') throw badRequest('empty channel');
  return channel;
}

/** Runs one command; returns a promise only for commands that wait for something. */
export function handleCommand(session: Session, command: ClientCommand): Promise<void> | void {
  const { id, method, params } = command;
  if (session.state === 'connecting') {
    if (method !== 'connect') throw badRequest('first command must be connect');
    if (id === 0) throw badRequest('connect without id');
    return connect(session, id, params);
  }
  if (method === undefined) {
    if (id !== 0) throw badRequest('command without a method');
    session.pong();
    return;
  }
  if (method === 'send') throw new DisconnectError(Disconnects.notAvailable, 'no message handler');
  if (id === 0) throw badRequest(`${method} without id`);
  switch (method) {
    case 'connect':
      throw badRequest('already connected');
    case 'subscribe':
      return subscribe(session, id, params);
    case 'unsubscribe':
      return unsubscribe(session, id, params);
    case 'publish':
      return publish(session, id, params);
    case 'history':
      return history(session, id, params);
    case 'presence':
      return presence(session, id, params);
    case 'presence_stats':
      return presenceStats(session, id, params);
    case 'refresh':
      return refresh(session, id, params);
    case 'sub_refresh':
      return subRefresh(session, id, params);
    case 'ping':
    case 'rpc':
      throw new RotorError(Errors.notAvailable);
  }
}

/** Returns the personal channel of a user (`#42`, or `personal:#42` with a namespace). */
function personalChannel(session: Session): string | undefined {
  const config = session.context.config;
  if (!config.user_subscribe_to_personal || session.user === '') return undefined;
  const namespace = config.user_personal_channel_namespace;
  const prefix = namespace === '' ? '' : namespace + config.channel_namespace_boundary;
  return prefix + config.channel_user_boundary + session.user;
}

async function connect(session: Session, id: number, params: Params): Promise<void> {
  const { config, tokens, hub, node } = session.context;
  const token = readString(params, 'token');
  let claims: ConnectionClaims;
  if (token !== '') {
    try {
      claims = await tokens.verifyConnection(token);
    } catch (err) {
      if (err instanceof TokenError && err.kind === 'expired') throw new RotorError(Errors.tokenExpired);
      throw err;
    }
  } else if (config.client_insecure || config.allow_anonymous_connect_without_token) {
    claims = { user: '', expireAt: 0, channels: [] };
  } else {
    throw badRequest('client credentials not found');
  }
  // Insecure mode never expires connections.
  const expireAt = config.client_insecure ? 0 : claims.expireAt;
  if (expireAt > 0 && expireAt <= nowSeconds()) throw new RotorError(Errors.expired, { detail: 'connection expiry is in the past' });
  const limit = config.client_user_connection_limit;
  if (limit > 0 && claims.user !== '' && hub.userClients(claims.user).size >= limit) throw new DisconnectError(Disconnects.connectionLimit);
  session.authenticate({ user: claims.user, info: claims.info, expireAt });

  const channels = [...claims.channels];
  const personal = personalChannel(session);
  if (personal !== undefined && !channels.includes(personal)) channels.push(personal);
  if (config.client_channel_limit > 0 && channels.length > config.client_channel_limit) throw new DisconnectError(Disconnects.channelLimit);
  const names = channels.map((channel) => node.channels.resolve(channel));
  const recoveries = params.subs === undefined || params.subs === null ? {} : asParams(params.subs, '"subs"');

  const established: Array<[string, Established]> = [];
  for (const name of names) {
    const recovery = recoveries[name.channel] === undefined ? {} : asParams(recoveries[name.channel], `"subs.${name.channel}"`);
    const request: SubscribeRequest = {
      channel: name.channel,
      recover: readBool(recovery, 'recover'),
      offset: readInt(recovery, 'offset', 0),
      epoch: readString(recovery, 'epoch'),
      recoverable: false,
      positioned: false,
      joinLeave: false,
    };
    try {
      established.push([name.channel, await establish(session, name, request, true, undefined)]);
    } catch (err) {
      for (const [, done] of established) session.dropSubscription(done.subscription, false);
      throw err;
    }
    if (session.state === 'closed') return;
  }

  session.markConnected();
  let result = `{"client":${JSON.stringify(session.id)},"version":${JSON.stringify(node.version)}`;
  if (expireAt > 0) result += `,"expires":true,"ttl":${ttlOf(expireAt)}`;
  if (established.length > 0) {
    result += `,"subs":{${established.map(([channel, done]) => `${JSON.stringify(channel)}:${done.result}`).join(',')}}`;
  }
  result += `,"ping":${Math.round(config.ping_interval / 1000)},"pong":true}`;
  session.reply(id, 'connect', result);
  for (const [, done] of established) deliverBuffered(session, done);
  if (session.context.logger.isLevelEnabled('debug')) session.logger.debug({ user: session.user, channels: established.length }, 'client connected');
}

/** Schedules the end of a subscription whose token expires, unless sub_refresh extends it. */
function scheduleSubscriptionExpiry(session: Session, subscription: Subscription): void {
  const { wheel, config } = session.context;
  wheel.cancel(subscription.expiryTimer);
  subscription.expiryTimer = undefined;
  if (subscription.expireAt === 0) return;
  const delay = subscription.expireAt * 1000 - Date.now() + config.client_expired_sub_close_delay;
  subscription.expiryTimer = session.context.wheel.schedule(delay, endExpiredSubscription, subscription);
}

function endExpiredSubscription(subscription: Subscription): void {
  subscription.expiryTimer = undefined;
  if (subscription.removed || subscription.expireAt === 0 || subscription.expireAt > nowSeconds()) return;
  const session = subscription.subscriber as Session;
  if (subscription.flags.serverSide) session.disconnect(Disconnects.subExpired);
  else session.pushUnsubscribe(subscription, 2501, 'subscription expired');
}

async function subscribe(session: Session, id: number, params: Params): Promise<void> {
  const { node, config } = session.context;
  const channel = requireChannel(params);
  const name = node.channels.resolve(channel);
  const checkLimits = (): void => {
    if (session.subscriptions.has(channel)) throw new RotorError(Errors.alreadySubscribed);
    if (config.client_channel_limit > 0 && session.subscriptions.size >= config.client_channel_limit) throw new RotorError(Errors.limitExceeded);
  };
  checkLimits();
  const claims = await authorizeClientSubscribe(session, name, readString(params, 'token'));
  if (session.state !== 'connected') return;
  // A server API subscribe may have added the channel while the token was verified.
  checkLimits();
  const request: SubscribeRequest = {
    channel,
    recover: readBool(params, 'recover'),
    offset: readInt(params, 'offset', 0),
    epoch: readString(params, 'epoch'),
    recoverable: readBool(params, 'recoverable'),
    positioned: readBool(params, 'positioned'),
    joinLeave: readBool(params, 'join_leave'),
  };
  const done = await establish(session, name, request, false, claims);
  if (session.state !== 'connected') return;
  session.reply(id, 'subscribe', done.result);
  deliverBuffered(session, done);
  scheduleSubscriptionExpiry(session, done.subscription);
}

function unsubscribe(session: Session, id: number, params: Params): void {
  const channel = requireChannel(params);
  const subscription = session.subscriptions.get(channel);
  if (subscription !== undefined) session.dropSubscription(subscription, true);
  session.reply(id, 'unsubscribe', '{}');
}

/** Returns the channel's resolved name and whether this session is a live subscriber of it. */
function channelOf(session: Session, params: Params): { name: ChannelName; subscribed: boolean } {
  const channel = requireChannel(params);
  const name = session.context.node.channels.resolve(channel);
  return { name, subscribed: session.subscriptions.get(channel)?.live === true };
}

async function publish(session: Session, id: number, params: Params): Promise<void> {
  const { config, node } = session.context;
  const { name, subscribed } = channelOf(session, params);
  if (params.data === undefined || params.data === null) throw badRequest('publish without data');
  if (!canPublish(config, session, name, subscribed)) throw new RotorError(Errors.permissionDenied);
  const subscription = session.subscriptions.get(name.channel);
  const info = subscription !== undefined ? subscription.clientInfo(session.connInfo) : { user: session.user, client: session.id, ...(session.connInfo === undefined ? {} : { conn_info: session.connInfo }) };
  await node.publish(name.channel, { data: JSON.stringify(params.data), info });
  session.reply(id, 'publish', '{}');
}

async function history(session: Session, id: number, params: Params): Promise<void> {
  const { config, node } = session.context;
  const { name, subscribed } = channelOf(session, params);
  if (!historyEnabled(name.options)) throw new RotorError(Errors.notAvailable);
  if (!canReadHistory(config, session, name, subscribed)) throw new RotorError(Errors.permissionDenied);
  const max = config.client_history_max_publication_limit;
  let limit = readInt(params, 'limit', 0);
  if (max > 0 && (limit < 0 || limit > max)) limit = max;
  const since = readPosition(params, 'since');
  const result = await node.history(name.channel, { limit, reverse: readBool(params, 'reverse'), ...(since === undefined ? {} : { since }) });
  const publications = encodePublications(result.publications, 'reject');
  session.reply(id, 'history', `{"publications":${publications},"epoch":${JSON.stringify(result.epoch)},"offset":${result.offset}}`);
}

async function presence(session: Session, id: number, params: Params): Promise<void> {
  const { config, node } = session.context;
  const { name, subscribed } = channelOf(session, params);
  if (!name.options.presence) throw new RotorError(Errors.notAvailable);
  if (!canReadPresence(config, session, name, subscribed)) throw new RotorError(Errors.permissionDenied);
  const entries = Object.entries(await node.presence(name.channel)).map(([client, info]) => `${JSON.stringify(client)}:${encodeClientInfo(info)}`);
  session.reply(id, 'presence', `{"presence":{${entries.join(',')}}}`);
}

async function presenceStats(session: Session, id: number, params: Params): Promise<void> {
  const { config, node } = session.context;
  const { name, subscribed } = channelOf(session, params);
  if (!name.options.presence) throw new RotorError(Errors.notAvailable);
  if (!canReadPresence(config, session, name, subscribed)) throw new RotorError(Errors.permissionDenied);
  session.reply(id, 'presence_stats', JSON.stringify(await node.presenceStats(name.channel)));
}

async function refresh(session: Session, id: number, params: Params): Promise<void> {
  const { tokens, node } = session.context;
  if (session.expireAt === 0) throw badRequest('refresh for a connection that does not expire');
  const token = readString(params, 'token');
  if (token === '') throw badRequest('refresh without token');
  let claims: ConnectionClaims;
  try {
    claims = await tokens.verifyConnection(token);
  } catch (err) {
    if (err instanceof TokenError && err.kind === 'expired') throw new DisconnectError(Disconnects.expired, 'refresh token expired');
    throw err;
  }
  if (claims.user !== session.user) throw new DisconnectError(Disconnects.invalidToken, 'refresh token is for another user');
  if (claims.expireAt > 0 && claims.expireAt <= nowSeconds()) throw new DisconnectError(Disconnects.expired, 'refresh token expiry is in the past');
  if (session.state !== 'connected') return;
  if (claims.info !== undefined) session.connInfo = claims.info;
  session.setExpiry(claims.expireAt);
  let result = `{"client":${JSON.stringify(session.id)},"version":${JSON.stringify(node.version)}`;
  if (claims.expireAt > 0) result += `,"expires":true,"ttl":${ttlOf(claims.expireAt)}`;
  session.reply(id, 'refresh', result + '}');
}

async function subRefresh(session: Session, id: number, params: Params): Promise<void> {
  const { tokens } = session.context;
  const channel = requireChannel(params);
  const subscription = session.subscriptions.get(channel);
  if (subscription === undefined) throw new RotorError(Errors.permissionDenied, { detail: 'not subscribed' });
  const token = readString(params, 'token');
  if (token === '') throw new RotorError(Errors.badRequest, { detail: 'sub_refresh without token' });
  let claims;
  try {
    claims = await tokens.verifySubscription(token);
  } catch (err) {
    if (err instanceof TokenError && err.kind === 'expired') throw new RotorError(Errors.tokenExpired);
    throw err;
  }
  if (claims.channel !== channel || claims.user !== session.user || (claims.client !== undefined && claims.client !== session.id)) {
    throw new DisconnectError(Disconnects.invalidToken, 'subscription token does not match the subscription');
  }
  if (claims.expireAt > 0 && claims.expireAt <= nowSeconds()) throw new RotorError(Errors.expired);
  subscription.expireAt = claims.expireAt;
  scheduleSubscriptionExpiry(session, subscription);
  session.reply(id, 'sub_refresh', claims.expireAt > 0 ? `{"expires":true,"ttl":${ttlOf(claims.expireAt)}}` : '{}');
}

export { scheduleSubscriptionExpiry };
