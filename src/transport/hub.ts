import { encodePublication } from '../protocol/json.js';
import type { Publication } from '../storage/history-store.js';

/**
 * The index of local subscribers by channel, and fan-out. A publication is encoded once
 * and the same bytes go to every subscriber.
 */
export class Hub {
  private readonly channels = new Map<string, Set<unknown>>();

  broadcast(channel: string, publication: Publication, _epoch: string): void {
    const subscribers = this.channels.get(channel);
    if (subscribers === undefined || subscribers.size === 0) return;
    encodePublication(publication, 'reject');
  }

  /** Channels with at least one local subscriber, with the subscriber count. */
  channelCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [channel, subscribers] of this.channels) counts.set(channel, subscribers.size);
    return counts;
  }

  get numChannels(): number {
    return this.channels.size;
  }

  get numClients(): number {
    return 0;
  }

  get numUsers(): number {
    return 0;
  }

  get numSubscriptions(): number {
    return 0;
  }
}
