import type { Redis } from 'ioredis';
import Redlock from 'redlock';
import { checkOptions, type SweepLease, type SweepLock, type SweepLockOptions } from './sweep-lock.ts';

/**
 * SweepLock on Redis with redlock: one script that sets the key to a random token with `PX` unless it exists (one
 * round trip), released only by the holder of that token. Redis expires the key of a holder that died.
 */
export class RedisSweepLock implements SweepLock {
  readonly #opts: SweepLockOptions;
  readonly #redlock: Redlock;

  constructor(opts: SweepLockOptions & { redis: Redis }) {
    this.#opts = checkOptions(opts);
    // One attempt: a held lock means another gateway sweeps this round, nothing to wait for.
    this.#redlock = new Redlock([opts.redis], { retryCount: 0 });
  }

  async tryAcquire(): Promise<SweepLease | null> {
    let lock: Redlock.Lock;
    try {
      lock = await this.#redlock.acquire([this.#opts.key], this.#opts.ttlMs);
    } catch (err) {
      // Held elsewhere, or Redis unreachable (redlock reports both alike): either way no sweep this round.
      if (err instanceof Redlock.LockError) return null;
      throw err;
    }
    return {
      release: async () => {
        await lock.unlock().catch((err: unknown) => {
          if (!(err instanceof Redlock.LockError)) throw err; // run out already: nothing to release
        });
      },
    };
  }
}
