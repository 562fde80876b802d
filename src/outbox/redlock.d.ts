// Types for the part of redlock v4 (CommonJS, untyped) that redis-sweep-lock.ts uses.
declare module 'redlock' {
  import type { Redis } from 'ioredis';

  namespace Redlock {
    class Lock {
      unlock(): Promise<void>;
    }
    class LockError extends Error {}
  }

  class Redlock {
    constructor(clients: Redis[], options?: { retryCount?: number; retryDelay?: number; driftFactor?: number });
    acquire(resources: string[], ttlMs: number): Promise<Redlock.Lock>;
  }

  export = Redlock;
}
