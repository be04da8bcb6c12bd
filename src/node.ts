import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Scheduler } from './actors/scheduler.js';
import type { PresenceStats } from './actors/messages.js';
import { historyEnabled, type ChannelName, type ChannelResolver } from './config/channels.js';
import type { Config } from './config/options.js';
import type { Logger } from './log.js';
import { Errors, RotorError } from './protocol/codes.js';
import type { ClientInfo, HistoryQuery, HistoryResult, NewPublication, StreamPosition } from './storage/history-store.js';
import type { Hub } from './transport/hub.js';
import { VERSION } from './version.js';

export interface PublishOptions {
  /** Deliver without saving to history; the publication gets no offset. */
  readonly skipHistory?: boolean;
}

/**
 * The operations of one Rotor node, shared by the server API and client sessions:
 * validation that depends on channel options, routing to the channel actors, and
 * fan-out of what they return.
 */
export class RotorNode {
  readonly uid = randomUUID();
  readonly name: string;
  private readonly startedAt = Date.now();

  constructor(
    readonly config: Config,
    readonly channels: ChannelResolver,
    readonly scheduler: Scheduler,
    readonly hub: Hub,
    readonly logger: Logger,
    port: number,
  ) {
    this.name = config.name !== '' ? config.name : `${hostname()}_${port}`;
  }

  /**
   * Publishes into a channel and fans the publication out to local subscribers. With
   * history on, it resolves with the offset and epoch once the publication is committed.
   * Fan-out follows offset order, because the scheduler settles a shard's commands in
   * order and this callback is attached before the callback of any later command.
   */
  publish(channel: string, publication: NewPublication, options: PublishOptions = {}): Promise<StreamPosition> {
    let resolved: ChannelName;
    try {
      resolved = this.channels.resolve(channel);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!historyEnabled(resolved.options)) {
      this.hub.broadcast(channel, { ...publication, offset: 0 });
      return Promise.resolve({ offset: 0, epoch: '' });
    }
    const command = { type: 'publish', channel, ...publication, skipHistory: options.skipHistory } as const;
    return this.scheduler.send(command).then((position) => {
      this.hub.broadcast(channel, { ...publication, offset: position.offset });
      return position;
    });
  }

  /** Reads history; 108 when the channel's namespace keeps none. */
  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    this.requireHistory(channel);
    return this.scheduler.send({ type: 'history', channel, ...query });
  }

  async historyRemove(channel: string): Promise<void> {
    this.requireHistory(channel);
    await this.scheduler.send({ type: 'history_remove', channel });
  }

  async presence(channel: string): Promise<Record<string, ClientInfo>> {
    this.requirePresence(channel);
    return this.scheduler.send({ type: 'presence', channel });
  }

  async presenceStats(channel: string): Promise<PresenceStats> {
    this.requirePresence(channel);
    return this.scheduler.send({ type: 'presence_stats', channel });
  }

  /** Uptime in whole seconds. */
  get uptime(): number {
    return Math.floor((Date.now() - this.startedAt) / 1000);
  }

  get version(): string {
    return VERSION;
  }

  requireHistory(channel: string): ChannelName {
    const resolved = this.channels.resolve(channel);
    if (!historyEnabled(resolved.options)) throw new RotorError(Errors.notAvailable, { detail: 'history is off for this channel' });
    return resolved;
  }

  requirePresence(channel: string): ChannelName {
    const resolved = this.channels.resolve(channel);
    if (!resolved.options.presence) throw new RotorError(Errors.notAvailable, { detail: 'presence is off for this channel' });
    return resolved;
  }
}
