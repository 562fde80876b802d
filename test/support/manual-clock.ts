import type { Clock } from '../../src/stomp/clock.ts';

interface Timer {
  at: number;
  every: number;
  fn: () => void;
}

/** A Clock that moves only when the test calls advance(), running every timer due on the way, in time order. */
export class ManualClock implements Clock {
  private time = 0;
  private readonly timers = new Set<Timer>();

  now(): number {
    return this.time;
  }

  every(ms: number, fn: () => void): () => void {
    return this.add({ at: this.time + ms, every: ms, fn });
  }

  after(ms: number, fn: () => void): () => void {
    return this.add({ at: this.time + ms, every: 0, fn });
  }

  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.timers) if (t.at <= end && (!next || t.at < next.at)) next = t;
      if (!next) break;
      this.time = next.at;
      if (next.every > 0) next.at += next.every;
      else this.timers.delete(next);
      next.fn();
    }
    this.time = end;
  }

  private add(timer: Timer): () => void {
    this.timers.add(timer);
    return () => void this.timers.delete(timer);
  }
}
