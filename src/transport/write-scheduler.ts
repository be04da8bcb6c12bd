/** Something with queued output to write once per event-loop turn. */
export interface Flushable {
  flush(): void;
}

/**
 * Collects the sessions that queued output during an event-loop turn and flushes each
 * once, after the turn's I/O callbacks. A fan-out of many publications then costs one
 * socket write per subscriber, not one per publication.
 */
export class WriteScheduler {
  private pending: Flushable[] = [];
  private scheduled = false;

  schedule(target: Flushable): void {
    this.pending.push(target);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.run());
  }

  private run(): void {
    this.scheduled = false;
    const targets = this.pending;
    this.pending = [];
    for (const target of targets) target.flush();
  }
}
