import type { NewPublication, Publication } from './history-store.js';
import { StreamStore, type RowRange, type StreamState } from './stream-store.js';

interface MemoryStream {
  readonly channel: string;
  readonly state: StreamState;
  /** Retained publications in offset order; `rows[i].offset === rows[0].offset + i`. */
  rows: Publication[];
}

/** Undo record: a stream as it was before the running batch touched it. */
interface JournalEntry {
  /** The stream did not exist before the batch. */
  readonly created: boolean;
  readonly rows: Publication[];
  readonly length: number;
}

/** History kept in the worker's memory: fast, and lost when the process or the worker exits. */
export class MemoryHistoryStore extends StreamStore {
  private readonly byChannel = new Map<string, MemoryStream>();
  private readonly byId = new Map<number, MemoryStream>();
  private nextId = 1;
  /** Undo records of the running batch, so a failed batch leaves no rows behind. */
  private journal: Map<MemoryStream, JournalEntry> | undefined;

  protected loadStream(channel: string): StreamState | undefined {
    return this.byChannel.get(channel)?.state;
  }

  protected saveStream(channel: string, stream: StreamState): void {
    if (stream.id !== 0) return;
    stream.id = this.nextId++;
    const entry: MemoryStream = { channel, state: stream, rows: [] };
    this.journal?.set(entry, { created: true, rows: entry.rows, length: 0 });
    this.byChannel.set(channel, entry);
    this.byId.set(stream.id, entry);
  }

  protected deleteStream(channel: string, stream: StreamState): void {
    const entry = this.byId.get(stream.id);
    if (entry !== undefined) this.touch(entry);
    this.byChannel.delete(channel);
    this.byId.delete(stream.id);
  }

  protected appendRow(stream: StreamState, offset: number, publication: NewPublication): void {
    const entry = this.byId.get(stream.id)!;
    this.touch(entry);
    const row: { -readonly [K in keyof Publication]: Publication[K] } = { offset, data: publication.data };
    if (publication.info !== undefined) row.info = publication.info;
    if (publication.tags !== undefined) row.tags = publication.tags;
    entry.rows.push(row);
  }

  protected deleteRows(stream: StreamState, offset: number): void {
    const entry = this.byId.get(stream.id)!;
    const first = entry.rows[0];
    if (first === undefined || first.offset > offset) return;
    this.touch(entry);
    entry.rows = entry.rows.slice(offset - first.offset + 1);
  }

  protected readRows(stream: StreamState, range: RowRange): Publication[] {
    const rows = this.byId.get(stream.id)!.rows;
    const first = rows[0];
    if (first === undefined) return [];
    const start = Math.max(0, range.after + 1 - first.offset);
    const end = Math.min(rows.length, range.upTo - first.offset + 1);
    if (end <= start) return [];
    const count = range.limit < 0 ? end - start : Math.min(range.limit, end - start);
    if (range.reverse) return rows.slice(end - count, end).reverse();
    return rows.slice(start, start + count);
  }

  protected atomically<T>(fn: () => T): T {
    const journal = new Map<MemoryStream, JournalEntry>();
    this.journal = journal;
    try {
      return fn();
    } catch (err) {
      this.restore(journal);
      throw err;
    } finally {
      this.journal = undefined;
    }
  }

  private restore(journal: Map<MemoryStream, JournalEntry>): void {
    for (const [entry, before] of journal) {
      if (before.created) {
        this.byChannel.delete(entry.channel);
        this.byId.delete(entry.state.id);
        continue;
      }
      before.rows.length = before.length;
      entry.rows = before.rows;
      this.byChannel.set(entry.channel, entry);
      this.byId.set(entry.state.id, entry);
    }
  }

  private touch(entry: MemoryStream): void {
    const journal = this.journal;
    if (journal === undefined || journal.has(entry)) return;
    journal.set(entry, { created: false, rows: entry.rows, length: entry.rows.length });
  }

  protected expiredChannels(now: number): string[] {
    const channels: string[] = [];
    for (const [channel, { state }] of this.byChannel) {
      const metaExpired = state.metaExpiresAt > 0 && state.metaExpiresAt <= now;
      if (metaExpired || (state.floor < state.top && state.expiresAt <= now)) channels.push(channel);
    }
    return channels;
  }

  close(): void {
    this.byChannel.clear();
    this.byId.clear();
  }
}
