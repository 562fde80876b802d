import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Matcher } from '../src/random/matcher.ts';
import { MemoryMatcher } from '../src/random/memory-matcher.ts';
import { RedisMatcher } from '../src/random/redis-matcher.ts';
import { api, connectAs, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import { ManualClock } from './support/manual-clock.ts';
import { deleteRedisKeys, REDIS } from './support/redis.ts';
import type { TestClient } from './support/stomp-client.ts';
import { VARIANTS } from './support/variants.ts';

const RUN_PREFIX = `test:random:${randomUUID()}:`;
const NOTIFICATIONS = '/user/queue/notifications';
const WAIT_MS = 10_000;

/** One wait queue, reached through as many gateways' engines as the test needs. */
interface Queue {
  gateway(): Matcher;
  close(): Promise<void>;
}

let queueCount = 0;
const ENGINES: { name: string; open(clock: () => number): Queue }[] = [
  {
    name: 'memory',
    open(clock) {
      const matcher = new MemoryMatcher({ clock });
      return { gateway: () => matcher, close: async () => {} };
    },
  },
  {
    name: 'redis',
    open(clock) {
      const keyPrefix = `${RUN_PREFIX}${queueCount++}:`;
      const connections: Redis[] = [];
      return {
        gateway() {
          const redis = new Redis(REDIS);
          connections.push(redis);
          return new RedisMatcher({ redis, keyPrefix, clock });
        },
        async close() {
          await deleteRedisKeys(keyPrefix);
          for (const redis of connections) redis.disconnect();
        },
      };
    },
  },
];

describe.each(ENGINES)('Matcher contract: $name', (engine) => {
  let clock: ManualClock;
  let queue: Queue;
  let m: Matcher;
  const later = (): number => clock.now() + 30_000;

  beforeAll(() => {
    clock = new ManualClock();
  });
  afterEach(async () => {
    await queue.close();
  });
  const open = (): void => {
    queue = engine.open(() => clock.now());
    m = queue.gateway();
  };

  it('pairs each joiner with the user who waited, first come first served, and returns the stranger', async () => {
    open();
    expect(await m.join('a', later())).toBeNull();
    expect(await m.join('b', later())).toBe('a');
    expect(await m.join('c', later())).toBeNull();
    expect(await m.join('d', later())).toBe('c');
    expect(await m.join('e', later())).toBeNull(); // a, b, c, d are out of the queue
    expect(await m.leave('a')).toBe(false);
  });

  it('keeps a user in the queue once, however often they join, and never pairs them with themselves', async () => {
    open();
    expect(await m.join('a', later())).toBeNull();
    expect(await m.join('a', later())).toBeNull();
    expect(await m.join('a', later())).toBeNull();
    expect(await m.join('b', later())).toBe('a');
    expect(await m.join('c', later())).toBeNull(); // no second entry of a was left behind
  });

  it('never pairs a user who left', async () => {
    open();
    await m.join('a', later());
    expect(await m.leave('a')).toBe(true);
    expect(await m.leave('a')).toBe(false);
    expect(await m.join('b', later())).toBeNull();
    expect(await m.join('c', later())).toBe('b');
  });

  it('never pairs a user past their deadline, and expires them exactly once', async () => {
    open();
    await m.join('a', clock.now() + 1_000);
    expect(await m.expire('a')).toBe(false); // not yet
    clock.advance(1_000);
    expect(await m.join('b', later())).toBeNull();
    expect(await m.expire('a')).toBe(true);
    expect(await m.expire('a')).toBe(false);
    expect(await m.join('c', later())).toBe('b');
  });

  it('a second join moves the deadline later', async () => {
    open();
    await m.join('a', clock.now() + 1_000);
    await m.join('a', clock.now() + 5_000);
    clock.advance(1_000);
    expect(await m.expire('a')).toBe(false);
    expect(await m.join('b', later())).toBe('a');
  });

  it('200 users joining at once through three gateways make exactly 100 pairs, each user in one', async () => {
    open();
    const gateways = [m, queue.gateway(), queue.gateway()];
    const users = Array.from({ length: 200 }, (_, i) => `u${i}`);
    const answers = await Promise.all(users.map((u, i) => gateways[i % 3]!.join(u, later())));
    const pairs = users.flatMap((u, i) => (answers[i] ? [[answers[i], u]] : []));
    expect(pairs).toHaveLength(100);
    expect(new Set(pairs.flat()).size).toBe(200);
  });
});

async function matchedRoom(client: TestClient): Promise<string> {
  await client.until(() => client.events(NOTIFICATIONS).some((e) => e.type === 'MATCHED'), WAIT_MS);
  return client.events(NOTIFICATIONS).find((e) => e.type === 'MATCHED')!.roomId as string;
}

describe.each(VARIANTS)('random stranger chat end to end: $name', (variant) => {
  let env: Record<string, string>;
  let tearDown: () => Promise<void>;
  let server: TestServer;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    ({ env, tearDown } = await variant.setUp());
    server = await startTestGateway({ ...env, RANDOM_MATCH_TIMEOUT_S: '2' });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.disconnect()));
  });
  afterAll(async () => {
    await server?.stop();
    await tearDown?.();
  });

  const joined = async (user: TestUser): Promise<TestClient> => {
    const client = await connectAs(server, user);
    clients.push(client);
    await client.subscribeConfirmed(NOTIFICATIONS);
    return client;
  };

  it('two users who join get MATCHED with the same fresh random room, and chat there', async () => {
    const [alice, bob] = await Promise.all([newUser(server.url, 'rnda'), newUser(server.url, 'rndb')]);
    const [a, b] = await Promise.all([joined(alice), joined(bob)]);
    await a.sendConfirmed('/app/random.join', {});
    await b.sendConfirmed('/app/random.join', {});
    const roomId = await matchedRoom(a);
    expect(await matchedRoom(b)).toBe(roomId);

    const rooms = await api<{ id: string; kind: string }[]>(server.url, 'GET', '/api/rooms', undefined, alice.accessToken);
    expect(rooms.body).toEqual([expect.objectContaining({ id: roomId, kind: 'random' })]);
    const topic = `/topic/rooms.${roomId}`;
    await a.subscribeConfirmed(topic);
    await b.subscribeConfirmed(topic);
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { type: 'CHAT', text: 'hello stranger' });
    await b.until(() => b.events(topic).some((e) => e.text === 'hello stranger'), WAIT_MS);
    expect(b.events(topic).filter((e) => e.type === 'CHAT')).toHaveLength(1);
  });

  it('the long poll answers 200 {roomId} to both when paired', async () => {
    const [alice, bob] = await Promise.all([newUser(server.url, 'rnpa'), newUser(server.url, 'rnpb')]);
    const [first, second] = await Promise.all([
      api<{ roomId: string }>(server.url, 'POST', '/api/random/match', undefined, alice.accessToken),
      api<{ roomId: string }>(server.url, 'POST', '/api/random/match', undefined, bob.accessToken),
    ]);
    expect(first.status).toBe(200);
    expect(second).toEqual({ status: 200, body: { roomId: first.body.roomId } });
  });

  it('the long poll answers 408 at RANDOM_MATCH_TIMEOUT_S, and a STOMP join gets MATCH_TIMEOUT', async () => {
    const [alice, bob] = await Promise.all([newUser(server.url, 'rnta'), newUser(server.url, 'rntb')]);
    expect(await api(server.url, 'POST', '/api/random/match', undefined, alice.accessToken)).toEqual({
      status: 408,
      body: { code: 'MATCH_TIMEOUT', message: expect.any(String) },
    });
    const b = await joined(bob);
    await b.sendConfirmed('/app/random.join', {});
    await b.until(() => b.events(NOTIFICATIONS).some((e) => e.type === 'MATCH_TIMEOUT'), WAIT_MS);
    expect(b.events(NOTIFICATIONS).map((e) => e.type)).toEqual(['MATCH_TIMEOUT']);
  });

  it('a user who left is not paired: the next two joiners meet each other', async () => {
    const [alice, bob, carol] = (await Promise.all(['rnla', 'rnlb', 'rnlc'].map((p) => newUser(server.url, p)))) as [TestUser, TestUser, TestUser];
    const [a, b, c] = await Promise.all([joined(alice), joined(bob), joined(carol)]);
    await a.sendConfirmed('/app/random.join', {});
    await a.sendConfirmed('/app/random.leave', {});
    await b.sendConfirmed('/app/random.join', {});
    await c.sendConfirmed('/app/random.join', {});
    const roomId = await matchedRoom(b);
    expect(await matchedRoom(c)).toBe(roomId);
    // c's MATCHED came after anything a could have been sent for b's join: a fence.
    expect(a.events(NOTIFICATIONS)).toEqual([]);
  });

  it('a user whose last session ends is not paired', async () => {
    const [alice, bob, carol] = (await Promise.all(['rnsa', 'rnsb', 'rnsc'].map((p) => newUser(server.url, p)))) as [TestUser, TestUser, TestUser];
    const a = await joined(alice);
    await a.sendConfirmed('/app/random.join', {});
    await a.disconnect();
    // The gateway saw the session end (and started taking alice out) before anyone else joins.
    await vi.waitFor(() => expect([...server.gateway.stomp.sessions].some((s) => s.userId === alice.id)).toBe(false));
    const [b, c] = await Promise.all([joined(bob), joined(carol)]);
    await b.sendConfirmed('/app/random.join', {});
    await c.sendConfirmed('/app/random.join', {});
    expect(await matchedRoom(c)).toBe(await matchedRoom(b));
    const rooms = await api<unknown[]>(server.url, 'GET', '/api/rooms', undefined, alice.accessToken);
    expect(rooms.body).toEqual([]);
  });

  it.runIf(variant.shared)('200 users joining at once through three gateways make exactly 100 pairs, every user in one', async () => {
    const gateways = await Promise.all([startTestGateway(env), startTestGateway(env), startTestGateway(env)]);
    try {
      const users: TestUser[] = [];
      for (let i = 0; i < 200; i += 20) {
        users.push(...(await Promise.all(Array.from({ length: 20 }, () => newUser(server.url, 'rnc')))));
      }
      const crowd = await Promise.all(
        users.map(async (user, i) => {
          const client = await connectAs(gateways[i % 3]!, user);
          clients.push(client);
          await client.subscribeConfirmed(NOTIFICATIONS);
          return client;
        }),
      );
      await Promise.all(crowd.map((client) => client.sendConfirmed('/app/random.join', {})));
      const roomIds = await Promise.all(crowd.map(matchedRoom));
      const byRoom = new Map<string, number[]>();
      roomIds.forEach((roomId, i) => byRoom.set(roomId, [...(byRoom.get(roomId) ?? []), i]));
      expect(byRoom.size).toBe(100);
      expect([...byRoom.values()].every((pair) => pair.length === 2)).toBe(true);
      // Every user is a member of exactly one room, the one they were told about, with exactly their stranger.
      const memberships = await Promise.all(
        users.map((u) => api<{ id: string }[]>(server.url, 'GET', '/api/rooms', undefined, u.accessToken)),
      );
      expect(memberships.map((r) => r.body.map((room) => room.id))).toEqual(roomIds.map((id) => [id]));
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.disconnect()));
      await Promise.all(gateways.map((g) => g.stop()));
    }
  }, 120_000);
});
