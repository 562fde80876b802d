/**
 * Random stranger matching: one wait queue shared by every gateway. Engines side by side: `memory-matcher.ts`
 * (embedded default, one gateway) and `redis-matcher.ts` (shared by every gateway, one atomic script per operation).
 *
 * Semantics, the same in both:
 * - A user is in the queue at most once: joining again while waiting keeps their place (several tabs count once)
 *   and moves their deadline to the later of the two.
 * - `join` pairs the joiner with the longest-waiting other user whose deadline has not passed (first come, first
 *   served); both leave the queue in the same step, so no user is ever paired twice, and never with themselves.
 * - A user whose deadline has passed is never paired; `expire` takes them out (once: that is the timeout). An entry
 *   left far past its deadline (its gateway died before expiring it) is dropped by the next `join` that sees it.
 * - `leave` takes the user out; a user who left is never paired afterwards (until they join again).
 */
export interface Matcher {
  /**
   * Queues `userId` until `deadlineMs`, or pairs them at once.
   * @returns the stranger the joiner is paired with (both are out of the queue), or null (the joiner waits).
   */
  join(userId: string, deadlineMs: number): Promise<string | null>;
  /** Takes the user out of the queue. @returns whether they were waiting. */
  leave(userId: string): Promise<boolean>;
  /** Takes the user out if their deadline has passed. @returns whether it did: the caller announces the timeout. */
  expire(userId: string): Promise<boolean>;
}

export interface MatcherOptions {
  /** Milliseconds since the epoch; every gateway's clock must roughly agree (NTP). */
  clock?: () => number;
}

/** How long past its deadline an entry that nobody expired stays before a join drops it. */
export const STALE_AFTER_MS = 60_000;
