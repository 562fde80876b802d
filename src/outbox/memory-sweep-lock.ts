import { checkOptions, type SweepLease, type SweepLock, type SweepLockOptions } from './sweep-lock.ts';

/** Every lock of this process, by key: what Redis is to gateways in separate processes. */
const held = new Map<string, { holder: symbol; expiresAt: number }>();

/** In-process SweepLock: the embedded default (one process, no Redis). Same semantics as RedisSweepLock, expiry included. */
export class MemorySweepLock implements SweepLock {
  readonly #opts: SweepLockOptions;

  constructor(opts: SweepLockOptions) {
    this.#opts = checkOptions(opts);
  }

  async tryAcquire(): Promise<SweepLease | null> {
    const { key, ttlMs } = this.#opts;
    const now = Date.now();
    if ((held.get(key)?.expiresAt ?? 0) > now) return null;
    const holder = Symbol(key);
    held.set(key, { holder, expiresAt: now + ttlMs });
    return {
      release: async () => {
        if (held.get(key)?.holder === holder) held.delete(key);
      },
    };
  }
}
