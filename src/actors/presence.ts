import type { ClientInfo } from '../storage/history-store.js';
import type { PresenceStats } from './messages.js';

interface Entry {
  info: ClientInfo;
  expiresAt: number;
}

/**
 * Presence of the channels of one shard: client id to ClientInfo, with an expiry that
 * each refresh moves forward. Kept in worker memory only: after a worker is replaced,
 * entries come back with the next refresh of each connection.
 */
export class PresenceTable {
  private readonly channels = new Map<string, Map<string, Entry>>();

  add(channel: string, info: ClientInfo, ttl: number, now: number): void {
    let entries = this.channels.get(channel);
    if (entries === undefined) {
      entries = new Map();
      this.channels.set(channel, entries);
    }
    entries.set(info.client, { info, expiresAt: now + ttl });
  }

  remove(channel: string, client: string): void {
    const entries = this.channels.get(channel);
    if (entries === undefined) return;
    entries.delete(client);
    if (entries.size === 0) this.channels.delete(channel);
  }

  get(channel: string, now: number): Record<string, ClientInfo> {
    const presence: Record<string, ClientInfo> = {};
    for (const [client, entry] of this.live(channel, now)) presence[client] = entry.info;
    return presence;
  }

  stats(channel: string, now: number): PresenceStats {
    const users = new Set<string>();
    let clients = 0;
    for (const [, entry] of this.live(channel, now)) {
      clients++;
      users.add(entry.info.user);
    }
    return { num_clients: clients, num_users: users.size };
  }

  /** Deletes entries that were not refreshed in time. */
  sweep(now: number): void {
    for (const channel of this.channels.keys()) this.live(channel, now);
  }

  /** Returns the unexpired entries of a channel, deleting the expired ones on the way. */
  private live(channel: string, now: number): Map<string, Entry> {
    const entries = this.channels.get(channel);
    if (entries === undefined) return new Map();
    for (const [client, entry] of entries) {
      if (entry.expiresAt <= now) entries.delete(client);
    }
    if (entries.size === 0) this.channels.delete(channel);
    return entries;
  }
}
