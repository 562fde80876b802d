import { randomBytes } from 'node:crypto';
import type { IFrame } from '@stomp/stompjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, startGatewayProcess, type GatewayProcess } from '../scripts/gateway-process.ts';
import { createTempPostgres } from '../scripts/temp-postgres.ts';
import { api, connectAs, newUser, TEST_RATE_LIMITS, type TestUser } from './support/gateway.ts';
import type { TestClient } from './support/stomp-client.ts';

/** SIGTERM under traffic: clients are told to reconnect, the gateway exits cleanly in time, and nothing is lost or doubled. */
describe('graceful shutdown', () => {
  let pg: Awaited<ReturnType<typeof createTempPostgres>>;
  let leaving: GatewayProcess;
  let staying: GatewayProcess;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    pg = await createTempPostgres();
    const env = {
      DATABASE_URL: pg.url,
      BROKER_URL: 'amqp://guest:guest@127.0.0.1:5672',
      REDIS_URL: 'redis://127.0.0.1:6379',
      JWT_SECRET: randomBytes(32).toString('hex'),
      LOG_LEVEL: 'warn',
      BROKER_QUEUE_EXPIRES_MS: '10000',
      SHUTDOWN_TIMEOUT_MS: '10000',
      ...TEST_RATE_LIMITS,
    };
    const [a, b] = (await freePorts(2)) as [number, number];
    [leaving, staying] = await Promise.all([startGatewayProcess(`shutdown-a-${a}`, a, env), startGatewayProcess(`shutdown-b-${b}`, b, env)]);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    for (const g of [leaving, staying]) g?.kill('SIGKILL');
    await pg?.drop();
  });

  it('sends ERROR with a reconnect hint, exits 0, and resumed clients miss nothing and see nothing twice', async () => {
    const ws = (g: GatewayProcess) => ({ wsUrl: `${g.url.replace('http', 'ws')}/ws` });
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((p) => newUser(staying.url, p))) as [TestUser, TestUser, TestUser];
    const room = await api<{ id: string }>(staying.url, 'POST', '/api/rooms', { kind: 'group', name: 'stay', members: [bob.username, carol.username] }, alice.accessToken);
    const topic = `/topic/rooms.${room.body.id}`;

    const readers = await Promise.all([bob, carol].map((u) => connectAs(ws(leaving), u)));
    const errorFrames: IFrame[][] = readers.map(() => []);
    readers.forEach((c, i) => (c.client.onStompError = (f) => errorFrames[i]!.push(f)));
    for (const c of readers) await c.subscribeConfirmed(topic, { 'since-seq': '0' });
    const sender = await connectAs(ws(staying), alice);
    clients.push(...readers, sender);

    // Each send waits for its RECEIPT (stored and published), not for its delivery: SIGTERM lands after the 30th
    // receipt, with deliveries to the readers still in flight and 30 more sends to come while the gateway stops.
    const total = 60;
    const send = (i: number) => sender.sendConfirmed(`/app/rooms.${room.body.id}.send`, { text: `n${i}` });
    for (let i = 1; i <= total; i++) {
      await send(i);
      if (i === total / 2) leaving.kill('SIGTERM');
    }
    expect(await leaving.exited).toBe(0);

    for (const frames of errorFrames) {
      expect(frames.map((f) => [f.headers.message, f.headers.reconnect])).toEqual([['server shutting down', 'true']]);
    }
    // Each reader comes back on the other gateway with its session-resume token and the last seq it saw.
    const seqs = (c: TestClient) => c.logged(topic).map((e) => e.seq as number);
    const resumed = await Promise.all(
      readers.map(async (old, i) => {
        const c = await connectAs(ws(staying), [bob, carol][i]!, { 'session-resume': old.connectedHeaders['session-resume']! });
        clients.push(c);
        await c.subscribeConfirmed(topic, { 'since-seq': String(seqs(old).at(-1) ?? 0) });
        return c;
      }),
    );
    // A fence: the room delivers in seq order, so once one more message has arrived, any copy of an earlier one
    // (a replay overlapping what the old session had, a redelivery) would have arrived before it.
    const fence = total + 1;
    await send(fence);
    for (const c of resumed) await c.until(() => seqs(c).includes(fence));
    readers.forEach((old, i) => {
      expect([...seqs(old), ...seqs(resumed[i]!)]).toEqual(Array.from({ length: fence }, (_, k) => k + 1));
    });
  });
});
