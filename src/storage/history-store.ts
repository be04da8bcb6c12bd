/**
 * The history and stream-metadata store behind the channel actors. One store serves one
 * shard and is used by exactly one worker thread at a time, so implementations need no
 * locking; every method is synchronous.
 */

/** Identity of a publisher or of a client present in a channel. JSON fields contain raw JSON text. */
export interface ClientInfo {
  readonly user: string;
  readonly client: string;
  readonly conn_info?: string;
  readonly chan_info?: string;
}

/** A publication. `data` is JSON text, or bytes when it came from `b64data` and is not JSON. */
export interface Publication {
  /** Position in the channel stream; 0 when the publication was not saved to history. */
  readonly offset: number;
  readonly data: string | Uint8Array;
  readonly info?: ClientInfo;
  readonly tags?: Readonly<Record<string, string>>;
}

export type NewPublication = Omit<Publication, 'offset'>;

export interface StreamPosition {
  readonly offset: number;
  readonly epoch: string;
}

/** History settings of one channel, from its namespace options. All durations in milliseconds. */
export interface StreamPolicy {
  /** Publications kept; older ones are trimmed. */
  readonly size: number;
  /** Publications expire when this long has passed since the last publish. */
  readonly ttl: number;
  /** The stream itself (offset and epoch) expires this long after the last publish; 0 never. */
  readonly metaTtl: number;
}

export interface HistoryQuery {
  /** 0 returns only the position, a negative value every retained publication, N at most N. */
  readonly limit: number;
  /**
   * Forward: publications after `since.offset`. Reverse: publications before it. A
   * non-empty `since.epoch` that differs from the stream epoch raises 112.
   */
  readonly since?: StreamPosition;
  readonly reverse: boolean;
}

export interface HistoryResult extends StreamPosition {
  readonly publications: Publication[];
}

/**
 * Stream semantics (Centrifugo's history model):
 * - Offsets start at 1 and grow by exactly 1 per saved publication, with no gaps and no
 *   reuse within an epoch.
 * - The epoch is a random string chosen when the stream is created, and stored with it.
 *   It changes only when the stream is lost: its metadata expired (`metaTtl` after the
 *   last publish) or the storage was wiped.
 * - A stream keeps at most `size` publications; publications expire together once `ttl`
 *   has passed since the last publish, and `removeHistory` drops them too. In both cases
 *   offset and epoch stay, so clients see a gap and do not recover.
 * - Reading a stream that does not exist creates it, so a subscriber positioned on an
 *   empty channel keeps its epoch when the first publication arrives.
 */
export interface HistoryStore {
  /**
   * Runs `fn` as one atomic unit: every write made inside it is stored, or none is and
   * the error propagates. Nothing written inside is visible to other processes before
   * it returns; after it returns, the writes survive a process crash.
   */
  batch<T>(fn: () => T): T;
  /** Saves a publication with the next offset of its stream and returns the new position. */
  publish(channel: string, publication: NewPublication, policy: StreamPolicy, now: number): StreamPosition;
  /** Reads history as `HistoryQuery` describes; throws RotorError 107 or 112 on a bad `since`. */
  history(channel: string, query: HistoryQuery, policy: StreamPolicy, now: number): HistoryResult;
  /** Drops the publications of a stream, keeping its offset and epoch. */
  removeHistory(channel: string, now: number): void;
  /** Deletes expired publications and streams, so storage does not grow with dead channels. */
  sweep(now: number): void;
  close(): void;
}
