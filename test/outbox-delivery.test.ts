import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AmqpBroker } from '../src/broker/amqp-broker.ts';
import type { BrokerMessage } from '../src/broker/broker.ts';
import { createLogger } from '../src/logger.ts';
import { openDatabase, type Database } from '../src/store/database.ts';
import { MessageStore } from '../src/store/messages.ts';
import { OutboxStore } from '../src/store/outbox-store.ts';
import { createTempPostgres } from '../scripts/temp-postgres.ts';
import { api, connectAs, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import type { TestClient } from './support/stomp-client.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';

async function until(predicate: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  await vi.waitFor(async () => expect(await predicate()).toBe(true), { timeout: timeoutMs, interval: 50 });
}

/**
 * A stored room event is as good as sent, across two gateways on the real RabbitMQ, Redis and PostgreSQL: gateway A
 * reaches RabbitMQ through a proxy the test cuts, gateway B directly. Nothing but the outbox sweep reveals what A
 * could not publish: no other traffic reaches B's subscribers.
 */
describe('the outbox across two gateways', () => {
  const log = createLogger('silent');
  let pg: Awaited<ReturnType<typeof createTempPostgres>>;
  let db: Database;
  let proxy: TcpProxy;
  let gatewayA: TestServer;
  let gatewayB: TestServer;
  let observer: AmqpBroker;
  const published: BrokerMessage[] = [];
  /** What was published of the room's history (PRESENCE announcements left out). */
  const roomEventsPublished = () => published.filter((m) => m.headers.seq !== undefined);
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  let topic: string;
  const clients: TestClient[] = [];

  const republished = async (server: TestServer) =>
    Number(/^chat_outbox_republished_total\{[^}]*\} (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);
  const health = (c: TestClient) => c.events('/topic/system.health').map((e) => e.broker);
  const seqs = (c: TestClient) => c.logged(topic).map((e) => e.seq);
  const unpublished = () => new OutboxStore(db.prisma).unpublished(new Date(Date.now() + 60_000), 100);

  beforeAll(async () => {
    pg = await createTempPostgres();
    proxy = await startTcpProxy(5672);
    const env = {
      DATABASE_URL: pg.url,
      REDIS_URL: 'redis://127.0.0.1:6379',
      JWT_SECRET: randomBytes(32).toString('hex'),
      BROKER_QUEUE_EXPIRES_MS: '10000',
      OUTBOX_SWEEP_MS: '100',
      OUTBOX_AGE_MS: '1000',
    };
    gatewayA = await startTestGateway({ ...env, BROKER_URL: `amqp://guest:guest@127.0.0.1:${proxy.port}` });
    gatewayB = await startTestGateway({ ...env, BROKER_URL: 'amqp://guest:guest@127.0.0.1:5672' });
    db = await openDatabase({ databaseUrl: pg.url, dataDir: tmpdir(), log });
    [alice, bob, carol] = await Promise.all([newUser(gatewayA.url, 'alice'), newUser(gatewayA.url, 'bob'), newUser(gatewayA.url, 'carol')]);
    roomId = (await api<{ id: string }>(gatewayA.url, 'POST', '/api/rooms', { kind: 'open', name: 'outbox' }, alice.accessToken)).body.id;
    topic = `/topic/rooms.${roomId}`;
    expect((await api(gatewayB.url, 'POST', `/api/rooms/${roomId}/join`, undefined, bob.accessToken)).status).toBe(204);
    // Counts every publish of the room's events on RabbitMQ, whoever made it.
    observer = new AmqpBroker({ url: 'amqp://guest:guest@127.0.0.1:5672', gatewayId: `outbox-observer-${process.pid}-${Date.now()}`, prefetch: 100, queueExpiresMs: 10_000, queueMaxLength: 1000, rpcTimeoutMs: 5_000, log });
    await observer.start((d) => {
      published.push(d.message);
      d.ack();
    });
    await observer.bind('chat', `rooms.${roomId}`);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await observer?.close();
    await gatewayA?.stop();
    await gatewayB?.stop();
    await db?.close();
    await proxy?.close();
    await pg?.drop();
  });

  it('confirms what A stored while its broker link was down, and B\'s members get it once, in order, with no other traffic', async () => {
    const [a, b] = await Promise.all([connectAs(gatewayA, alice), connectAs(gatewayB, bob)]);
    clients.push(a, b);
    for (const c of [a, b]) {
      await c.watchErrors();
      await c.subscribeConfirmed('/topic/system.health');
      await c.subscribeConfirmed(topic);
    }
    const before = await republished(gatewayA) + await republished(gatewayB);

    proxy.pause();
    proxy.dropAll();
    await a.until(() => health(a).length === 2);
    expect(health(a)).toEqual(['up', 'down']);

    // Every operation that stores an event is confirmed; TYPING stores nothing and still needs the broker.
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'one' }, { 'client-msg-id': 'outbox-1' });
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'two' }, { 'client-msg-id': 'outbox-2' });
    const one = (await api<Array<{ id: string; text: string }>>(gatewayA.url, 'GET', `/api/rooms/${roomId}/messages`, undefined, alice.accessToken)).body.find(
      (e) => e.text === 'one',
    )!;
    await a.sendConfirmed(`/app/rooms.${roomId}.edit`, { messageId: one.id, text: 'one, edited' });
    await a.sendConfirmed(`/app/rooms.${roomId}.delete`, { messageId: one.id });
    expect((await api(gatewayA.url, 'POST', `/api/rooms/${roomId}/join`, undefined, carol.accessToken)).status).toBe(204);
    expect((await api(gatewayA.url, 'POST', `/api/rooms/${roomId}/leave`, undefined, carol.accessToken)).status).toBe(204);
    await expect(a.sendConfirmed(`/app/rooms.${roomId}.typing`, { typing: true })).rejects.toThrow(/^BROKER_UNAVAILABLE/);
    expect(a.errors.map((e) => e.code)).toEqual(['BROKER_UNAVAILABLE']);

    // B's link is up: its sweep publishes them (A's, with its link down, does not try), and bob gets each once, in
    // order. They are published as the store has them now: the deleted message's event without its text.
    const expected = ['CHAT ', 'CHAT two', 'EDIT one, edited', 'DELETE', `ENTER ${carol.username} joined`, `LEAVE ${carol.username} left`];
    const described = (c: TestClient) => c.logged(topic).map((e) => `${String(e.type)}${e.text === undefined ? '' : ` ${String(e.text)}`}`);
    await b.until(() => b.logged(topic).length >= expected.length);
    expect(described(b)).toEqual(expected);
    expect(seqs(b)).toEqual([2, 3, 4, 5, 6, 7]); // 1 is bob's own ENTER, before he subscribed

    // A's link returns: alice's feed catches up from the store. One more send, and everyone has everything once.
    proxy.resume();
    await a.until(() => health(a).length === 3);
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'after' });
    for (const c of [a, b]) await c.until(() => c.logged(topic).some((e) => e.text === 'after'));
    for (const c of [a, b]) {
      expect(described(c)).toEqual([...expected, 'CHAT after']);
      expect(seqs(c)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    }

    // Each event went to RabbitMQ exactly once: the six by a sweep, 'after' by A itself.
    await until(async () => (await unpublished()).length === 0);
    await until(async () => published.some((m) => m.headers.seq === '8'));
    expect(roomEventsPublished().map((m) => m.headers.seq)).toEqual(['2', '3', '4', '5', '6', '7', '8']);
    expect((await republished(gatewayA)) + (await republished(gatewayB)) - before).toBe(6);
  });

  it('publishes, through another gateway\'s sweep, an event stored by a gateway that died before publishing it, once though two gateways sweep', async () => {
    const [a, b] = clients as [TestClient, TestClient];
    published.length = 0;
    // The dying gateway stored it and never published it.
    const { stored } = await new MessageStore(db.prisma).append({
      roomId,
      type: 'CHAT',
      sender: { id: alice.id, username: alice.username },
      text: 'from a dead gateway',
      origin: { session: 'dead-gateway-session', seq: 1 },
    });
    expect(stored.event.seq).toBe(9);
    for (const c of [a, b]) await c.until(() => c.logged(topic).some((e) => e.text === 'from a dead gateway'));
    for (const c of [a, b]) {
      expect(seqs(c)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
      const copies = c.messages(topic).filter((m) => m.headers['sender-session'] === 'dead-gateway-session');
      expect(copies.map((m) => m.headers['sender-seq'])).toEqual(['1']);
    }
    // Both gateways sweep every 100 ms; once it is marked, nobody publishes it again. It went out once.
    await until(async () => (await unpublished()).length === 0);
    await until(async () => roomEventsPublished().length > 0);
    expect(roomEventsPublished().map((m) => [m.headers.seq, m.headers['sender-session'], m.headers['sender-seq']])).toEqual([['9', 'dead-gateway-session', '1']]);
  });
});
