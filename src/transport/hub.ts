import { encodePush } from '../protocol/client.js';
import { encodeClientInfo, encodePublication } from '../protocol/json.js';
import type { ClientInfo, Publication } from '../storage/history-store.js';
import type { Subscription } from './subscription.js';

/** A connection as the hub indexes it: by client id and by user. */
export interface HubClient {
  readonly id: string;
  readonly user: string;
}

/**
 * The index of local connections and subscribers, and fan-out. A publication is encoded
 * once and the same bytes go to every live subscriber of the channel.
 */
export class Hub<Client extends HubClient = HubClient> {
  private readonly channels = new Map<string, Set<Subscription>>();
  private readonly clients = new Map<string, Client>();
  private readonly users = new Map<string, Set<Client>>();
  private subscriptions = 0;

  addClient(client: Client): void {
    this.clients.set(client.id, client);
    let sessions = this.users.get(client.user);
    if (sessions === undefined) {
      sessions = new Set();
      this.users.set(client.user, sessions);
    }
    sessions.add(client);
  }

  removeClient(client: Client): void {
    if (!this.clients.delete(client.id)) return;
    const sessions = this.users.get(client.user);
    sessions?.delete(client);
    if (sessions?.size === 0) this.users.delete(client.user);
  }

  client(id: string): Client | undefined {
    return this.clients.get(id);
  }

  /** Returns the connections of a user on this node. */
  userClients(user: string): ReadonlySet<Client> {
    return this.users.get(user) ?? new Set();
  }

  allClients(): IterableIterator<Client> {
    return this.clients.values();
  }

  addSubscription(subscription: Subscription): void {
    let subscribers = this.channels.get(subscription.channel);
    if (subscribers === undefined) {
      subscribers = new Set();
      this.channels.set(subscription.channel, subscribers);
    }
    subscribers.add(subscription);
    this.subscriptions++;
  }

  removeSubscription(subscription: Subscription): void {
    subscription.removed = true;
    const subscribers = this.channels.get(subscription.channel);
    if (subscribers === undefined || !subscribers.delete(subscription)) return;
    this.subscriptions--;
    if (subscribers.size === 0) this.channels.delete(subscription.channel);
  }

  /** Delivers a publication to the channel's subscribers; those still subscribing buffer it. */
  broadcast(channel: string, publication: Publication): void {
    const subscribers = this.channels.get(channel);
    if (subscribers === undefined) return;
    let message: Buffer | undefined;
    let failure: unknown;
    for (const subscription of subscribers) {
      if (!subscription.live) {
        subscription.buffer?.push(publication);
        continue;
      }
      if (message === undefined && failure === undefined) {
        try {
          message = Buffer.from(encodePush(channel, 'pub', encodePublication(publication, 'reject')));
        } catch (err) {
          failure = err;
        }
      }
      if (message !== undefined) subscription.subscriber.enqueue(message);
      else subscription.subscriber.rejectMessage(failure);
    }
  }

  /** Sends a join or leave push to the subscribers of the channel that receive them. */
  broadcastPresenceEvent(channel: string, kind: 'join' | 'leave', info: ClientInfo): void {
    const subscribers = this.channels.get(channel);
    if (subscribers === undefined) return;
    let message: string | undefined;
    for (const subscription of subscribers) {
      if (!subscription.live || !subscription.flags.pushJoinLeave) continue;
      message ??= encodePush(channel, kind, `{"info":${encodeClientInfo(info)}}`);
      subscription.subscriber.enqueue(message);
    }
  }

  /** Channels with at least one local subscriber, with the number of subscribers. */
  channelCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [channel, subscribers] of this.channels) counts.set(channel, subscribers.size);
    return counts;
  }

  get numChannels(): number {
    return this.channels.size;
  }

  get numClients(): number {
    return this.clients.size;
  }

  /** Distinct users with a connection, the anonymous user included. */
  get numUsers(): number {
    return this.users.size;
  }

  get numSubscriptions(): number {
    return this.subscriptions;
  }
}
