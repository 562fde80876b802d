import { randomBytes } from 'node:crypto';
import type { IMessage } from '@stomp/stompjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTempPostgres } from '../scripts/temp-postgres.ts';
import type { OutboundCopy } from '../src/delivery/interceptor.ts';
import { api, connectAs, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import { REDIS } from './support/redis.ts';
import type { TestClient } from './support/stomp-client.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';
import { RABBITMQ_URL } from './support/variants.ts';

/**
 * Redis (delivery history) cut under a gateway on RabbitMQ + Redis + PostgreSQL: every delivery whose claim fails
 * goes back to the broker (the fan-out's and the relay's nack, the room feed's failed()), and once Redis is back
 * every subscriber has every message exactly once.
 */
describe('Redis outage at gateway level', () => {
  let pg: Awaited<ReturnType<typeof createTempPostgres>>;
  let proxy: TcpProxy;
  let server: TestServer;
  const clients: TestClient[] = [];
  /** Bound on each wait: far beyond any need, its expiry is a failure. */
  const UNTIL = { timeout: 30_000, interval: 20 };

  beforeAll(async () => {
    pg = await createTempPostgres();
    proxy = await startTcpProxy(REDIS.port, REDIS.host);
    server = await startTestGateway({
      DATABASE_URL: pg.url,
      BROKER_URL: RABBITMQ_URL,
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      JWT_SECRET: randomBytes(32).toString('hex'),
      BROKER_QUEUE_EXPIRES_MS: '10000',
    });
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await server?.stop();
    await proxy?.close();
    await pg?.drop();
  });

  it('nacks what it cannot claim while Redis is down, and delivers every room, topic and queue message once when it is back', async () => {
    const [alice, bob, carol, dave] = (await Promise.all(['alice', 'bob', 'carol', 'dave'].map((p) => newUser(server.url, p)))) as [
      TestUser,
      TestUser,
      TestUser,
      TestUser,
    ];
    const room = await api<{ id: string }>(server.url, 'POST', '/api/rooms', { kind: 'group', name: 'outage', members: [bob.username, carol.username] }, alice.accessToken);
    const roomTopic = `/topic/rooms.${room.body.id}`;
    const name = `redis-outage-${randomBytes(6).toString('hex')}`;
    const queue = `/queue/${name}`;
    const topic = `/topic/${name}`;

    const members = await Promise.all([alice, bob, carol].map((u) => connectAs(server, u)));
    const consumer = await connectAs(server, dave);
    clients.push(...members, consumer);
    for (const c of members) await c.subscribeConfirmed(roomTopic);
    // A relay topic has no store to catch up from: what it gets after the outage came back from the broker.
    await consumer.subscribeConfirmed(topic);
    // `ack: client`, acknowledged as each frame arrives.
    const fromQueue: IMessage[] = [];
    await new Promise<void>((resolve) => {
      consumer.client.watchForReceipt('queue-sub', () => resolve());
      consumer.client.subscribe(
        queue,
        (m) => {
          fromQueue.push(m);
          m.ack();
        },
        { ack: 'client', receipt: 'queue-sub' },
      );
    });
    const [a, b] = members as [TestClient, TestClient, TestClient];
    const texts = (c: TestClient) => c.logged(roomTopic).map((e) => e.text as string);

    // Which messages the gateway failed to deliver, by the interceptor's key (the deliveries it rejects are nacked),
    // how many deliveries are unsettled, and, once armed, Redis cut right after a room frame goes out, before it is
    // recorded.
    const failed = new Set<string>();
    let unsettled = 0;
    const cut = (): void => {
      proxy.pause();
      proxy.dropAll();
    };
    let cutAtNextRoomWrite = false;
    const { interceptor } = server.gateway;
    const deliver = interceptor.deliver.bind(interceptor);
    interceptor.deliver = (copies: readonly OutboundCopy[]) => {
      const settled = deliver(
        copies.map((copy) => ({
          ...copy,
          write: () => {
            const ok = copy.write();
            if (cutAtNextRoomWrite && copy.key.sender.endsWith(`>${roomTopic}`)) {
              cutAtNextRoomWrite = false;
              cut();
            }
            return ok;
          },
        })),
      );
      unsettled++;
      settled.then(
        () => unsettled--,
        () => {
          unsettled--;
          for (const { key } of copies) failed.add(`${key.sender}#${key.seq}`);
        },
      );
      return settled;
    };
    const failedInto = (destination: string) => [...failed].filter((k) => k.split('#')[0]!.endsWith(`>${destination}`)).length;

    // Members chat in turns; the queue and the topic get a message each turn.
    let turn = 0;
    const chat = async (phase: string, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const text = `${phase}${i}`;
        const from = turn++ % 2 === 0 ? a : b;
        await from.sendConfirmed(`/app/rooms.${room.body.id}.send`, { text });
        await from.sendConfirmed(queue, text);
        await from.sendConfirmed(topic, text);
      }
    };

    await chat('before', 3);
    for (const c of members) await c.until(() => texts(c).length === 3);
    await vi.waitFor(() => expect([fromQueue.length, consumer.messages(topic).length]).toEqual([3, 3]), UNTIL);
    // Quiet: every delivery recorded, so the cut below finds exactly one in flight.
    await vi.waitFor(() => expect(unsettled).toBe(0), UNTIL);
    expect(failed.size).toBe(0);

    cutAtNextRoomWrite = true;
    await b.sendConfirmed(`/app/rooms.${room.body.id}.send`, { text: 'cut' });
    await vi.waitFor(() => expect(cutAtNextRoomWrite).toBe(false), UNTIL);
    await chat('outage', 6);
    // Every message sent during the outage was refused at least once before Redis comes back, and each refused
    // delivery went back to the broker. Not the room message whose frames went out at the cut: those frames are on
    // the wire, so its delivery waits until their record lands, once Redis is back (refused and redelivered, it
    // would be written twice).
    await vi.waitFor(() => expect([roomTopic, queue, topic].map(failedInto)).toEqual([6, 6, 6]), UNTIL);
    proxy.resume();
    await chat('after', 3);
    // A fence: the room and the queue deliver in order, so once it is in, anything doubled before it is in too.
    await a.sendConfirmed(`/app/rooms.${room.body.id}.send`, { text: 'fence' });
    await a.sendConfirmed(queue, 'fence');
    await a.sendConfirmed(topic, 'fence');
    for (const c of members) await c.until(() => texts(c).includes('fence'), UNTIL.timeout);
    await vi.waitFor(() => expect([fromQueue, consumer.messages(topic)].map((ms) => ms.some((m) => m.body === 'fence'))).toEqual([true, true]), UNTIL);

    const sent = [...['before', 'outage', 'after'].flatMap((phase, p) => Array.from({ length: [3, 6, 3][p]! }, (_, i) => `${phase}${i}`)), 'fence'];
    for (const c of members) {
      expect(texts(c)).toEqual([...sent.slice(0, 3), 'cut', ...sent.slice(3)]);
      const seqs = c.logged(roomTopic).map((e) => e.seq as number);
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    }
    expect(fromQueue.map((m) => m.body)).toEqual(sent);
    // The queue's copies sent during the outage came back from the broker after a nack.
    const redelivered = (phase: string) => fromQueue.filter((m) => m.body.startsWith(phase)).map((m) => m.headers.redelivered);
    expect(redelivered('before')).toEqual(['false', 'false', 'false']);
    expect(redelivered('outage')).toEqual(Array(6).fill('true'));
    // A relay topic is not ordered across redeliveries, but each message arrives once.
    expect(consumer.messages(topic).map((m) => m.body).sort()).toEqual([...sent].sort());
  });
});
