import { randomBytes } from 'node:crypto';
import { Errors, RotorError } from '../protocol/codes.js';
import type {
  HistoryQuery,
  HistoryResult,
  HistoryStore,
  NewPublication,
  Publication,
  StreamPolicy,
  StreamPosition,
} from './history-store.js';

/** Stream metadata as stored. Offsets up to `floor` are gone; `floor + 1 .. top` may be retained. */
export interface StreamState {
  /** Storage key of the stream (a row id in SQLite). */
  id: number;
  epoch: string;
  top: number;
  floor: number;
  /** When the retained publications expire (unix ms). */
  expiresAt: number;
  /** When the stream itself expires (unix ms); 0 never. */
  metaExpiresAt: number;
  /** Offset through which rows were deleted in this process; not stored, 0 after loading. */
  trimmedThrough: number;
}

/** Publications to read: offsets in `(after, upTo]`, at most `limit` (negative: all), newest first when `reverse`. */
export interface RowRange {
  readonly after: number;
  readonly upTo: number;
  readonly limit: number;
  readonly reverse: boolean;
}

type UndoLog = Map<string, { live: StreamState; snapshot: StreamState } | null>;

const EPOCH_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** Returns a random 8-character epoch. */
export function newEpoch(): string {
  const bytes = randomBytes(8);
  let epoch = '';
  for (const byte of bytes) epoch += EPOCH_ALPHABET[byte % EPOCH_ALPHABET.length];
  return epoch;
}

/**
 * Computes the offsets a history query reads, or throws RotorError 107 or 112 as the
 * Centrifugo history call does. Returns undefined when the query reads nothing.
 */
export function historyRange(stream: StreamPosition & { floor: number }, query: HistoryQuery): RowRange | undefined {
  const { since, reverse, limit } = query;
  if (since !== undefined) {
    if (reverse && since.offset === 0) throw new RotorError(Errors.badRequest, { detail: 'reverse history needs since.offset > 0' });
    if (since.epoch !== '' && since.epoch !== stream.epoch) throw new RotorError(Errors.unrecoverablePosition);
  }
  if (limit === 0) return undefined;
  let after = stream.floor;
  let upTo = stream.offset;
  if (since !== undefined) {
    if (reverse) upTo = Math.min(upTo, since.offset - 1);
    else after = Math.max(after, since.offset);
  }
  if (upTo <= after) return undefined;
  return { after, upTo, limit, reverse };
}

/**
 * The stream semantics of HistoryStore over a small set of storage primitives, shared by
 * the SQLite and memory stores. Stream metadata is cached in memory, so a publish costs
 * one row write. Changes made inside `batch` are undone in the cache if the batch fails.
 */
export abstract class StreamStore implements HistoryStore {
  private readonly streams = new Map<string, StreamState | null>();
  /** Cache entries as they were before the running batch changed them; null when absent. */
  private undo: UndoLog | undefined;
  /** Streams whose metadata the running batch changed, written once at its end. */
  private readonly changed = new Map<string, StreamState>();
  /** Streams whose floor rose in the running batch, with the floor their rows were last deleted through. */
  private readonly trimmed = new Map<string, StreamState>();

  protected abstract loadStream(channel: string): StreamState | undefined;
  /** Inserts or updates the metadata row; sets `id` of a new stream. */
  protected abstract saveStream(channel: string, stream: StreamState): void;
  /** Deletes the metadata and every publication of a stream. */
  protected abstract deleteStream(channel: string, stream: StreamState): void;
  protected abstract appendRow(stream: StreamState, offset: number, publication: NewPublication): void;
  /** Deletes the publications with offsets up to `offset`. */
  protected abstract deleteRows(stream: StreamState, offset: number): void;
  protected abstract readRows(stream: StreamState, range: RowRange): Publication[];
  protected abstract atomically<T>(fn: () => T): T;
  /** Returns the channels whose stream or publications expired at `now`. */
  protected abstract expiredChannels(now: number): string[];
  abstract close(): void;

  batch<T>(fn: () => T): T {
    if (this.undo !== undefined) return fn();
    const undo: UndoLog = new Map();
    this.undo = undo;
    try {
      const result = this.atomically(() => {
        const value = fn();
        this.flush();
        return value;
      });
      this.undo = undefined;
      return result;
    } catch (err) {
      for (const [channel, saved] of undo) {
        if (saved === null) {
          this.streams.delete(channel);
          continue;
        }
        // Restored in place, because the memory store shares these objects.
        Object.assign(saved.live, saved.snapshot);
        this.streams.set(channel, saved.live);
      }
      this.undo = undefined;
      this.changed.clear();
      this.trimmed.clear();
      throw err;
    }
  }

  publish(channel: string, publication: NewPublication, policy: StreamPolicy, now: number): StreamPosition {
    // Inside a batch (the actors' usual case) no closure is needed: this is the hot path.
    if (this.undo !== undefined) return this.append(channel, publication, policy, now);
    return this.batch(() => this.append(channel, publication, policy, now));
  }

  private append(channel: string, publication: NewPublication, policy: StreamPolicy, now: number): StreamPosition {
    const stream = this.writable(channel, this.open(channel, now, true)!);
    stream.top += 1;
    stream.expiresAt = now + policy.ttl;
    if (policy.metaTtl > 0) stream.metaExpiresAt = now + policy.metaTtl;
    this.appendRow(stream, stream.top, publication);
    const floor = stream.top - policy.size;
    if (floor > stream.floor) {
      stream.floor = floor;
      // Rows below the floor are never read, so they are deleted in steps of a quarter
      // of history_size: one range delete per step instead of one per publication.
      if (floor - stream.trimmedThrough >= Math.max(1, policy.size >> 2)) this.trimmed.set(channel, stream);
    }
    return { offset: stream.top, epoch: stream.epoch };
  }

  history(channel: string, query: HistoryQuery, policy: StreamPolicy, now: number): HistoryResult {
    return this.batch(() => {
      const stream = this.open(channel, now, true, policy)!;
      // A smaller history_size than the one the stream was written with applies at once.
      const floor = Math.max(stream.floor, stream.top - policy.size);
      const range = historyRange({ offset: stream.top, epoch: stream.epoch, floor }, query);
      const publications = range === undefined ? [] : this.readRows(stream, range);
      return { publications, offset: stream.top, epoch: stream.epoch };
    });
  }

  removeHistory(channel: string, now: number): void {
    this.batch(() => {
      const found = this.open(channel, now, false);
      if (found === undefined || found.floor === found.top) return;
      const stream = this.writable(channel, found);
      stream.floor = stream.top;
      this.trimmed.set(channel, stream);
    });
  }

  sweep(now: number): void {
    this.batch(() => {
      for (const channel of this.expiredChannels(now)) this.open(channel, now, false);
    });
  }

  /**
   * Returns the live stream of a channel after applying expiry: an expired stream is
   * deleted (and recreated with a new epoch when `create`), expired publications raise
   * the floor to the top. Returns undefined when there is no stream and `create` is false.
   */
  private open(channel: string, now: number, create: boolean, policy?: StreamPolicy): StreamState | undefined {
    let stream = this.cached(channel);
    if (stream !== undefined && stream.metaExpiresAt !== 0 && now >= stream.metaExpiresAt) {
      this.remember(channel, stream);
      this.deleteStream(channel, stream);
      this.changed.delete(channel);
      this.trimmed.delete(channel);
      // Dropped from the cache, not kept as null, so dead channels do not pile up in memory.
      this.streams.delete(channel);
      stream = undefined;
    }
    if (stream === undefined) {
      if (!create) return undefined;
      this.remember(channel, null);
      stream = { id: 0, epoch: newEpoch(), top: 0, floor: 0, expiresAt: 0, metaExpiresAt: 0, trimmedThrough: 0 };
      if (policy !== undefined && policy.metaTtl > 0) stream.metaExpiresAt = now + policy.metaTtl;
      this.streams.set(channel, stream);
      this.saveStream(channel, stream);
      return stream;
    }
    if (stream.floor < stream.top && now >= stream.expiresAt) {
      stream = this.writable(channel, stream);
      stream.floor = stream.top;
      this.trimmed.set(channel, stream);
    }
    return stream;
  }

  private cached(channel: string): StreamState | undefined {
    let stream = this.streams.get(channel);
    if (stream === undefined) {
      stream = this.loadStream(channel) ?? null;
      this.streams.set(channel, stream);
    }
    return stream ?? undefined;
  }

  /** Records the state before the running batch changes it, so a failed batch can restore it. */
  private remember(channel: string, state: StreamState | null): void {
    if (this.undo === undefined || this.undo.has(channel)) return;
    this.undo.set(channel, state === null ? null : { live: state, snapshot: { ...state } });
  }

  private writable(channel: string, stream: StreamState): StreamState {
    this.remember(channel, stream);
    this.changed.set(channel, stream);
    return stream;
  }

  /** Writes the metadata changed in this batch and deletes trimmed rows, once per stream. */
  private flush(): void {
    for (const [channel, stream] of this.changed) this.saveStream(channel, stream);
    this.changed.clear();
    for (const stream of this.trimmed.values()) {
      this.deleteRows(stream, stream.floor);
      stream.trimmedThrough = stream.floor;
    }
    this.trimmed.clear();
  }
}
