import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { GatewayOrigin } from '../src/app/origin.ts';
import { RoomService } from '../src/app/rooms.ts';
import { AmqpBroker } from '../src/broker/amqp-broker.ts';
import { BrokerUnavailableError, type Broker, type BrokerMessage } from '../src/broker/broker.ts';
import { MemoryBroker } from '../src/broker/memory-broker.ts';
import type { PrismaClient } from '../src/generated/prisma/client.ts';
import { createLogger } from '../src/logger.ts';
import { MemorySweepLock } from '../src/outbox/memory-sweep-lock.ts';
import { Outbox, type OutboxOptions } from '../src/outbox/outbox.ts';
import { RedisSweepLock } from '../src/outbox/redis-sweep-lock.ts';
import type { SweepLock, SweepLockOptions } from '../src/outbox/sweep-lock.ts';
import { openDatabase, type Database } from '../src/store/database.ts';
import { MessageStore } from '../src/store/messages.ts';
import { readMigrations } from '../src/store/migrate.ts';
import { OutboxStore } from '../src/store/outbox-store.ts';
import { RoomStore } from '../src/store/rooms.ts';
import { UserStore, type User } from '../src/store/users.ts';
import { createTempPostgres } from '../scripts/temp-postgres.ts';
import { REDIS } from './support/redis.ts';

const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
/** These tests delete no messages with files. */
const NO_FILES = { releaseFileOf: async () => {} };
const RUN = `outbox-test-${process.pid}-${Date.now().toString(36)}`;

/** Redis connections the Redis engine's instances use; each instance gets its own, as separate gateways do. */
const redisClients: Redis[] = [];
const newRedis = (): Redis => {
  const redis = new Redis({ ...REDIS, maxRetriesPerRequest: 1 });
  redisClients.push(redis);
  return redis;
};
afterAll(() => redisClients.forEach((r) => r.disconnect()));

const LOCK_ENGINES = [
  { engine: 'memory', make: (o: SweepLockOptions): SweepLock => new MemorySweepLock(o) },
  { engine: 'redis', make: (o: SweepLockOptions): SweepLock => new RedisSweepLock({ redis: newRedis(), ...o }) },
];

let lockCount = 0;
const newKey = () => `${RUN}:lock-${++lockCount}`;

describe.each(LOCK_ENGINES)('SweepLock ($engine)', ({ make }) => {
  it('has one holder at a time across two instances, until it releases', async () => {
    const key = newKey();
    const [a, b] = [make({ key, ttlMs: 60_000 }), make({ key, ttlMs: 60_000 })];
    const lease = await a.tryAcquire();
    expect(lease).not.toBeNull();
    expect(await b.tryAcquire()).toBeNull();
    expect(await a.tryAcquire()).toBeNull(); // not re-entrant: a second round of the same gateway waits too
    await lease!.release();
    const next = await b.tryAcquire();
    expect(next).not.toBeNull();
    expect(await a.tryAcquire()).toBeNull();
    await next!.release();
    // Another key is another lock.
    const other = await make({ key: newKey(), ttlMs: 60_000 }).tryAcquire();
    expect(other).not.toBeNull();
    await other!.release();
  });

  it('frees the lock of a holder that died once its ttl has run out, and a late release frees nothing', async () => {
    const key = newKey();
    const ttlMs = 1_000;
    const [dead, b, c] = [make({ key, ttlMs }), make({ key, ttlMs }), make({ key, ttlMs })];
    const lost = await dead.tryAcquire(); // and never released: its gateway died
    expect(lost).not.toBeNull();
    expect(await b.tryAcquire()).toBeNull();
    let taken: Awaited<ReturnType<SweepLock['tryAcquire']>> = null;
    await vi.waitFor(async () => {
      taken = await b.tryAcquire();
      expect(taken).not.toBeNull();
    }, { timeout: 10_000, interval: 100 });
    // The dead holder's lease ran out: releasing it now must not free b's.
    await lost!.release();
    expect(await c.tryAcquire()).toBeNull();
    await taken!.release();
    expect(await c.tryAcquire()).not.toBeNull();
  });
});

describe('the published-flag migration', () => {
  it('counts the events stored before it as published, and logs new ones unpublished', async () => {
    const dirs = (await readMigrations()).migrationDirectories;
    const index = dirs.findIndex((d) => d.path.endsWith('_outbox_published'));
    const sql = (i: number) => (dirs[i]!.migrationFile.content as { value: string }).value;
    const db = new PGlite();
    try {
      for (let i = 0; i < index; i++) await db.exec(sql(i));
      const insert = (seq: number) =>
        db.exec(`INSERT INTO "RoomEvent" ("roomId", seq, type, payload, "senderSession", "senderSeq")
                 VALUES ('00000000-0000-4000-8000-000000000002', ${seq}, 'CHAT', '{}', 's', ${seq})`);
      await db.exec(`INSERT INTO "User" (id, username, "passwordHash") VALUES ('00000000-0000-4000-8000-000000000001', 'u', 'h');
                     INSERT INTO "Room" (id, name, kind, "ownerId") VALUES ('00000000-0000-4000-8000-000000000002', 'r', 'group', '00000000-0000-4000-8000-000000000001')`);
      await insert(1);
      await db.exec(sql(index));
      await insert(2);
      const rows = await db.query<{ seq: number; published: boolean }>('SELECT seq, published FROM "RoomEvent" ORDER BY seq');
      expect(rows.rows).toEqual([{ seq: 1, published: true }, { seq: 2, published: false }]);
    } finally {
      await db.close();
    }
  });
});

/** Counts the statements a Prisma client sends, by operation ($queryRaw, $executeRaw, findMany...). */
function countingClient(prisma: PrismaClient): { client: PrismaClient; ops: string[] } {
  const ops: string[] = [];
  const client = prisma.$extends({
    query: {
      async $allOperations({ operation, args, query }) {
        ops.push(operation);
        return query(args);
      },
    },
  }) as unknown as PrismaClient;
  return { client, ops };
}

/** A broker's view of `rooms.#`: every room event published, in arrival order. */
interface Observer {
  seen: BrokerMessage[];
  /** Publishes a fence and waits for it: everything confirmed before has then arrived. */
  fence(roomId: string): Promise<void>;
  close(): Promise<void>;
}

interface Setup {
  kind: 'pglite' | 'postgres';
  open(): Promise<{ db: Database; remove(): Promise<void> }>;
  /** The brokers of two gateways and an observer of what they publish. */
  brokers(): Promise<{ a: Broker; b: Broker; observer: Observer }>;
  lock(key: string): SweepLock;
}

async function observe(broker: Broker, publisher: Broker): Promise<Observer> {
  const seen: BrokerMessage[] = [];
  await broker.start((d) => {
    seen.push(d.message);
    d.ack();
  });
  await broker.bind('chat', 'rooms.#');
  return {
    seen,
    fence: async (roomId) => {
      const id = randomUUID();
      await publisher.publish('chat', `rooms.${roomId}`, { headers: { fence: id }, body: Buffer.alloc(0) });
      await vi.waitFor(() => expect(seen.some((m) => m.headers.fence === id)).toBe(true), { timeout: 10_000 });
      seen.splice(seen.findIndex((m) => m.headers.fence === id), 1);
    },
    close: () => broker.close(),
  };
}

const amqp = (name: string) =>
  new AmqpBroker({ url: 'amqp://guest:guest@127.0.0.1:5672', gatewayId: `${RUN}-${name}`, prefetch: 100, queueExpiresMs: 10_000, queueMaxLength: 1000, rpcTimeoutMs: 5_000, log });

const SETUPS: Setup[] = [
  {
    // The embedded default: one process, in-process broker and lock.
    kind: 'pglite',
    open: async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'chat-outbox-'));
      const db = await openDatabase({ dataDir, log });
      return { db, remove: () => rm(dataDir, { recursive: true, force: true }) };
    },
    brokers: async () => {
      const broker = new MemoryBroker({ queueMaxLength: 1000 });
      return { a: broker, b: broker, observer: await observe(broker, broker) };
    },
    lock: (key) => new MemorySweepLock({ key, ttlMs: 30_000 }),
  },
  {
    kind: 'postgres',
    open: async () => {
      const pg = await createTempPostgres();
      const db = await openDatabase({ databaseUrl: pg.url, dataDir: tmpdir(), log });
      return { db, remove: () => pg.drop() };
    },
    brokers: async () => {
      const [a, b] = [amqp('a'), amqp('b')];
      await Promise.all([a.start(() => {}), b.start(() => {})]);
      return { a, b, observer: await observe(amqp('observer'), a) };
    },
    lock: (key) => new RedisSweepLock({ redis: newRedis(), key, ttlMs: 30_000 }),
  },
];

describe.each(SETUPS)('Outbox on $kind', (setup) => {
  let db: Database;
  let remove: () => Promise<void>;
  let a: Broker;
  let b: Broker;
  let observer: Observer;
  let alice: User;
  let roomId: string;
  const lockKey = `${RUN}:${setup.kind}`;
  const outboxes: Outbox[] = [];

  const newOutbox = (broker: Broker, prisma: PrismaClient, o: Partial<OutboxOptions> = {}): Outbox => {
    const outbox = new Outbox(broker, new OutboxStore(prisma), setup.lock(lockKey), {
      sweepMs: 3_600_000,
      ageMs: 30_000,
      flushMs: 3_600_000, // flushed by hand, to count statements exactly
      batch: 100,
      log,
      ...o,
    });
    outboxes.push(outbox);
    return outbox;
  };
  /** An outbox whose clock is a minute ahead: every event stored so far is old enough to sweep. */
  const later = (broker: Broker) => newOutbox(broker, db.prisma, { clock: () => Date.now() + 60_000 });
  const roomEvents = () => observer.seen.filter((m) => m.headers['sender-session'] !== undefined);
  const outboxStore = () => new OutboxStore(db.prisma);
  const unpublished = () => outboxStore().unpublished(new Date(Date.now() + 60_000), 1000);

  beforeAll(async () => {
    ({ db, remove } = await setup.open());
    ({ a, b, observer } = await setup.brokers());
    alice = await new UserStore(db.prisma).create(`alice-${setup.kind}`, 'hash');
    roomId = (await new RoomStore(db.prisma).create({ kind: 'group', name: 'outbox', ownerId: alice.id, memberIds: [] })).id;
  });

  // Each test ends with a fence: what it published has arrived, and is forgotten here.
  beforeEach(() => {
    observer.seen.length = 0;
  });

  afterAll(async () => {
    await Promise.all(outboxes.map((o) => o.close()));
    await observer?.close();
    await Promise.all([...new Set([a, b])].map((x) => x?.close()));
    await db?.close();
    await remove?.();
  });

  it('keeps a SEND one statement on the hot path: confirms are marked published in one statement per batch', async () => {
    const { client, ops } = countingClient(db.prisma);
    const outbox = newOutbox(a, client);
    const rooms = new RoomService(new UserStore(client), new RoomStore(client), new MessageStore(client), a, outbox, new GatewayOrigin(), NO_FILES);
    const actor = { userId: alice.id, username: alice.username };
    const sends = 20;
    await Promise.all(
      Array.from({ length: sends }, (_, i) => rooms.send(actor, roomId, { type: 'CHAT', text: `hot ${i}` }, { session: 'hot-session', seq: i + 1 })),
    );
    expect(ops).toEqual(Array(sends).fill('$queryRaw')); // one INSERT statement each, nothing else yet
    await outbox.flush();
    expect(ops.filter((op) => op === '$executeRaw')).toHaveLength(1); // one UPDATE for all twenty confirms
    expect(ops).toHaveLength(sends + 1);
    expect(await unpublished()).toEqual([]);
    await observer.fence(roomId);
    // Published once each (concurrent sends are stored, so published, in any order).
    expect(roomEvents().map((m) => Number(m.headers['sender-seq'])).sort((x, y) => x - y)).toEqual(Array.from({ length: sends }, (_, i) => i + 1));
  });

  it('answers a stored SEND whose publish failed, and leaves the event to the sweep', async () => {
    const down = Object.assign(Object.create(a) as Broker, {
      publish: async () => {
        throw new BrokerUnavailableError();
      },
    });
    const rooms = new RoomService(new UserStore(db.prisma), new RoomStore(db.prisma), new MessageStore(db.prisma), down, newOutbox(down, db.prisma), new GatewayOrigin(), NO_FILES);
    const actor = { userId: alice.id, username: alice.username };
    const stored = await rooms.send(actor, roomId, { type: 'CHAT', text: 'while the broker is down' }, { session: 'down-session', seq: 1 });
    await expect(rooms.typing(actor, roomId, true, { session: 'down-session', seq: 2 })).rejects.toThrow(BrokerUnavailableError);
    expect((await unpublished()).map((s) => s.event.seq)).toEqual([stored.event.seq]);

    expect(await later(a).sweep()).toBe(1);
    await observer.fence(roomId);
    expect(roomEvents().map((m) => [m.headers.seq, m.headers['sender-session'], m.headers['sender-seq']])).toEqual([
      [String(stored.event.seq), 'down-session', '1'],
    ]);
    expect(await unpublished()).toEqual([]);
  });

  it('publishes what a dead gateway stored but never published once, in seq order, under its stored identity, when two gateways sweep at once', async () => {
    // A gateway that died between store and publish: three events in the log, none on the broker.
    const messages = new MessageStore(db.prisma);
    const sender = { id: alice.id, username: alice.username };
    const stored = [];
    for (let i = 1; i <= 3; i++) {
      stored.push((await messages.append({ roomId, type: 'CHAT', sender, text: `orphan ${i}`, origin: { session: 'dead-session', seq: i } })).stored);
    }
    // Too young: their own gateway may still be waiting for the broker's confirm.
    expect(await newOutbox(a, db.prisma).sweep()).toBe(0);

    const [sweptA, sweptB] = await Promise.all([later(a).sweep(), later(b).sweep()]);
    expect(sweptA + sweptB).toBe(3);
    expect([sweptA, sweptB]).toContain(0); // one of them held the sweep
    await observer.fence(roomId);
    expect(roomEvents().map((m) => [m.headers.seq, m.headers['sender-session'], m.headers['sender-seq']])).toEqual(
      stored.map((s, i) => [String(s.event.seq), 'dead-session', String(i + 1)]),
    );
    expect(roomEvents().map((m) => (JSON.parse(m.body.toString()) as { text: string }).text)).toEqual(['orphan 1', 'orphan 2', 'orphan 3']);

    // Marked published: nothing is published again.
    expect(await unpublished()).toEqual([]);
    observer.seen.length = 0;
    expect(await Promise.all([later(a).sweep(), later(b).sweep()])).toEqual([0, 0]);
    await observer.fence(roomId);
    expect(roomEvents()).toEqual([]);
  });

  it('sweeps at once on start, and again at once after a full batch, until the backlog is gone', async () => {
    const messages = new MessageStore(db.prisma);
    const sender = { id: alice.id, username: alice.username };
    for (let i = 1; i <= 5; i++) await messages.append({ roomId, type: 'CHAT', sender, text: `backlog ${i}`, origin: { session: 'backlog-session', seq: i } });
    // Batches of two, and a next regular round only in an hour: the five go out in rounds of 2, 2 and 1 right away.
    const outbox = newOutbox(a, db.prisma, { clock: () => Date.now() + 60_000, batch: 2 });
    outbox.start();
    await vi.waitFor(async () => expect(await unpublished()).toEqual([]), { timeout: 10_000 });
    expect(outbox.stats.republished).toBe(5);
    await observer.fence(roomId);
    expect(roomEvents().map((m) => m.headers['sender-seq'])).toEqual(['1', '2', '3', '4', '5']);
  });
});
