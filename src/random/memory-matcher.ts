import { STALE_AFTER_MS, type Matcher, type MatcherOptions } from './matcher.ts';

/** The wait queue in this process (the embedded default: one gateway). */
export class MemoryMatcher implements Matcher {
  /** userId -> deadline, in arrival order (a Map iterates in insertion order). */
  readonly #queue = new Map<string, number>();
  readonly #clock: () => number;

  constructor(opts: MatcherOptions = {}) {
    this.#clock = opts.clock ?? Date.now;
  }

  async join(userId: string, deadlineMs: number): Promise<string | null> {
    const now = this.#clock();
    for (const [other, deadline] of this.#queue) {
      if (deadline + STALE_AFTER_MS < now) this.#queue.delete(other);
      else if (other !== userId && deadline > now) {
        this.#queue.delete(other);
        this.#queue.delete(userId);
        return other;
      }
    }
    this.#queue.set(userId, Math.max(deadlineMs, this.#queue.get(userId) ?? 0));
    return null;
  }

  async leave(userId: string): Promise<boolean> {
    return this.#queue.delete(userId);
  }

  async expire(userId: string): Promise<boolean> {
    const deadline = this.#queue.get(userId);
    if (deadline === undefined || deadline > this.#clock()) return false;
    return this.#queue.delete(userId);
  }
}
