import { historyEnabled, type ChannelResolver } from '../config/channels.js';
import type { ChannelOptions, Config } from '../config/options.js';
import type { Logger } from '../log.js';
import { Errors, RotorError, type ReplyError } from '../protocol/codes.js';
import type { HistoryStore, StreamPolicy, StreamPosition } from '../storage/history-store.js';
import { fromWire, type ActorCommand, type BatchReply, type PublishCommand, type WireCommand } from './messages.js';
import { PresenceTable } from './presence.js';

/**
 * The channel actors of one shard, living in the worker that owns the shard. A batch of
 * commands runs in order inside one storage transaction. A command that fails with a
 * reply error fails alone. Any other error fails the whole batch and rolls it back.
 */
export class ShardActors {
  private readonly presence = new PresenceTable();
  /** History policy per namespace options; null for namespaces without history. */
  private readonly policies = new Map<ChannelOptions, StreamPolicy | null>();

  constructor(
    readonly shard: number,
    private readonly store: HistoryStore,
    private readonly config: Config,
    private readonly channels: ChannelResolver,
    private readonly logger: Logger,
  ) {}

  run(commands: readonly WireCommand[]): BatchReply {
    const now = Date.now();
    const values: unknown[] = new Array(commands.length);
    const epochs: string[] = new Array(commands.length).fill('');
    const errors: Array<readonly [number, ReplyError]> = [];
    try {
      this.store.batch(() => {
        for (let i = 0; i < commands.length; i++) {
          const command = fromWire(commands[i]!);
          try {
            if (command.type === 'publish') {
              const position = this.publish(command, now);
              values[i] = position.offset;
              epochs[i] = position.epoch;
            } else {
              values[i] = this.apply(command, now);
            }
          } catch (err) {
            if (!(err instanceof RotorError)) throw err;
            values[i] = null;
            errors.push([i, err.reply]);
          }
        }
      });
    } catch (err) {
      this.logger.error({ err, shard: this.shard, commands: commands.length }, 'actor batch failed');
      return { values: values.fill(null), epochs: epochs.fill(''), errors: commands.map((_, i) => [i, Errors.internal] as const) };
    }
    return { values, epochs, errors };
  }

  sweep(): void {
    const now = Date.now();
    this.presence.sweep(now);
    this.store.sweep(now);
  }

  close(): void {
    this.store.close();
  }

  private apply(command: ActorCommand, now: number): unknown {
    switch (command.type) {
      case 'publish':
        return this.publish(command, now);
      case 'history':
        return this.store.history(command.channel, command, this.requirePolicy(command.channel), now);
      case 'recover': {
        const query = { limit: command.limit, since: { offset: command.offset, epoch: '' }, reverse: false };
        return this.store.history(command.channel, query, this.requirePolicy(command.channel), now);
      }
      case 'history_remove':
        this.store.removeHistory(command.channel, now);
        return null;
      case 'presence_add':
        this.presence.add(command.channel, command.info, command.ttl, now);
        return null;
      case 'presence_remove':
        this.presence.remove(command.channel, command.client);
        return null;
      case 'presence':
        return this.presence.get(command.channel, now);
      case 'presence_stats':
        return this.presence.stats(command.channel, now);
    }
  }

  private publish(command: PublishCommand, now: number): StreamPosition {
    const policy = this.policy(command.channel);
    if (policy === undefined || command.skipHistory) return { offset: 0, epoch: '' };
    return this.store.publish(command.channel, command, policy, now);
  }

  /** Returns the history policy of a channel, or undefined when its namespace keeps no history. */
  private policy(channel: string): StreamPolicy | undefined {
    const { options } = this.channels.resolve(channel);
    let policy = this.policies.get(options);
    if (policy === undefined) {
      policy = historyEnabled(options) ? { size: options.history_size, ttl: options.history_ttl, metaTtl: this.config.history_meta_ttl } : null;
      this.policies.set(options, policy);
    }
    return policy ?? undefined;
  }

  private requirePolicy(channel: string): StreamPolicy {
    const policy = this.policy(channel);
    if (policy === undefined) throw new RotorError(Errors.notAvailable, { detail: 'history is off for this channel' });
    return policy;
  }
}
