import { historyEnabled, type ChannelResolver } from '../config/channels.js';
import type { Config } from '../config/options.js';
import type { Logger } from '../log.js';
import { Errors, RotorError } from '../protocol/codes.js';
import type { HistoryStore, StreamPolicy } from '../storage/history-store.js';
import type { ActorCommand, CommandOutcome } from './messages.js';
import { PresenceTable } from './presence.js';

/**
 * The channel actors of one shard, living in the worker that owns the shard. A batch of
 * commands runs in order inside one storage transaction. A command that fails with a
 * reply error fails alone. Any other error fails the whole batch and rolls it back.
 */
export class ShardActors {
  private readonly presence = new PresenceTable();

  constructor(
    readonly shard: number,
    private readonly store: HistoryStore,
    private readonly config: Config,
    private readonly channels: ChannelResolver,
    private readonly logger: Logger,
  ) {}

  run(commands: readonly ActorCommand[]): CommandOutcome[] {
    const now = Date.now();
    try {
      return this.store.batch(() => commands.map((command) => this.execute(command, now)));
    } catch (err) {
      this.logger.error({ err, shard: this.shard, commands: commands.length }, 'actor batch failed');
      return commands.map(() => ({ ok: false, error: Errors.internal }));
    }
  }

  sweep(): void {
    const now = Date.now();
    this.presence.sweep(now);
    this.store.sweep(now);
  }

  close(): void {
    this.store.close();
  }

  private execute(command: ActorCommand, now: number): CommandOutcome {
    try {
      return { ok: true, value: this.apply(command, now) };
    } catch (err) {
      if (err instanceof RotorError) return { ok: false, error: err.reply };
      throw err;
    }
  }

  private apply(command: ActorCommand, now: number): unknown {
    switch (command.type) {
      case 'publish': {
        const policy = this.policy(command.channel);
        if (policy === undefined || command.skipHistory) return { offset: 0, epoch: '' };
        const { data, info, tags } = command;
        return this.store.publish(command.channel, { data, info, tags }, policy, now);
      }
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

  /** Returns the history policy of a channel, or undefined when its namespace keeps no history. */
  private policy(channel: string): StreamPolicy | undefined {
    const { options } = this.channels.resolve(channel);
    if (!historyEnabled(options)) return undefined;
    return { size: options.history_size, ttl: options.history_ttl, metaTtl: this.config.history_meta_ttl };
  }

  private requirePolicy(channel: string): StreamPolicy {
    const policy = this.policy(channel);
    if (policy === undefined) throw new RotorError(Errors.notAvailable, { detail: 'history is off for this channel' });
    return policy;
  }
}
