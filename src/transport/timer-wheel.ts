/** A callback scheduled on a TimerWheel; pass it to `cancel` to drop it. */
export interface WheelTimer {
  readonly callback: (target: never) => void;
  readonly target: unknown;
  /** Ticks left before the callback runs, counted from its slot. */
  rounds: number;
  slot: number;
  cancelled: boolean;
}

/**
 * A hashed timer wheel: one interval timer for the whole process, however many
 * connections schedule pings, pong deadlines and expiry checks. A Node timer per
 * connection costs memory and a heap operation per reschedule; here scheduling is an
 * insert into a Set. Callbacks run up to one tick late, never early.
 */
export class TimerWheel {
  private readonly slots: Array<Set<WheelTimer>>;
  private cursor = 0;
  private readonly interval: NodeJS.Timeout;
  private size = 0;

  /**
   * @param onError receives what a callback throws, so one failure does not stop the others.
   * @param tick milliseconds per slot, the resolution of every timer.
   * @param slotCount slots in the wheel; longer delays wait extra rounds.
   */
  constructor(
    private readonly onError: (err: unknown) => void,
    private readonly tick = 100,
    slotCount = 1024,
  ) {
    this.slots = Array.from({ length: slotCount }, () => new Set());
    this.interval = setInterval(() => this.advance(), tick);
    // The wheel alone must not keep the process alive.
    this.interval.unref();
  }

  /**
   * Runs `callback(target)` once, `delay` ms from now (rounded up to the next tick). The
   * callback is meant to be a shared function, not a closure per call: with thousands of
   * idle connections, a closure per timer is memory per connection.
   */
  schedule<T>(delay: number, callback: (target: T) => void, target: T): WheelTimer {
    const ticks = Math.max(1, Math.ceil(delay / this.tick));
    const slot = (this.cursor + ticks) % this.slots.length;
    const timer: WheelTimer = { callback, target, rounds: Math.floor((ticks - 1) / this.slots.length), slot, cancelled: false };
    this.slots[slot]!.add(timer);
    this.size++;
    return timer;
  }

  /**
   * Moves a timer, pending or already run, to `delay` ms from now. Periodic timers such
   * as pings reuse one object this way: a new one every period would survive young
   * garbage collections and pile up in the old generation.
   */
  reschedule(timer: WheelTimer, delay: number): WheelTimer {
    if (!timer.cancelled && this.slots[timer.slot]!.delete(timer)) this.size--;
    const ticks = Math.max(1, Math.ceil(delay / this.tick));
    timer.slot = (this.cursor + ticks) % this.slots.length;
    timer.rounds = Math.floor((ticks - 1) / this.slots.length);
    timer.cancelled = false;
    this.slots[timer.slot]!.add(timer);
    this.size++;
    return timer;
  }

  cancel(timer: WheelTimer | undefined): void {
    if (timer === undefined || timer.cancelled) return;
    timer.cancelled = true;
    if (this.slots[timer.slot]!.delete(timer)) this.size--;
  }

  /** Timers waiting to run. */
  get pending(): number {
    return this.size;
  }

  close(): void {
    clearInterval(this.interval);
    for (const slot of this.slots) slot.clear();
    this.size = 0;
  }

  private advance(): void {
    this.cursor = (this.cursor + 1) % this.slots.length;
    const slot = this.slots[this.cursor]!;
    if (slot.size === 0) return;
    // A copy, because callbacks may schedule new timers into this same slot.
    for (const timer of [...slot]) {
      if (timer.cancelled) continue;
      if (timer.rounds > 0) {
        timer.rounds--;
        continue;
      }
      slot.delete(timer);
      this.size--;
      timer.cancelled = true;
      try {
        (timer.callback as (target: unknown) => void)(timer.target);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
