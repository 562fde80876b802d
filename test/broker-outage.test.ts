import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTempPostgres } from '../scripts/temp-postgres.ts';
import { api, connectAs, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import type { TestClient } from './support/stomp-client.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';

/** What clients see while their gateway's broker link is down: HEALTH down/up, RECEIPTs for what is stored, BROKER_UNAVAILABLE for the rest, and nothing lost. */
describe('broker outage as clients see it', () => {
  let pg: Awaited<ReturnType<typeof createTempPostgres>>;
  let proxy: TcpProxy;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    pg = await createTempPostgres();
    proxy = await startTcpProxy(5672);
    server = await startTestGateway({
      DATABASE_URL: pg.url,
      BROKER_URL: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
      REDIS_URL: 'redis://127.0.0.1:6379',
      BROKER_QUEUE_EXPIRES_MS: '10000',
      BROKER_RPC_TIMEOUT_MS: '2000',
    });
    [alice, bob] = await Promise.all([newUser(server.url, 'alice'), newUser(server.url, 'bob')]);
    roomId = (await api<{ id: string }>(server.url, 'POST', '/api/rooms', { kind: 'direct', members: [bob.username] }, alice.accessToken)).body.id;
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await server?.stop();
    await proxy?.close();
    await pg?.drop();
  });

  it('tells clients the broker is down, confirms stored sends, refuses the rest with BROKER_UNAVAILABLE, and lands the stored message once when it is back', async () => {
    const topic = `/topic/rooms.${roomId}`;
    const [a, b] = await Promise.all([connectAs(server, alice), connectAs(server, bob)]);
    clients.push(a, b);
    for (const c of [a, b]) {
      await c.watchErrors();
      await c.subscribeConfirmed('/topic/system.health');
      await c.subscribeConfirmed(topic);
    }
    const health = (c: TestClient) => c.events('/topic/system.health').map((e) => e.broker);
    for (const c of [a, b]) expect(health(c)).toEqual(['up']);
    const metrics = async () => (await (await fetch(`${server.url}/metrics`)).text()).match(/^chat_broker_up\{[^}]*\} (\d)$/m)![1];
    expect(await metrics()).toBe('1');

    proxy.pause();
    proxy.dropAll();
    for (const c of [a, b]) await c.until(() => health(c).length === 2);
    for (const c of [a, b]) expect(health(c)).toEqual(['up', 'down']);
    expect(await metrics()).toBe('0');
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);

    // The send is stored: as good as sent (the outbox publishes it), so it gets its RECEIPT. What is not stored
    // (a plain /topic send, a TYPING announcement) needs the broker and is refused.
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'during the outage' }, { 'client-msg-id': 'outage-1' });
    await expect(a.sendConfirmed('/topic/outage-check', 'plain')).rejects.toThrow(/^BROKER_UNAVAILABLE/);
    await expect(a.sendConfirmed(`/app/rooms.${roomId}.typing`, { typing: true })).rejects.toThrow(/^BROKER_UNAVAILABLE/);
    expect(a.errors.map((e) => e.code)).toEqual(['BROKER_UNAVAILABLE', 'BROKER_UNAVAILABLE']);

    proxy.resume();
    for (const c of [a, b]) await c.until(() => health(c).length === 3);
    for (const c of [a, b]) expect(health(c)).toEqual(['up', 'down', 'up']);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);

    // Both members get the stored message once the link is back (read from the store), and a retry under the same
    // client-msg-id is confirmed without a second copy anywhere.
    for (const c of [a, b]) await c.until(() => c.events(topic).some((e) => e.text === 'during the outage'));
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'during the outage' }, { 'client-msg-id': 'outage-1' });
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'after' });
    for (const c of [a, b]) await c.until(() => c.events(topic).some((e) => e.text === 'after'));
    for (const c of [a, b]) expect(c.logged(topic).map((e) => e.text)).toEqual(['during the outage', 'after']);
    const history = await api<Array<{ text: string }>>(server.url, 'GET', `/api/rooms/${roomId}/messages`, undefined, bob.accessToken);
    expect(history.body.map((e) => e.text)).toEqual(['during the outage', 'after']);
  });

  it('takes a room SUBSCRIBE while the link is down, binds it when the link returns, and catches up from the store', async () => {
    const topic = `/topic/rooms.${roomId}`;
    const a = await connectAs(server, alice);
    clients.push(a);
    await a.watchErrors();
    await a.subscribeConfirmed('/topic/system.health');
    const health = () => a.events('/topic/system.health').map((e) => e.broker);
    proxy.pause();
    proxy.dropAll();
    await a.until(() => health().length === 2);

    // A client that (re)connects during the outage: its SUBSCRIBE is answered, not refused.
    const b = await connectAs(server, bob);
    clients.push(b);
    await b.watchErrors();
    await b.subscribeConfirmed(topic, { 'since-seq': String((await lastSeq()) ?? 0) });
    // Stored during the outage; whether its sender is told BROKER_UNAVAILABLE or gets a receipt is another test's.
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'while b was subscribing' }).catch(() => {});

    proxy.resume();
    await a.until(() => health().length === 3);
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'once the link is back' });
    await b.until(() => b.events(topic).some((e) => e.text === 'once the link is back'));
    expect(b.logged(topic).map((e) => e.text)).toEqual(['while b was subscribing', 'once the link is back']);
    expect(b.errors).toEqual([]);
  });

  it('gives up on a RabbitMQ that stops answering: the SUBSCRIBE fails, /readyz says not ready until a new link is up', async () => {
    const c = await connectAs(server, alice);
    clients.push(c);
    await c.watchErrors();
    // Nothing RabbitMQ sends arrives any more, and no new connection gets through.
    proxy.pause();
    proxy.silence();
    c.subscribe('/topic/silent-check', { 'client-request-code': 'silent' });
    // Without a bound on the bind, the heart-beat would notice only after twice 10 s.
    await c.until(() => c.errors.length === 1, 8_000);
    expect(c.errors.map((e) => [e.code, e.clientRequestCode])).toEqual([['BROKER_UNAVAILABLE', 'silent']]);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);

    proxy.resume();
    await vi.waitFor(async () => expect((await fetch(`${server.url}/readyz`)).status).toBe(200), { timeout: 15_000, interval: 100 });
    await c.subscribeConfirmed('/topic/silent-check');
    await c.sendConfirmed('/topic/silent-check', 'back');
    await c.until(() => c.messages('/topic/silent-check').length === 1);
    expect(c.messages('/topic/silent-check').map((m) => m.body)).toEqual(['back']);
  });

  const lastSeq = async () =>
    (await api<Array<{ id: string; lastSeq: number }>>(server.url, 'GET', '/api/rooms', undefined, bob.accessToken)).body.find((r) => r.id === roomId)
      ?.lastSeq;
});
