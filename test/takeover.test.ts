import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { MemoryTakeover } from '../src/takeover/memory-takeover.ts';
import { RedisTakeover } from '../src/takeover/redis-takeover.ts';
import type { Takeover } from '../src/takeover/takeover.ts';
import { deleteRedisKeys, REDIS } from './support/redis.ts';

interface Engines {
  /** Two views of one registry, as two gateways see it (the memory engine: one process, one view twice). */
  pair(): [Takeover, Takeover];
}

const prefix = `test-takeover-${randomBytes(4).toString('hex')}:`;
const opened: Redis[] = [];
const engines: Record<string, Engines> = {
  memory: {
    pair() {
      const t = new MemoryTakeover();
      return [t, t];
    },
  },
  redis: {
    pair() {
      const make = (gatewayId: string) => {
        const redis = new Redis(REDIS);
        opened.push(redis);
        return new RedisTakeover({ redis, gatewayId, ttlMs: 60_000, keyPrefix: prefix });
      };
      return [make(`g1-${randomBytes(3).toString('hex')}`), make(`g2-${randomBytes(3).toString('hex')}`)];
    },
  },
};

afterAll(async () => {
  await deleteRedisKeys(prefix);
  for (const r of opened) r.disconnect();
});

for (const [name, engine] of Object.entries(engines)) {
  describe(`Takeover contract (${name})`, () => {
    it('tells the previous holder, on its own gateway, exactly once, and never the new one', async () => {
      const [g1, g2] = engine.pair();
      const told: string[] = [];
      g1.watch('old', () => told.push('old'));
      g2.watch('new', () => told.push('new'));
      await g1.claim('h1', 'old');
      await g2.claim('h1', 'new');
      await vi.waitFor(() => expect(told).toEqual(['old']));
      // Claiming again what one already holds tells nobody; a fence claim on another history shows nothing else came.
      await g2.claim('h1', 'new');
      g1.watch('fence-old', () => told.push('fence-old'));
      await g1.claim('h2', 'fence-old');
      await g2.claim('h2', 'fence-new');
      await vi.waitFor(() => expect(told).toEqual(['old', 'fence-old']));
      await Promise.all([g1.close(), g2.close()]);
    });

    it('a release by a holder that was taken over leaves the new holder in place', async () => {
      const [g1, g2] = engine.pair();
      const told: string[] = [];
      g2.watch('second', () => told.push('second'));
      await g1.claim('h3', 'first');
      await g2.claim('h3', 'second');
      await g1.release('h3', 'first');
      await g1.renew('h3', 'first');
      await g1.claim('h3', 'third');
      await vi.waitFor(() => expect(told).toEqual(['second']));
      await Promise.all([g1.close(), g2.close()]);
    });

    it('after a release nobody is told', async () => {
      const [g1, g2] = engine.pair();
      const told: string[] = [];
      g1.watch('gone', () => told.push('gone'));
      g1.watch('fence', () => told.push('fence'));
      await g1.claim('h4', 'gone');
      await g1.release('h4', 'gone');
      await g2.claim('h4', 'later');
      await g1.claim('h5', 'fence');
      await g2.claim('h5', 'fence-taker');
      await vi.waitFor(() => expect(told).toEqual(['fence']));
      await Promise.all([g1.close(), g2.close()]);
    });
  });
}
