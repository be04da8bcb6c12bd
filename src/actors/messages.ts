/**
 * Messages between the main thread and the actor workers. Both sides import this file,
 * so a new command is one more member of each union and the compiler finds every
 * `switch` that must handle it.
 */
import type { Config } from '../config/options.js';
import type { ReplyError } from '../protocol/codes.js';
import type { ClientInfo, HistoryResult, NewPublication, StreamPosition } from '../storage/history-store.js';

/** Saves a publication to history (unless `skipHistory`) and returns its position. */
export interface PublishCommand extends NewPublication {
  readonly type: 'publish';
  readonly channel: string;
  readonly skipHistory?: boolean;
}

/** Reads history; `since.epoch` is checked and a mismatch is error 112. */
export interface HistoryCommand {
  readonly type: 'history';
  readonly channel: string;
  readonly limit: number;
  readonly since?: StreamPosition;
  readonly reverse: boolean;
}

/**
 * Reads the publications after `offset` for a resubscribing client, at most `limit`,
 * without checking the epoch: the caller compares it and decides whether recovery worked.
 */
export interface RecoverCommand {
  readonly type: 'recover';
  readonly channel: string;
  readonly offset: number;
  readonly limit: number;
}

export interface HistoryRemoveCommand {
  readonly type: 'history_remove';
  readonly channel: string;
}

/** Adds or refreshes a presence entry; it expires `ttl` ms later unless refreshed again. */
export interface PresenceAddCommand {
  readonly type: 'presence_add';
  readonly channel: string;
  readonly info: ClientInfo;
  readonly ttl: number;
}

export interface PresenceRemoveCommand {
  readonly type: 'presence_remove';
  readonly channel: string;
  readonly client: string;
}

export interface PresenceCommand {
  readonly type: 'presence';
  readonly channel: string;
}

export interface PresenceStatsCommand {
  readonly type: 'presence_stats';
  readonly channel: string;
}

export type ActorCommand =
  | PublishCommand
  | HistoryCommand
  | RecoverCommand
  | HistoryRemoveCommand
  | PresenceAddCommand
  | PresenceRemoveCommand
  | PresenceCommand
  | PresenceStatsCommand;

export interface PresenceStats {
  readonly num_clients: number;
  readonly num_users: number;
}

/** The value each command resolves to. */
export interface ActorResults {
  /** Offset 0 and an empty epoch when the publication was not saved to history. */
  publish: StreamPosition;
  history: HistoryResult;
  recover: HistoryResult;
  history_remove: null;
  presence_add: null;
  presence_remove: null;
  presence: Record<string, ClientInfo>;
  presence_stats: PresenceStats;
}

export type ResultOf<C extends ActorCommand> = ActorResults[C['type']];

/**
 * A command as it crosses the thread boundary. The structured clone writes every property
 * name of every object, so the most common command, a publish with only channel and data,
 * travels as the pair `[channel, data]`.
 */
export type WireCommand = ActorCommand | readonly [channel: string, data: string];

/** Encodes a command for the worker. */
export function toWire(command: ActorCommand): WireCommand {
  if (command.type === 'publish' && typeof command.data === 'string' && command.info === undefined && command.tags === undefined && !command.skipHistory) {
    return [command.channel, command.data];
  }
  return command;
}

/** Decodes a command in the worker. */
export function fromWire(command: WireCommand): ActorCommand {
  if (!Array.isArray(command)) return command as ActorCommand;
  return { type: 'publish', channel: command[0], data: command[1] };
}

/**
 * The outcome of a batch: commands fail independently. Kept flat, with no wrapper object
 * per command and no position object per publish, because every object here is cloned
 * across the thread boundary.
 */
export interface BatchReply {
  /**
   * The value of each command, in order: the offset for a publish, the ActorResults
   * value for the others, null where the command failed.
   */
  readonly values: unknown[];
  /** The epoch of each publish, by command index; '' for other commands. */
  readonly epochs: string[];
  /** The failed commands: their index in `values` and the reply error. */
  readonly errors: Array<readonly [number, ReplyError]>;
}

/** A piscina task: work for one shard, executed by the worker that owns the shard. */
export type WorkerTask =
  /** Runs the commands in order, in one storage transaction. Reply: BatchReply. */
  | { readonly type: 'batch'; readonly shard: number; readonly commands: readonly WireCommand[] }
  /** Deletes expired history and presence of the shard. Reply: null. */
  | { readonly type: 'sweep'; readonly shard: number }
  /** Closes the shard's storage before shutdown. Reply: null. */
  | { readonly type: 'close'; readonly shard: number };

export type WorkerReply = BatchReply | null;

/** Start-up data of every worker (piscina `workerData`). */
export interface WorkerData {
  readonly config: Config;
  /** Absolute path of the folder with one SQLite file per shard. */
  readonly dataDir: string;
}

/** Returns the shard of a channel: FNV-1a over the UTF-16 code units, so it never changes for a name. */
export function shardOf(channel: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < channel.length; i++) {
    hash ^= channel.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}
