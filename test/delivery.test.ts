import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClaimOutcome, DeliveryHistory, DeliveryKey } from '../src/delivery/history.ts';
import { OutboundInterceptor, type OutboundCopy } from '../src/delivery/interceptor.ts';
import { MemoryHistory } from '../src/delivery/memory-history.ts';
import { RedisHistory } from '../src/delivery/redis-history.ts';
import { prng } from './support/prng.ts';
import { deleteRedisKeys, recordCommands, REDIS, redisKeys } from './support/redis.ts';

const RUN_PREFIX = `test:delivery:${randomUUID()}:`;
const LONG_LOCK_MS = 30_000;

interface StoreOptions {
  window: number;
  lockTtlMs?: number;
}

/** One shared delivery store, reached through as many histories as the test needs. */
interface Store {
  /** A history as another consumer sees it: the same MemoryHistory, or a RedisHistory on its own connection. */
  connect(): DeliveryHistory;
  /** A history whose every call fails, as when Redis is down. */
  broken(): Promise<DeliveryHistory>;
  /** A holder that claimed and then died without settling. */
  crash(history: DeliveryHistory): Promise<void>;
  close(): Promise<void>;
}

function memoryStore(opts: StoreOptions): Store {
  const history = new MemoryHistory({ window: opts.window, lockTtlMs: opts.lockTtlMs ?? LONG_LOCK_MS });
  return {
    connect: () => history,
    async broken() {
      const closed = new MemoryHistory({ window: opts.window });
      await closed.close();
      return closed;
    },
    async crash() {},
    close: () => history.close(),
  };
}

let storeCount = 0;

function redisStore(opts: StoreOptions): Store & { prefix: string; clients: Map<DeliveryHistory, Redis> } {
  const prefix = `${RUN_PREFIX}${storeCount++}:`;
  const clients = new Map<DeliveryHistory, Redis>();
  const open = (): [DeliveryHistory, Redis] => {
    const redis = new Redis(REDIS);
    const history = new RedisHistory({
      redis,
      window: opts.window,
      lockTtlMs: opts.lockTtlMs ?? LONG_LOCK_MS,
      keyPrefix: prefix,
    });
    clients.set(history, redis);
    return [history, redis];
  };
  return {
    prefix,
    clients,
    connect: () => open()[0],
    async broken() {
      const [history, redis] = open();
      await redis.ping();
      redis.disconnect();
      return history;
    },
    async crash(history) {
      clients.get(history)!.disconnect();
    },
    async close() {
      await deleteRedisKeys(prefix);
      for (const redis of clients.values()) redis.disconnect();
    },
  };
}

const ENGINES = [
  { engine: 'memory', open: memoryStore },
  { engine: 'redis', open: redisStore },
];

/** A receiver's socket: the (sender#seq) frames it got, in order. */
class FakeSocket {
  readonly frames: string[] = [];
  open = true;
}

class Sockets {
  readonly #byReceiver = new Map<string, FakeSocket>();

  get(receiver: string): FakeSocket {
    let socket = this.#byReceiver.get(receiver);
    if (!socket) {
      socket = new FakeSocket();
      this.#byReceiver.set(receiver, socket);
    }
    return socket;
  }

  copy(key: DeliveryKey): OutboundCopy {
    return {
      key,
      write: () => {
        const socket = this.get(key.receiver);
        if (!socket.open) return false;
        socket.frames.push(`${key.sender}#${key.seq}`);
        return true;
      },
    };
  }

  /** One broker delivery: message (sender, seq) to each of the receivers. */
  delivery(sender: string, seq: number, receivers: readonly string[]): OutboundCopy[] {
    return receivers.map((receiver) => this.copy({ receiver, sender, seq }));
  }
}

/** Hands deliveries to the interceptor in order, at most `prefetch` unsettled, as an AMQP consumer does. */
async function consume(interceptor: OutboundInterceptor, deliveries: OutboundCopy[][], prefetch: number): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  for (const copies of deliveries) {
    if (inFlight.size >= prefetch) await Promise.race(inFlight);
    const settled: Promise<void> = interceptor.deliver(copies).then(() => {
      inFlight.delete(settled);
    });
    inFlight.add(settled);
  }
  await Promise.all(inFlight);
}

/**
 * Delegates to a real history; the next `failClaims` claims or `failSettles` settles reject,
 * and the next claim's answer waits for `holdNextClaim` if one is set.
 */
class FlakyHistory implements DeliveryHistory {
  failClaims = 0;
  failSettles = 0;
  holdNextClaim: Promise<void> | undefined;
  constructor(private readonly inner: DeliveryHistory) {}

  async claim(keys: readonly DeliveryKey[]): Promise<ClaimOutcome[]> {
    if (this.failClaims > 0) {
      this.failClaims--;
      throw new Error('history down');
    }
    const hold = this.holdNextClaim;
    this.holdNextClaim = undefined;
    const outcomes = await this.inner.claim(keys);
    await hold;
    return outcomes;
  }

  async settle(written: readonly DeliveryKey[], abandoned: readonly DeliveryKey[]): Promise<void> {
    if (this.failSettles > 0) {
      this.failSettles--;
      throw new Error('history down');
    }
    return this.inner.settle(written, abandoned);
  }

  retain(receiver: string, ttlMs: number): Promise<void> {
    return this.inner.retain(receiver, ttlMs);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

const key = (seq: number, sender = 's1', receiver = 'r1'): DeliveryKey => ({ receiver, sender, seq });

afterAll(async () => {
  // Every store deletes its keys; this proves it.
  expect(await redisKeys(RUN_PREFIX)).toEqual([]);
});

describe.each(ENGINES)('DeliveryHistory ($engine)', ({ open }) => {
  let store: Store;
  afterEach(() => store.close());

  it('delivers out-of-order seqs inside the window, drops seen ones and everything at or below top - window', async () => {
    store = open({ window: 8 });
    const h = store.connect();
    const claimSettle = async (seqs: number[]): Promise<ClaimOutcome[]> => {
      const outcomes = await h.claim(seqs.map((s) => key(s)));
      await h.settle(
        seqs.filter((_, i) => outcomes[i] === 'deliver').map((s) => key(s)),
        [],
      );
      return outcomes;
    };

    expect(await claimSettle([5])).toEqual(['deliver']);
    expect(await claimSettle([3, 1, 2, 5])).toEqual(['deliver', 'deliver', 'deliver', 'duplicate']);
    expect(await claimSettle([5, 3, 1, 2, 4, 6])).toEqual([
      'duplicate', 'duplicate', 'duplicate', 'duplicate', 'deliver', 'deliver',
    ]);
    // Top 20 with window 8: 12 and below count as delivered, 13..19 were never seen.
    expect(await claimSettle([20])).toEqual(['deliver']);
    expect(await h.claim([key(4), key(12), key(13), key(14), key(20), key(21)])).toEqual([
      'duplicate', 'duplicate', 'deliver', 'deliver', 'duplicate', 'deliver',
    ]);
    await h.settle([key(14)], [key(13), key(21)]);
    // Top 23 moves the window to (15, 23]: 15 falls below it, and 22 takes over 14's slot, unseen.
    expect(await claimSettle([23])).toEqual(['deliver']);
    expect(await h.claim([key(15), key(16), key(20), key(22), key(23)])).toEqual([
      'duplicate', 'deliver', 'duplicate', 'deliver', 'duplicate',
    ]);
    await h.settle([], [key(16), key(22)]);
    // Each (receiver, sender) has its own window.
    expect(await h.claim([key(5, 's2'), key(5, 's1', 'r2'), key(5)])).toEqual(['deliver', 'deliver', 'duplicate']);
    await h.settle([], [key(5, 's2'), key(5, 's1', 'r2')]);
  });

  it('locks a claimed key until it is settled: busy meanwhile, released by abandon, recorded by write', async () => {
    store = open({ window: 64 });
    const a = store.connect();
    const b = store.connect();
    expect(await a.claim([key(1), key(1), key(2)])).toEqual(['deliver', 'busy', 'deliver']);
    expect(await b.claim([key(1), key(2), key(3)])).toEqual(['busy', 'busy', 'deliver']);
    await a.settle([key(1)], [key(2)]);
    expect(await b.claim([key(1), key(2)])).toEqual(['duplicate', 'deliver']);
    await b.settle([key(2), key(3)], []);
    expect(await a.claim([key(1), key(2), key(3)])).toEqual(['duplicate', 'duplicate', 'duplicate']);
  });

  it('forgets a receiver when its retain() TTL runs out, and not before', async () => {
    store = open({ window: 64 });
    const h = store.connect();
    await h.retain('r1', 200);
    expect(await h.claim([key(1), key(1, 's1', 'r2')])).toEqual(['deliver', 'deliver']);
    await h.settle([key(1), key(1, 's1', 'r2')], []);
    expect(await h.claim([key(1), key(1, 's1', 'r2')])).toEqual(['duplicate', 'duplicate']);
    await sleep(400);
    // r1 expired; r2 was never retained and is kept.
    expect(await h.claim([key(1), key(1, 's1', 'r2')])).toEqual(['deliver', 'duplicate']);
    await h.settle([], [key(1)]);
  });

  it('lets a lock left by a crashed holder expire', async () => {
    store = open({ window: 64, lockTtlMs: 200 });
    const holder = store.connect();
    const other = store.connect();
    expect(await holder.claim([key(1)])).toEqual(['deliver']);
    await store.crash(holder);
    expect(await other.claim([key(1)])).toEqual(['busy']);
    await sleep(400);
    expect(await other.claim([key(1)])).toEqual(['deliver']);
    await other.settle([key(1)], []);
  });
});

describe.each(ENGINES)('OutboundInterceptor ($engine)', ({ open }) => {
  let store: Store;
  let sockets: Sockets;
  beforeEach(() => {
    sockets = new Sockets();
  });
  afterEach(() => store.close());

  it('writes each copy once, drops a redelivered copy, and settles before resolving', async () => {
    store = open({ window: 64 });
    const history = store.connect();
    const interceptor = new OutboundInterceptor(history);
    await interceptor.deliver(sockets.delivery('s1', 1, ['r1', 'r2', 'r3']));
    // Resolved means recorded and unlocked: a direct claim finds them delivered.
    expect(await history.claim([key(1, 's1', 'r1'), key(1, 's1', 'r2'), key(1, 's1', 'r3')])).toEqual([
      'duplicate', 'duplicate', 'duplicate',
    ]);
    await interceptor.deliver(sockets.delivery('s1', 1, ['r1', 'r2', 'r3', 'r4']));
    expect(['r1', 'r2', 'r3', 'r4'].map((r) => sockets.get(r).frames)).toEqual([['s1#1'], ['s1#1'], ['s1#1'], ['s1#1']]);
    expect(interceptor.stats).toEqual({ written: 4, dropped: 3, abandoned: 0 });
    await interceptor.deliver([]);
    expect(interceptor.stats).toEqual({ written: 4, dropped: 3, abandoned: 0 });
  });

  it('abandons a copy whose socket is gone, and delivers a later copy of it', async () => {
    store = open({ window: 64 });
    const interceptor = new OutboundInterceptor(store.connect());
    sockets.get('r1').open = false;
    await interceptor.deliver(sockets.delivery('s1', 1, ['r1', 'r2']));
    expect(interceptor.stats).toEqual({ written: 1, dropped: 0, abandoned: 1 });
    sockets.get('r1').open = true;
    await interceptor.deliver(sockets.delivery('s1', 1, ['r1', 'r2']));
    expect(sockets.get('r1').frames).toEqual(['s1#1']);
    expect(sockets.get('r2').frames).toEqual(['s1#1']);
    expect(interceptor.stats).toEqual({ written: 2, dropped: 1, abandoned: 1 });
  });

  it('waits out a lock left by a crashed holder, then delivers the copy once', async () => {
    store = open({ window: 64, lockTtlMs: 200 });
    const holder = store.connect();
    expect(await holder.claim([key(1)])).toEqual(['deliver']);
    await store.crash(holder);
    const interceptor = new OutboundInterceptor(store.connect(), { busyRetryMs: 10 });
    await interceptor.deliver(sockets.delivery('s1', 1, ['r1']));
    expect(sockets.get('r1').frames).toEqual(['s1#1']);
    expect(interceptor.stats).toEqual({ written: 1, dropped: 0, abandoned: 0 });
  });

  it('keeps room order per receiver while a busy copy blocks only its own receiver', async () => {
    store = open({ window: 64 });
    const other = store.connect();
    const interceptor = new OutboundInterceptor(store.connect(), { busyRetryMs: 5 });
    // Another consumer is writing message 1 to r1.
    expect(await other.claim([key(1, 's1', 'r1')])).toEqual(['deliver']);
    const done = Promise.all([1, 2, 3].map((seq) => interceptor.deliver(sockets.delivery('s1', seq, ['r1', 'r2']))));
    for (let i = 0; i < 200 && sockets.get('r2').frames.length < 3; i++) await sleep(5);
    expect(sockets.get('r2').frames).toEqual(['s1#1', 's1#2', 's1#3']);
    expect(sockets.get('r1').frames).toEqual([]);
    // Messages 2 and 3 wait behind 1 without keeping their locks, so no lock outlives its PX while waiting.
    const waiting = [key(2, 's1', 'r1'), key(3, 's1', 'r1')];
    let outcomes: ClaimOutcome[] = [];
    for (let i = 0; i < 200; i++) {
      outcomes = await other.claim(waiting);
      await other.settle([], waiting.filter((_, j) => outcomes[j] === 'deliver'));
      if (!outcomes.includes('busy')) break;
      await sleep(5);
    }
    expect(outcomes).toEqual(['deliver', 'deliver']);
    // It wrote message 1 (to r1's socket on its gateway) and recorded it.
    await other.settle([key(1, 's1', 'r1')], []);
    await done;
    expect(sockets.get('r1').frames).toEqual(['s1#2', 's1#3']);
    expect(interceptor.stats).toEqual({ written: 5, dropped: 1, abandoned: 0 });
  });

  it('finishes one delivery holding several copies for one receiver when the first of them is busy', async () => {
    store = open({ window: 64 });
    const other = store.connect();
    const interceptor = new OutboundInterceptor(store.connect(), { busyRetryMs: 5 });
    expect(await other.claim([key(1, 's1', 'r1')])).toEqual(['deliver']);
    // A room feed releasing a run of held events hands them over in one call.
    const done = interceptor.deliver([...sockets.delivery('s1', 1, ['r1']), ...sockets.delivery('s1', 2, ['r1']), ...sockets.delivery('s1', 3, ['r1'])]);
    await sleep(30);
    await other.settle([key(1, 's1', 'r1')], []);
    const outcome = await Promise.race([done.then(() => 'done'), sleep(2_000).then(() => 'stuck')]);
    expect(outcome).toBe('done');
    expect(sockets.get('r1').frames).toEqual(['s1#2', 's1#3']);
    expect(interceptor.stats).toEqual({ written: 2, dropped: 1, abandoned: 0 });
  });

  it('writes in call order when a later claim is answered first', async () => {
    store = open({ window: 64 });
    const flaky = new FlakyHistory(store.connect());
    const interceptor = new OutboundInterceptor(flaky);
    let answer!: () => void;
    flaky.holdNextClaim = new Promise((resolve) => {
      answer = resolve;
    });
    const first = interceptor.deliver(sockets.delivery('s1', 1, ['r1']));
    const second = interceptor.deliver(sockets.delivery('s1', 2, ['r1', 'r2']));
    for (let i = 0; i < 200 && sockets.get('r2').frames.length === 0; i++) await sleep(5);
    expect(sockets.get('r2').frames).toEqual(['s1#2']);
    expect(sockets.get('r1').frames).toEqual([]);
    answer();
    await Promise.all([first, second]);
    expect(sockets.get('r1').frames).toEqual(['s1#1', 's1#2']);
    expect(interceptor.stats).toEqual({ written: 3, dropped: 0, abandoned: 0 });
  });

  it('preserves order per receiver for an in-order stream with redeliveries', async () => {
    store = open({ window: 64 });
    const interceptor = new OutboundInterceptor(store.connect(), { busyRetryMs: 5 });
    const random = prng(7);
    const receivers = ['r1', 'r2', 'r3', 'r4'];
    const expected = new Map(receivers.map((r) => [r, [] as string[]]));
    const stream: { at: number; delivery: OutboundCopy[] }[] = [];
    let total = 0;
    let unique = 0;
    for (let seq = 1, i = 0; seq <= 100; seq++) {
      for (const sender of ['s1', 's2', 's3']) {
        const to = receivers.filter(() => random() < 0.6);
        for (const r of to) expected.get(r)!.push(`${sender}#${seq}`);
        unique += to.length;
        // Redelivered copies come after the first one, some straight after, some much later.
        const copies = random() < 0.3 ? 1 + Math.floor(random() * 3) : 0;
        stream.push({ at: i, delivery: sockets.delivery(sender, seq, to) });
        for (let c = 0; c < copies; c++) stream.push({ at: i + 0.5 + random() * 50, delivery: sockets.delivery(sender, seq, to) });
        total += to.length * (1 + copies);
        i++;
      }
    }
    stream.sort((x, y) => x.at - y.at);
    await consume(interceptor, stream.map((s) => s.delivery), 64);
    for (const r of receivers) expect(sockets.get(r).frames).toEqual(expected.get(r));
    expect(interceptor.stats).toEqual({ written: unique, dropped: total - unique, abandoned: 0 });
  });

  it('two consumers with the same deliveries concurrently: every copy reaches its socket once, in order', async () => {
    store = open({ window: 64 });
    const a = new OutboundInterceptor(store.connect(), { busyRetryMs: 2 });
    const b = new OutboundInterceptor(store.connect(), { busyRetryMs: 2 });
    const receivers = ['r1', 'r2', 'r3', 'r4', 'r5'];
    const stream = (): OutboundCopy[][] => {
      const deliveries: OutboundCopy[][] = [];
      for (let seq = 1; seq <= 60; seq++) deliveries.push(sockets.delivery('s1', seq, receivers));
      return deliveries;
    };
    await Promise.all([consume(a, stream(), 32), consume(b, stream(), 32)]);
    const expected = Array.from({ length: 60 }, (_, i) => `s1#${i + 1}`);
    for (const r of receivers) expect(sockets.get(r).frames).toEqual(expected);
    expect(a.stats.written + b.stats.written).toBe(300);
    expect(a.stats.dropped + b.stats.dropped).toBe(300);
    expect(a.stats.abandoned + b.stats.abandoned).toBe(0);
  });

  it('a shuffled stream with duplicates loses nothing and duplicates nothing', async () => {
    // Window 32: first copies arrive at most ~10 seqs late per sender, so none falls below it.
    store = open({ window: 32 });
    const interceptor = new OutboundInterceptor(store.connect(), { busyRetryMs: 2 });
    const random = prng(20240611);
    const senders = ['s1', 's2', 's3', 's4'];
    const receivers = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'];
    const expected = new Map(receivers.map((r) => [r, new Set<string>()]));
    const stream: { at: number; delivery: OutboundCopy[] }[] = [];
    let total = 0;
    let unique = 0;
    for (let seq = 1, i = 0; seq <= 250; seq++) {
      for (const sender of senders) {
        const to = receivers.filter(() => random() < 0.6);
        for (const r of to) expected.get(r)!.add(`${sender}#${seq}`);
        unique += to.length;
        const copies = 1 + (random() < 0.5 ? 1 + Math.floor(random() * 2) : 0);
        for (let c = 0; c < copies; c++) {
          stream.push({ at: i + random() * (c === 0 ? 40 : 400), delivery: sockets.delivery(sender, seq, to) });
        }
        total += to.length * copies;
        i++;
      }
    }
    stream.sort((x, y) => x.at - y.at);
    // The seeded stream: 6243 copies of 3630 distinct (receiver, sender, seq).
    expect([total, unique]).toEqual([6243, 3630]);
    await consume(interceptor, stream.map((s) => s.delivery), 256);
    for (const r of receivers) {
      const frames = sockets.get(r).frames;
      expect(new Set(frames).size).toBe(frames.length);
      expect(new Set(frames)).toEqual(expected.get(r));
    }
    expect(interceptor.stats).toEqual({ written: unique, dropped: total - unique, abandoned: 0 });
  });

  it('rejects and writes nothing when the history is down', async () => {
    store = open({ window: 64 });
    const interceptor = new OutboundInterceptor(await store.broken());
    await expect(interceptor.deliver(sockets.delivery('s1', 1, ['r1', 'r2']))).rejects.toThrow();
    expect(sockets.get('r1').frames).toEqual([]);
    expect(sockets.get('r2').frames).toEqual([]);
    expect(interceptor.stats).toEqual({ written: 0, dropped: 0, abandoned: 0 });
  });

  it('a failed claim fails the later deliveries to the same receivers, and the redelivery restores order', async () => {
    store = open({ window: 64 });
    const flaky = new FlakyHistory(store.connect());
    const interceptor = new OutboundInterceptor(flaky);
    flaky.failClaims = 1;
    const first = interceptor.deliver(sockets.delivery('s1', 1, ['r1', 'r2']));
    const second = interceptor.deliver(sockets.delivery('s1', 2, ['r2', 'r3']));
    await expect(first).rejects.toThrow('history down');
    await expect(second).rejects.toThrow('history down');
    // r3 had nothing before message 2; r2 must not get 2 before 1.
    expect(['r1', 'r2', 'r3'].map((r) => sockets.get(r).frames)).toEqual([[], [], ['s1#2']]);
    // Not acked, so the broker hands both out again.
    await interceptor.deliver(sockets.delivery('s1', 1, ['r1', 'r2']));
    await interceptor.deliver(sockets.delivery('s1', 2, ['r2', 'r3']));
    expect(['r1', 'r2', 'r3'].map((r) => sockets.get(r).frames)).toEqual([['s1#1'], ['s1#1', 's1#2'], ['s1#2']]);
    expect(interceptor.stats).toEqual({ written: 4, dropped: 1, abandoned: 0 });
  });

  it('rejects when the copies were written but could not be recorded', async () => {
    store = open({ window: 64 });
    const flaky = new FlakyHistory(store.connect());
    const interceptor = new OutboundInterceptor(flaky);
    flaky.failSettles = 1;
    await expect(interceptor.deliver(sockets.delivery('s1', 1, ['r1']))).rejects.toThrow('history down');
    expect(sockets.get('r1').frames).toEqual(['s1#1']);
    expect(interceptor.stats).toEqual({ written: 1, dropped: 0, abandoned: 0 });
  });
});

describe('RedisHistory on Redis', () => {
  let store: ReturnType<typeof redisStore>;
  let sockets: Sockets;
  beforeEach(() => {
    sockets = new Sockets();
  });
  afterEach(() => store.close());

  /** Records the name of every command the history's connection sends. */
  const countCommands = (history: DeliveryHistory): string[] => recordCommands(store.clients.get(history)!);

  it.each([1, 200])('claim and settle are one round trip each for %i receivers', async (n) => {
    store = redisStore({ window: 1024 });
    const history = store.connect();
    const consumer = store.connect();
    const interceptor = new OutboundInterceptor(consumer);
    await Promise.all([store.clients.get(history)!.ping(), store.clients.get(consumer)!.ping()]);
    const sent = countCommands(history);
    const keys = Array.from({ length: n }, (_, i) => key(1, 's1', `r${i}`));

    expect(await history.claim(keys)).toEqual(keys.map(() => 'deliver'));
    expect(sent).toEqual(['evalsha']);
    await history.settle(keys.slice(0, n - 1), keys.slice(n - 1));
    expect(sent).toEqual(['evalsha', 'evalsha']);
    expect(await history.claim(keys)).toEqual([...keys.slice(0, n - 1).map(() => 'duplicate'), 'deliver']);
    await history.settle([], keys.slice(n - 1));
    expect(sent).toEqual(['evalsha', 'evalsha', 'evalsha', 'evalsha']);

    // A whole broker delivery to n receivers: one claim and one settle.
    const sentByConsumer = countCommands(consumer);
    await interceptor.deliver(keys.map((k) => sockets.copy({ ...k, seq: 2 })));
    expect(sentByConsumer).toEqual(['evalsha', 'evalsha']);
    expect(interceptor.stats).toEqual({ written: n, dropped: 0, abandoned: 0 });
  });

  it('stores one hash per receiver with one compact field per sender, expiring with retain()', async () => {
    store = redisStore({ window: 1024 });
    const history = store.connect();
    const admin = store.clients.get(history)!;
    const hash = `${store.prefix}h:r1`;
    await history.retain('r1', 60_000);
    const ttlBefore = await admin.pttl(hash);
    expect(ttlBefore).toBeGreaterThan(0);
    expect(ttlBefore).toBeLessThanOrEqual(60_000);

    const written = Array.from({ length: 1500 }, (_, i) => key(i + 1)).filter((k) => k.seq !== 1000);
    written.push(key(7, 's2'));
    await history.claim(written);
    await history.settle(written, []);
    expect((await admin.keys(`${store.prefix}*`)).sort()).toEqual([hash]);
    expect((await admin.hkeys(hash)).sort()).toEqual(['', 's1', 's2']);
    // 8-byte top, 4-byte window, 1024-bit ring.
    expect(await admin.hstrlen(hash, 's1')).toBe(12 + 128);
    const ttlAfter = await admin.pttl(hash);
    expect(ttlAfter).toBeGreaterThan(0);
    expect(ttlAfter).toBeLessThanOrEqual(ttlBefore);
    // Window (476, 1500]: 1000 is the one never written.
    expect(await history.claim([key(476), key(477), key(1000), key(1500), key(1501), key(7, 's2')])).toEqual([
      'duplicate', 'duplicate', 'deliver', 'duplicate', 'deliver', 'duplicate',
    ]);
    await history.settle([], [key(1000), key(1501)]);
  });

  it('releases a lock only while its owner still holds it', async () => {
    store = redisStore({ window: 64, lockTtlMs: 200 });
    const a = store.connect();
    const b = store.connect();
    expect(await a.claim([key(1)])).toEqual(['deliver']);
    await sleep(400);
    expect(await b.claim([key(1)])).toEqual(['deliver']);
    // a's lock expired and b holds the key now: a's release must leave b's lock alone.
    await a.settle([], [key(1)]);
    expect(await a.claim([key(1)])).toEqual(['busy']);
    await b.settle([key(1)], []);
    expect(await a.claim([key(1)])).toEqual(['duplicate']);
  });

  it('reads a record written under another window size and carries it over on the next write', async () => {
    store = redisStore({ window: 16 });
    const narrow = store.connect();
    const seqs = [30, 20, 18];
    await narrow.claim(seqs.map((s) => key(s)));
    await narrow.settle(seqs.map((s) => key(s)), []);
    const wide = new RedisHistory({
      redis: store.clients.get(narrow)!,
      window: 64,
      lockTtlMs: LONG_LOCK_MS,
      keyPrefix: store.prefix,
    });
    // Read with the window it was written with: (14, 30], of which 18, 20 and 30 seen.
    expect(await wide.claim([key(14), key(15), key(18), key(19), key(20), key(30)])).toEqual([
      'duplicate', 'deliver', 'duplicate', 'deliver', 'duplicate', 'duplicate',
    ]);
    await wide.settle([key(19)], [key(15)]);
    expect(await wide.claim([key(3), key(14), key(15), key(18), key(19), key(21), key(30)])).toEqual([
      'duplicate', 'duplicate', 'deliver', 'duplicate', 'duplicate', 'deliver', 'duplicate',
    ]);
    await wide.settle([], [key(15), key(21)]);
    expect(await store.clients.get(narrow)!.hstrlen(`${store.prefix}h:r1`, 's1')).toBe(12 + 8);
  });
});
