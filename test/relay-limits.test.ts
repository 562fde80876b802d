import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, startGatewayProcess, type GatewayProcess } from '../scripts/gateway-process.ts';
import { api, connectAs, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import type { TestClient } from './support/stomp-client.ts';

/**
 * Frames an attacker sent to freeze or wedge a gateway, exactly as reported: each is refused with BAD_REQUEST
 * (carrying its client-request-code) and counted, and the gateway goes on serving everyone else.
 */

const RUN = `relaylimits-${randomUUID().slice(0, 8)}`;
/** Bound on "the gateway still answers": an attacked gateway of the old code stayed frozen for minutes. */
const DEADLINE_MS = 15_000;

/** `promise`, or a rejection naming `what` once the deadline has passed. */
function byDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${DEADLINE_MS} ms`)), DEADLINE_MS);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** chat_limit_refusals_total{limit} as /metrics reports it (0 when never counted). */
async function refusals(baseUrl: string, limit: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const m = new RegExp(`^chat_limit_refusals_total\\{[^}]*limit="${limit}"[^}]*\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

const words = (n: number, word = 'a'): string => Array(n).fill(word).join('.');
const errorsOf = (c: TestClient) => c.errors.map((e) => [e.code, e.clientRequestCode]);

describe('a topic pattern built to make matching explode', () => {
  let gateway: GatewayProcess;
  let dataDir: string;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'chat-freeze-'));
    const [port] = await freePorts(1);
    // The embedded engines: topic matching happens in the gateway's own event loop.
    gateway = await startGatewayProcess(`${RUN}-freeze`, port!, {
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      BROKER_URL: '',
      REDIS_URL: '',
      DATABASE_URL: '',
    });
  });

  afterAll(async () => {
    // Killed first: a frozen gateway would never answer the clients' DISCONNECT.
    gateway?.kill('SIGKILL');
    await gateway?.exited;
    await Promise.all(clients.map((c) => c.disconnect()));
    await rm(dataDir, { recursive: true, force: true });
  });

  it('is refused with BAD_REQUEST before any matching, and the gateway keeps answering others', async () => {
    const server = { url: gateway.url, wsUrl: `${gateway.url.replace('http', 'ws')}/ws` };
    const [mallory, bob] = await Promise.all([newUser(server.url, 'mallory'), newUser(server.url, 'bob')]);
    const [attacker, bystander] = await Promise.all([connectAs(server, mallory), connectAs(server, bob)]);
    clients.push(attacker, bystander);
    await attacker.watchErrors();
    await bystander.subscribeConfirmed(`/topic/${RUN}.chatter`);

    attacker.subscribe('/topic/#.#.#.#.#.#.#.#.#.#.z', { 'client-request-code': 'sub-10' });
    attacker.send(`/topic/${words(26)}`, 'x', { 'client-request-code': 'send-26' });
    attacker.subscribe(`/topic/${words(20, '#')}.z`, { 'client-request-code': 'sub-20' });
    attacker.send(`/topic/${words(60)}`, 'x', { 'client-request-code': 'send-60' });

    await byDeadline(bystander.sendConfirmed(`/topic/${RUN}.chatter`, 'still here'), 'a SEND of another client');
    await byDeadline(bystander.until(() => bystander.messages(`/topic/${RUN}.chatter`).length === 1), 'its MESSAGE');
    await byDeadline(attacker.until(() => attacker.errors.length === 4), 'the four refusals');
    expect(errorsOf(attacker)).toEqual([
      ['BAD_REQUEST', 'sub-10'],
      ['BAD_REQUEST', 'send-26'],
      ['BAD_REQUEST', 'sub-20'],
      ['BAD_REQUEST', 'send-60'],
    ]);
    expect(await refusals(gateway.url, 'topic_pattern')).toBe(4);
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(200);
  });
});

describe('names and numbers RabbitMQ cannot take, on a gateway on RabbitMQ', () => {
  let server: TestServer;
  let alice: TestUser;
  let roomId: string;
  const clients: TestClient[] = [];
  const queues = [`${RUN}-p`, `${RUN}-ok`, `${RUN}-full`];

  beforeAll(async () => {
    server = await startTestGateway({ BROKER_URL: 'amqp://guest:guest@127.0.0.1:5672', QUEUE_MAX_LENGTH: '2' });
    alice = await newUser(server.url, 'alice');
    roomId = (await api<{ id: string }>(server.url, 'POST', '/api/rooms', { kind: 'group', name: RUN }, alice.accessToken)).body.id;
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await server?.stop();
    const conn = await connect('amqp://guest:guest@127.0.0.1:5672');
    const ch = await conn.createChannel();
    for (const q of queues) await ch.deleteQueue(q);
    await conn.close();
  });

  it('refuses each with BAD_REQUEST, and every later SUBSCRIBE on the gateway, of any kind, still works', async () => {
    const mallory = await newUser(server.url, 'mallory');
    const attacker = await connectAs(server, mallory);
    clients.push(attacker);
    await attacker.watchErrors();

    attacker.subscribe(`/topic/${'a'.repeat(300)}`, { 'client-request-code': 'long-topic' });
    attacker.subscribe(`/queue/${'q'.repeat(300)}`, { 'client-request-code': 'long-queue' });
    attacker.subscribe(`/queue/${RUN}-p`, { 'prefetch-count': '70000', 'client-request-code': 'prefetch' });
    attacker.subscribe('/queue/amq.x', { 'client-request-code': 'amq' });
    attacker.send(`/topic/${RUN}.ok`, 'x', { ['h'.repeat(300)]: 'v', 'client-request-code': 'long-header' });
    await byDeadline(attacker.until(() => attacker.errors.length === 5), 'the five refusals');
    expect(errorsOf(attacker)).toEqual([
      ['BAD_REQUEST', 'long-topic'],
      ['BAD_REQUEST', 'long-queue'],
      ['BAD_REQUEST', 'prefetch'],
      ['BAD_REQUEST', 'amq'],
      ['BAD_REQUEST', 'long-header'],
    ]);
    expect(await refusals(server.url, 'amqp_name')).toBe(4);
    expect(await refusals(server.url, 'prefetch')).toBe(1);

    // A new client afterwards: a room, a /queue and a /topic subscription, each live and delivering.
    const c = await connectAs(server, alice);
    clients.push(c);
    await byDeadline(c.subscribeConfirmed(`/topic/rooms.${roomId}`), 'a room SUBSCRIBE');
    await byDeadline(c.subscribeConfirmed(`/queue/${RUN}-ok`), 'a /queue SUBSCRIBE');
    await byDeadline(c.subscribeConfirmed(`/topic/${RUN}.#`), 'a /topic SUBSCRIBE');
    await c.sendConfirmed(`/app/rooms.${roomId}.send`, { type: 'CHAT', text: 'hello' });
    await c.sendConfirmed(`/queue/${RUN}-ok`, 'to the queue');
    await c.sendConfirmed(`/topic/${RUN}.ok`, 'to the topic');
    await byDeadline(
      c.until(() => c.logged(`/topic/rooms.${roomId}`).length === 1 && c.messages(`/queue/${RUN}-ok`).length === 1 && c.messages(`/topic/${RUN}.#`).length === 1),
      'the three deliveries',
    );
    expect(c.messages(`/queue/${RUN}-ok`).map((m) => m.body)).toEqual(['to the queue']);
    expect(c.messages(`/topic/${RUN}.#`).map((m) => m.body)).toEqual(['to the topic']);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  });

  it('answers a SEND to a full queue with RATE_LIMITED instead of dropping it', async () => {
    const c = await connectAs(server, alice);
    clients.push(c);
    await c.watchErrors();
    const q = `/queue/${RUN}-full`;
    await c.sendConfirmed(q, 'one');
    await c.sendConfirmed(q, 'two');
    await expect(c.sendConfirmed(q, 'three', { 'client-request-code': 'full' })).rejects.toThrow(/^RATE_LIMITED: queue .* is full/);
    expect(errorsOf(c)).toEqual([['RATE_LIMITED', 'full']]);
    expect(await refusals(server.url, 'queue_length')).toBe(1);

    await c.subscribeConfirmed(q);
    await c.sendConfirmed(q, 'end');
    await c.until(() => c.messages(q).length === 3);
    expect(c.messages(q).map((m) => m.body)).toEqual(['one', 'two', 'end']);
  });
});
