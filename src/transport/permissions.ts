/**
 * Channel permissions from namespace options (Centrifugo v4/v5 names). The subscription
 * token and user-limited rules are applied by the subscribe flow before these.
 */
import type { ChannelName } from '../config/channels.js';
import type { Config } from '../config/options.js';

export interface Actor {
  /** '' for anonymous connections. */
  readonly user: string;
}

/** Rule 5 of the subscribe order: the namespace lets clients (and maybe anonymous ones) subscribe. */
export function namespaceAllowsSubscribe(config: Config, actor: Actor, name: ChannelName): boolean {
  if (config.client_insecure) return true;
  const { options } = name;
  return options.allow_subscribe_for_client && (actor.user !== '' || options.allow_subscribe_for_anonymous);
}

/** True when `name` is a user-limited channel that lists the actor's user. */
export function userLimitedAllows(actor: Actor, name: ChannelName): boolean {
  return name.options.allow_user_limited_channels && name.users !== undefined && actor.user !== '' && name.users.includes(actor.user);
}

function allowed(config: Config, actor: Actor, subscribed: boolean, forClient: boolean, forSubscriber: boolean, forAnonymous: boolean): boolean {
  if (config.client_insecure) return true;
  if (!forClient && !(forSubscriber && subscribed)) return false;
  return actor.user !== '' || forAnonymous;
}

export function canPublish(config: Config, actor: Actor, name: ChannelName, subscribed: boolean): boolean {
  const o = name.options;
  return allowed(config, actor, subscribed, o.allow_publish_for_client, o.allow_publish_for_subscriber, o.allow_publish_for_anonymous);
}

export function canReadHistory(config: Config, actor: Actor, name: ChannelName, subscribed: boolean): boolean {
  const o = name.options;
  return allowed(config, actor, subscribed, o.allow_history_for_client, o.allow_history_for_subscriber, o.allow_history_for_anonymous);
}

export function canReadPresence(config: Config, actor: Actor, name: ChannelName, subscribed: boolean): boolean {
  const o = name.options;
  return allowed(config, actor, subscribed, o.allow_presence_for_client, o.allow_presence_for_subscriber, o.allow_presence_for_anonymous);
}
