/**
 * SweepLock: at most one outbox sweep at a time over one database, across every gateway. Engines side by side:
 * `memory-sweep-lock.ts` (one process: the embedded default) and `redis-sweep-lock.ts` (redlock on Redis).
 *
 * `tryAcquire()` never waits: it returns a lease when nobody holds the lock's key, null when someone does. A lease
 * lasts `ttlMs` from its acquisition, and `release()` ends it early. A holder that dies never releases: the key is
 * free again once its `ttlMs` has run out, so a dead gateway pauses the sweep for at most that long. Work that
 * outlasts its lease may overlap the next holder's: the sweep only publishes, and the outbound interceptor drops a
 * second copy, so an overlap costs traffic, never a second delivery.
 */
export interface SweepLock {
  tryAcquire(): Promise<SweepLease | null>;
}

export interface SweepLease {
  /** Ends the lease; a no-op once it has run out (the key may be someone else's by then). */
  release(): Promise<void>;
}

export interface SweepLockOptions {
  /** What is locked: one key per database, so that clusters sharing a Redis do not hold each other up. */
  key: string;
  /** How long a lease lasts unless released; longer than one sweep round takes. */
  ttlMs: number;
}

/** Both engines accept the same options. */
export function checkOptions(opts: SweepLockOptions): SweepLockOptions {
  if (opts.key === '') throw new TypeError('key must be non-empty');
  if (!Number.isSafeInteger(opts.ttlMs) || opts.ttlMs <= 0) throw new TypeError(`ttlMs must be a positive integer, got ${opts.ttlMs}`);
  return { key: opts.key, ttlMs: opts.ttlMs };
}
