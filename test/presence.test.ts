import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { MemoryPresence } from '../src/presence/memory-presence.ts';
import type { Presence, PresenceOptions } from '../src/presence/presence.ts';
import { RedisPresence } from '../src/presence/redis-presence.ts';
import { PresenceTracker } from '../src/presence/tracker.ts';
import { createTempPostgres } from '../scripts/temp-postgres.ts';
import { api, connectAs, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import type { TestClient } from './support/stomp-client.ts';
import { deleteRedisKeys, recordCommands, REDIS, redisKeys } from './support/redis.ts';

const RUN_PREFIX = `test:presence:${randomUUID()}:`;
const TTL_MS = 30_000;
const GRACE_MS = 3_000;
const silent = createLogger('silent');

/** A clock the test moves by hand: expiry is exact, with no waiting. */
class Clock {
  now = 1_700_000_000_000;
  readonly read = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** One presence store, reached through as many gateways' engines as the test needs. */
interface Store {
  /** Another gateway's engine: RedisPresence on its own connection and the same keys; in memory, the one engine there is. */
  gateway(): Presence;
  close(): Promise<void>;
}

function memoryStore(opts: PresenceOptions): Store {
  const presence = new MemoryPresence(opts);
  return { gateway: () => presence, close: () => presence.close() };
}

let storeCount = 0;

function redisStore(opts: PresenceOptions): Store & { prefix: string; connections: Map<Presence, Redis> } {
  const prefix = `${RUN_PREFIX}${storeCount++}:`;
  const connections = new Map<Presence, Redis>();
  return {
    prefix,
    connections,
    gateway() {
      const redis = new Redis(REDIS);
      const presence = new RedisPresence({ redis, keyPrefix: prefix, ...opts });
      connections.set(presence, redis);
      return presence;
    },
    async close() {
      await deleteRedisKeys(prefix);
      for (const redis of connections.values()) redis.disconnect();
    },
  };
}

const ENGINES = [
  { engine: 'memory', open: memoryStore },
  { engine: 'redis', open: redisStore },
];

afterAll(async () => {
  // Every store deletes its keys; this proves it.
  expect(await redisKeys(RUN_PREFIX)).toEqual([]);
});

describe.each(ENGINES)('Presence ($engine)', ({ open }) => {
  let store: Store;
  let clock: Clock;
  let presence: Presence;
  const begin = (opts: Partial<PresenceOptions> = {}) => {
    clock = new Clock();
    store = open({ ttlMs: TTL_MS, graceMs: GRACE_MS, clock: clock.read, ...opts });
    presence = store.gateway();
  };
  afterEach(() => store.close());

  it('goes online with the first session and offline once the last is gone and its grace is over', async () => {
    begin();
    expect(await presence.online(['u1', 'u2'])).toEqual(new Set());
    expect(await presence.connect('u1', 's1')).toBe(true);
    expect(await presence.connect('u1', 's2')).toBe(false);
    expect(await presence.connect('u2', 's3')).toBe(true);
    expect(await presence.online(['u1', 'u2', 'u3'])).toEqual(new Set(['u1', 'u2']));

    await presence.disconnect('u1', 's1');
    expect(await presence.online(['u1'])).toEqual(new Set(['u1']));
    await presence.disconnect('u1', 's2');
    clock.advance(GRACE_MS - 1);
    // Still in the grace: online, and nothing to reap.
    expect(await presence.online(['u1', 'u2'])).toEqual(new Set(['u1', 'u2']));
    expect(await presence.reap()).toEqual([]);
    clock.advance(1);
    expect(await presence.online(['u1', 'u2'])).toEqual(new Set(['u2']));
    expect(await presence.reap()).toEqual(['u1']);
    expect(await presence.reap()).toEqual([]);

    // Back: online again, the first session once more.
    expect(await presence.connect('u1', 's4')).toBe(true);
    expect(await presence.online(['u1', 'u2'])).toEqual(new Set(['u1', 'u2']));
  });

  it('does not flap when a user reconnects within the grace', async () => {
    begin();
    expect(await presence.connect('u1', 's1')).toBe(true);
    await presence.disconnect('u1', 's1');
    clock.advance(GRACE_MS - 1);
    expect(await presence.connect('u1', 's2')).toBe(false);
    clock.advance(GRACE_MS);
    // s1's linger is reaped, but u1 still has s2: not offline.
    expect(await presence.reap()).toEqual([]);
    expect(await presence.online(['u1'])).toEqual(new Set(['u1']));
  });

  it('expires entries that are not refreshed, and refresh keeps connected ones alive', async () => {
    begin();
    await presence.connect('u1', 's1');
    await presence.connect('u2', 's2');
    await presence.disconnect('u2', 's2');
    await presence.connect('u2', 's3');
    clock.advance(TTL_MS - 1);
    // Only connected sessions are refreshed (s2 has been reaped-ready since its grace).
    expect(await presence.refresh()).toEqual([]);
    expect(await presence.reap()).toEqual([]);
    clock.advance(TTL_MS - 1);
    expect(await presence.online(['u1', 'u2'])).toEqual(new Set(['u1', 'u2']));
    clock.advance(1);
    expect(await presence.online(['u1', 'u2'])).toEqual(new Set());
    expect((await presence.reap()).sort()).toEqual(['u1', 'u2']);

    // A gateway that stalled past the TTL writes its sessions back on its next refresh: back online.
    expect((await presence.refresh()).sort()).toEqual(['u1', 'u2']);
    expect(await presence.online(['u1', 'u2'])).toEqual(new Set(['u1', 'u2']));
    expect(await presence.refresh()).toEqual([]);
  });

  it('answers for many users at once, and handles more sessions than one script batch', async () => {
    begin();
    const users = Array.from({ length: 1200 }, (_, i) => `user-${i}`);
    for (const [i, u] of users.entries()) expect(await presence.connect(u, `s-${i}`)).toBe(true);
    const asked = [...users.filter((_, i) => i % 3 === 0), 'nobody-1', 'nobody-2'];
    expect(await presence.online(asked)).toEqual(new Set(users.filter((_, i) => i % 3 === 0)));
    expect(await presence.online([])).toEqual(new Set());

    clock.advance(TTL_MS - 1);
    expect(await presence.refresh()).toEqual([]);
    clock.advance(TTL_MS - 1);
    expect((await presence.online(users)).size).toBe(1200);
    expect(await presence.refresh()).toEqual([]);
    for (const [i, u] of users.entries()) if (i % 2 === 0) await presence.disconnect(u, `s-${i}`);
    clock.advance(GRACE_MS);
    expect((await presence.reap()).sort()).toEqual(users.filter((_, i) => i % 2 === 0).sort());
    expect(await presence.online(users)).toEqual(new Set(users.filter((_, i) => i % 2 === 1)));
  });

  it('treats ids with separators as they are', async () => {
    begin();
    expect(await presence.connect('a:1', '2:b')).toBe(true);
    expect(await presence.connect('a', '1:2:b')).toBe(true);
    await presence.disconnect('a:1', '2:b');
    clock.advance(GRACE_MS);
    expect(await presence.reap()).toEqual(['a:1']);
    expect(await presence.online(['a:1', 'a'])).toEqual(new Set(['a']));
  });

  it('refuses empty ids', async () => {
    begin();
    await expect(presence.connect('', 's')).rejects.toThrow('user and session ids must be non-empty');
    await expect(presence.disconnect('u', '')).rejects.toThrow('user and session ids must be non-empty');
  });
});

it.each([
  { engine: 'memory', make: (o: PresenceOptions) => new MemoryPresence(o) },
  { engine: 'redis', make: (o: PresenceOptions) => new RedisPresence({ redis: new Redis({ ...REDIS, lazyConnect: true }), ...o }) },
])('$engine engine refuses bad options', ({ make }) => {
  expect(() => make({ ttlMs: 0, graceMs: 0 })).toThrow('ttlMs must be a positive integer, got 0');
  expect(() => make({ ttlMs: 1.5, graceMs: 0 })).toThrow('ttlMs must be a positive integer, got 1.5');
  expect(() => make({ ttlMs: 1, graceMs: -1 })).toThrow('graceMs must be a non-negative integer, got -1');
});

describe('RedisPresence across gateways', () => {
  let store: ReturnType<typeof redisStore>;
  let clock: Clock;
  const begin = () => {
    clock = new Clock();
    store = redisStore({ ttlMs: TTL_MS, graceMs: GRACE_MS, clock: clock.read });
  };
  afterEach(() => store.close());

  /** Records the name of every command the engine's connection sends. */
  const countCommands = (presence: Presence): string[] => recordCommands(store.connections.get(presence)!);

  it('sees users of every gateway; a dead gateway\'s users expire and one gateway reports each once', async () => {
    begin();
    const a = store.gateway();
    const b = store.gateway();
    expect(await a.connect('u1', 's1')).toBe(true);
    expect(await b.connect('u1', 's2')).toBe(false);
    expect(await b.connect('u2', 's3')).toBe(true);
    expect(await b.online(['u1', 'u2'])).toEqual(new Set(['u1', 'u2']));
    expect(await a.online(['u1', 'u2'])).toEqual(new Set(['u1', 'u2']));

    // b dies without a word; a goes on refreshing its own sessions.
    clock.advance(TTL_MS - 1);
    expect(await a.refresh()).toEqual([]);
    clock.advance(1);
    expect(await a.online(['u1', 'u2'])).toEqual(new Set(['u1']));
    // u1 keeps a's session: only u2 went offline, and only the first reap says so.
    expect(await a.reap()).toEqual(['u2']);
    expect(await a.reap()).toEqual([]);
    expect(await b.reap()).toEqual([]);
  });

  it('lingers a closing gateway\'s sessions for the grace, then another gateway reaps them', async () => {
    begin();
    const a = store.gateway();
    const b = store.gateway();
    await a.connect('u1', 's1');
    await a.connect('u2', 's2');
    await b.connect('u2', 's3');
    await a.close();
    await expect(a.online(['u1'])).rejects.toThrow('RedisPresence is closed');
    clock.advance(GRACE_MS - 1);
    expect(await b.online(['u1', 'u2'])).toEqual(new Set(['u1', 'u2']));
    expect(await b.reap()).toEqual([]);
    clock.advance(1);
    expect(await b.reap()).toEqual(['u1']);
    expect(await b.online(['u1', 'u2'])).toEqual(new Set(['u2']));
  });

  it('is one round trip per operation, and online() for 500 users is one command', async () => {
    begin();
    const presence = store.gateway();
    await store.connections.get(presence)!.ping();
    const sent = countCommands(presence);
    const users = Array.from({ length: 500 }, (_, i) => `user-${i}`);
    for (const [i, u] of users.entries()) await presence.connect(u, `s-${i}`);
    expect(sent).toEqual(users.map(() => 'evalsha'));
    sent.length = 0;

    expect((await presence.online(users)).size).toBe(500);
    expect(sent).toEqual(['evalsha']);
    await presence.refresh();
    await presence.disconnect('user-0', 's-0');
    await presence.reap();
    expect(sent).toEqual(['evalsha', 'evalsha', 'evalsha', 'evalsha']);
  });

  it('leaves no key behind: the keys expire after twice the longest an entry lives unwritten', async () => {
    begin();
    const presence = store.gateway();
    await presence.connect('u1', 's1');
    const redis = store.connections.get(presence)!;
    const keys = (await redis.keys(`${store.prefix}*`)).sort();
    expect(keys).toEqual([`${store.prefix}sessions`, `${store.prefix}u:u1`]);
    for (const key of keys) {
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(2 * TTL_MS - 5_000);
      expect(ttl).toBeLessThanOrEqual(2 * TTL_MS);
    }
  });
});

describe('PresenceTracker', () => {
  const trackers: PresenceTracker[] = [];
  let store: ReturnType<typeof redisStore> | undefined;
  afterEach(async () => {
    // A tracker whose Redis is gone cannot linger its sessions: closing it fails, and that is what the test wanted.
    await Promise.allSettled(trackers.splice(0).map((t) => t.close()));
    await store?.close();
    store = undefined;
  });

  /** Announcements in the order they were made, as `user:on` or `user:off`. */
  function track(presence: Presence, refreshMs: number, graceMs: number): { tracker: PresenceTracker; said: string[]; heard(entry: string): Promise<void> } {
    const said: string[] = [];
    const waiters: Array<() => void> = [];
    const tracker = new PresenceTracker(presence, {
      announce: async (userId, online) => {
        said.push(`${userId}:${online ? 'on' : 'off'}`);
        for (const w of waiters.splice(0)) w();
      },
      refreshMs,
      graceMs,
      log: silent,
    });
    trackers.push(tracker);
    const heard = async (entry: string): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!said.includes(entry)) {
        if (Date.now() > deadline) throw new Error(`never announced ${entry}; got ${JSON.stringify(said)}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100).unref();
        });
      }
    };
    return { tracker, said, heard };
  }

  it('announces a user online with the first session and offline after the last one\'s grace, never a quick reconnect', async () => {
    const grace = 100;
    const { tracker, said, heard } = track(new MemoryPresence({ ttlMs: 60_000, graceMs: grace }), 60_000, grace);
    await tracker.connected('u1', 's1');
    await tracker.connected('u1', 's2');
    await tracker.connected('u2', 's3');
    await heard('u2:on');
    tracker.disconnected('u1', 's1');
    tracker.disconnected('u1', 's2');
    await heard('u1:off');
    expect(said).toEqual(['u1:on', 'u2:on', 'u1:off']);

    // u2 drops and is back within the grace; u3's later disconnect is reaped after u2's would have been.
    await tracker.connected('u3', 's4');
    tracker.disconnected('u2', 's3');
    await tracker.connected('u2', 's5');
    tracker.disconnected('u3', 's4');
    await heard('u3:off');
    expect(said).toEqual(['u1:on', 'u2:on', 'u1:off', 'u3:on', 'u3:off']);
    expect(await tracker.online(['u1', 'u2', 'u3'])).toEqual(new Set(['u2']));
  });

  it('announces the users of a gateway that died without cleaning up offline, from another gateway, once', async () => {
    store = redisStore({ ttlMs: 300, graceMs: 100 });
    const dying = store.gateway();
    const a = track(dying, 50, 100);
    const b = track(store.gateway(), 50, 100);
    await a.tracker.connected('u1', 's1');
    await b.tracker.connected('u2', 's2');
    await b.heard('u2:on');
    // The dying gateway loses Redis for good: its refreshes fail and its entry runs out.
    store.connections.get(dying)!.disconnect();
    await b.heard('u1:off');
    expect(a.said).toEqual(['u1:on']);
    expect(b.said).toEqual(['u2:on', 'u1:off']);
    expect(await b.tracker.online(['u1', 'u2'])).toEqual(new Set(['u2']));
  });
});

interface PresenceEvent {
  type: string;
  userId: string;
  online: boolean;
}

interface Member {
  id: string;
  username: string;
  online: boolean;
}

/** Each test's clients, disconnected after it. */
function clientPool() {
  const clients: TestClient[] = [];
  return {
    async connect(server: TestServer, user: TestUser): Promise<TestClient> {
      const c = await connectAs(server, user);
      clients.push(c);
      await c.watchErrors();
      return c;
    },
    async disconnect(c: TestClient): Promise<void> {
      clients.splice(clients.indexOf(c), 1);
      await c.disconnect();
    },
    async disconnectAll(): Promise<void> {
      await Promise.all(clients.splice(0).map((c) => c.disconnect()));
    },
  };
}

const presenceOf = (c: TestClient, topic: string, userId: string): PresenceEvent[] =>
  c.events(topic).filter((e) => e.type === 'PRESENCE' && e.userId === userId) as unknown as PresenceEvent[];

describe('presence end to end on the embedded default', () => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  const pool = clientPool();

  beforeAll(async () => {
    server = await startTestGateway();
    [alice, bob] = await Promise.all([newUser(server.url, 'alice'), newUser(server.url, 'bob')]);
    const room = await api<{ id: string }>(server.url, 'POST', '/api/rooms', { kind: 'group', name: 'presence', members: [bob.username] }, alice.accessToken);
    roomId = room.body.id;
  });
  afterAll(async () => {
    await pool.disconnectAll();
    await server?.stop();
  });

  it('sends PRESENCE to the room when a member connects and, after the grace, when they disconnect', async () => {
    const topic = `/topic/rooms.${roomId}`;
    const a = await pool.connect(server, alice);
    await a.subscribeConfirmed(topic);
    // Members come in join order; these two joined together, so order them by name.
    const members = async () =>
      (await api<Member[]>(server.url, 'GET', `/api/rooms/${roomId}/members`, undefined, alice.accessToken)).body.sort((x, y) => x.username.localeCompare(y.username));
    expect(await members()).toEqual([
      { id: alice.id, username: alice.username, online: true },
      { id: bob.id, username: bob.username, online: false },
    ]);

    const b = await pool.connect(server, bob);
    await a.until(() => presenceOf(a, topic, bob.id).length === 1);
    const frame = a.messages(topic).find((m) => JSON.parse(m.body).userId === bob.id)!;
    expect(frame.headers['event-type']).toBe('PRESENCE');
    expect(frame.headers['sender-session']).toMatch(/^gateway-/);
    expect(JSON.parse(frame.body)).toEqual({ type: 'PRESENCE', userId: bob.id, online: true });
    expect((await members()).map((m) => m.online)).toEqual([true, true]);

    await pool.disconnect(b);
    await a.until(() => presenceOf(a, topic, bob.id).length === 2);
    expect(presenceOf(a, topic, bob.id)).toEqual([
      { type: 'PRESENCE', userId: bob.id, online: true },
      { type: 'PRESENCE', userId: bob.id, online: false },
    ]);
    expect((await members()).map((m) => m.online)).toEqual([true, false]);
    expect(a.errors).toEqual([]);
  });
});

describe('presence across two gateways sharing Redis, RabbitMQ and PostgreSQL', () => {
  let g1: TestServer;
  let g2: TestServer;
  let dropDatabase: () => Promise<void>;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  const pool = clientPool();

  beforeAll(async () => {
    const pg = await createTempPostgres();
    dropDatabase = pg.drop;
    const env = {
      DATABASE_URL: pg.url,
      BROKER_URL: 'amqp://guest:guest@127.0.0.1:5672',
      REDIS_URL: 'redis://127.0.0.1:6379',
      JWT_SECRET: randomUUID() + randomUUID(),
    };
    g1 = await startTestGateway(env);
    g2 = await startTestGateway(env);
    [alice, bob, carol] = await Promise.all([newUser(g1.url, 'alice'), newUser(g2.url, 'bob'), newUser(g1.url, 'carol')]);
    const room = await api<{ id: string }>(g2.url, 'POST', '/api/rooms', { kind: 'group', name: 'two gateways', members: [bob.username, carol.username] }, alice.accessToken);
    roomId = room.body.id;
  });
  afterAll(async () => {
    await pool.disconnectAll();
    await g1?.stop();
    await g2?.stop();
    await dropDatabase?.();
  });

  it('lists members online wherever their session is, and sends PRESENCE across gateways without a flap on reconnect', async () => {
    const topic = `/topic/rooms.${roomId}`;
    const members = async (server: TestServer) =>
      (await api<Member[]>(server.url, 'GET', `/api/rooms/${roomId}/members`, undefined, carol.accessToken)).body
        .sort((x, y) => x.username.localeCompare(y.username))
        .map((m) => [m.username, m.online]);

    const a = await pool.connect(g1, alice);
    await a.subscribeConfirmed(topic);
    const b = await pool.connect(g2, bob);
    for (const g of [g1, g2]) {
      expect(await members(g)).toEqual([
        [alice.username, true],
        [bob.username, true],
        [carol.username, false],
      ]);
    }
    await a.until(() => presenceOf(a, topic, bob.id).length === 1);
    expect(presenceOf(a, topic, bob.id)).toEqual([{ type: 'PRESENCE', userId: bob.id, online: true }]);

    // Bob moves to the other gateway within the grace: no offline, no second online.
    await pool.disconnect(b);
    await pool.connect(g1, bob);
    // Carol comes and goes on bob's old gateway after him: her offline is reaped there after bob's linger ended.
    const c = await pool.connect(g2, carol);
    await a.until(() => presenceOf(a, topic, carol.id).length === 1);
    await pool.disconnect(c);
    await a.until(() => presenceOf(a, topic, carol.id).length === 2);
    expect(presenceOf(a, topic, carol.id)).toEqual([
      { type: 'PRESENCE', userId: carol.id, online: true },
      { type: 'PRESENCE', userId: carol.id, online: false },
    ]);
    expect(presenceOf(a, topic, bob.id)).toEqual([{ type: 'PRESENCE', userId: bob.id, online: true }]);
    for (const g of [g1, g2]) {
      expect(await members(g)).toEqual([
        [alice.username, true],
        [bob.username, true],
        [carol.username, false],
      ]);
    }
    expect(a.errors).toEqual([]);
  });

  it('leaves nothing in Redis once everyone is offline', async () => {
    const a = await pool.connect(g2, alice);
    const topic = `/topic/rooms.${roomId}`;
    await a.subscribeConfirmed(topic);
    await pool.disconnectAll();
    const watcher = await pool.connect(g1, carol);
    await watcher.subscribeConfirmed(topic);
    await watcher.until(() => presenceOf(watcher, topic, alice.id).some((e) => !e.online) && presenceOf(watcher, topic, bob.id).some((e) => !e.online));
    await pool.disconnectAll();
    const redis = new Redis(REDIS);
    try {
      await expect.poll(() => redis.exists(...[alice, bob, carol].map((u) => `presence:u:${u.id}`)), { timeout: 10_000 }).toBe(0);
      const index = await redis.zrange('presence:sessions', '0', '-1');
      expect(index.filter((m) => [alice, bob, carol].some((u) => m.includes(u.id)))).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });
});
