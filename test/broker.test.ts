import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import net from 'node:net';
import { type Channel, type ChannelModel, type ConsumeMessage, connect } from 'amqplib';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AmqpBroker } from '../src/broker/amqp-broker.ts';
import {
  type Broker,
  type BrokerHealth,
  type BrokerMessage,
  BrokerUnavailableError,
  type Delivery,
  type DeliveryHandler,
  QueueFullError,
} from '../src/broker/broker.ts';
import { MemoryBroker } from '../src/broker/memory-broker.ts';
import { createLogger, type Logger } from '../src/logger.ts';
import { startTcpProxy } from './support/tcp-proxy.ts';

/** Every name this run creates on the shared RabbitMQ starts with this. */
const RUN = `brokertest-${randomUUID().slice(0, 8)}`;
const RABBIT_PORT = 5672;
const rabbitUrl = (port: number): string => `amqp://guest:guest@127.0.0.1:${port}`;
const WAIT_MS = 15_000;
/** QUEUE_MAX_LENGTH of the brokers under test unless a test sets its own: far above what any test queues. */
const QUEUE_MAX_LENGTH = 1000;

interface EngineOptions {
  queueMaxLength: number;
  rpcTimeoutMs: number;
  /** AmqpBroker only. */
  confirmTimeoutMs?: number;
  heartbeatS?: number;
  log?: Logger;
}

interface Engine {
  name: string;
  create(gatewayId: string, port: number, options: EngineOptions): Broker;
  /** Remove what brokers of this engine left behind on the server. */
  purge(gatewayIds: string[], queues: string[]): Promise<void>;
}

const memoryEngine: Engine = {
  name: 'memory',
  create: (_id, _port, options) => new MemoryBroker(options),
  purge: async () => {},
};

const amqpEngine: Engine = {
  name: 'amqp',
  create: (gatewayId, port, { heartbeatS, ...options }) =>
    new AmqpBroker({
      url: heartbeatS === undefined ? rabbitUrl(port) : `${rabbitUrl(port)}?heartbeat=${heartbeatS}`,
      gatewayId,
      prefetch: 100,
      queueExpiresMs: 60_000,
      log: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'),
      ...options,
    }),
  purge: async (gatewayIds, queues) => {
    await withRabbit(async (conn) => {
      const ch = await conn.createChannel();
      for (const q of [...gatewayIds.map((id) => `gateway.${id}`), ...queues]) await ch.deleteQueue(q);
      await ch.close();
    });
  },
};

/** A direct connection to RabbitMQ, around the proxy: the test's own client. */
async function withRabbit<T>(work: (conn: ChannelModel) => Promise<T>): Promise<T> {
  const conn = await connect(rabbitUrl(RABBIT_PORT));
  try {
    return await work(conn);
  } finally {
    await conn.close();
  }
}

interface Recorder {
  got: Delivery[];
  handler: DeliveryHandler;
}

/** Records deliveries; acks each at once when `autoAck`. */
function recorder(autoAck: boolean): Recorder {
  const got: Delivery[] = [];
  return {
    got,
    handler: (d) => {
      got.push(d);
      if (autoAck) d.ack();
    },
  };
}

interface Gateway {
  id: string;
  broker: Broker;
  topic: Recorder;
}

/** Per test: brokers, names and cleanup for one engine. */
function fixture(engine: Engine) {
  let n = 0;
  const brokers: Broker[] = [];
  const gatewayIds: string[] = [];
  const queues: string[] = [];

  return {
    /** A started broker recording its topic deliveries. */
    async gateway(options: { port?: number; autoAck?: boolean } & Partial<EngineOptions> = {}): Promise<Gateway> {
      const id = `${RUN}-${++n}`;
      gatewayIds.push(id);
      const { port, autoAck, ...engineOptions } = options;
      const broker = engine.create(id, port ?? RABBIT_PORT, {
        ...engineOptions,
        queueMaxLength: options.queueMaxLength ?? QUEUE_MAX_LENGTH,
        rpcTimeoutMs: options.rpcTimeoutMs ?? 5_000,
      });
      brokers.push(broker);
      const topic = recorder(autoAck ?? true);
      await broker.start(topic.handler);
      return { id, broker, topic };
    },
    queue(): string {
      const q = `${RUN}.q${++n}`;
      queues.push(q);
      return q;
    },
    /** A routing-key prefix no other test or run uses. */
    namespace(): string {
      return `${RUN}.ns${++n}`;
    },
    async cleanup(): Promise<void> {
      await Promise.all(brokers.splice(0).map((b) => b.close()));
      await engine.purge(gatewayIds.splice(0), queues.splice(0));
    },
  };
}

const message = (text: string, headers: Record<string, string> = {}): BrokerMessage => ({
  headers,
  body: Buffer.from(text),
});
const text = (d: Delivery): string => d.message.body.toString();
const texts = (ds: Delivery[]): string[] => ds.map(text);
const flagged = (ds: Delivery[]): Array<[string, boolean]> => ds.map((d) => [text(d), d.redelivered]);

/** Wait, bounded, until `condition` holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** `promise`, or a rejection saying it still had not settled: a hang must fail the test, not stall it. */
function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)),
  ]);
}

describe.each([memoryEngine, amqpEngine])('Broker contract: $name', (engine) => {
  const f = fixture(engine);
  afterEach(() => f.cleanup());

  /** Publish a marker through the gateway queue and wait for it: everything routed before it has arrived. */
  async function drainTopic(g: Gateway, ns: string): Promise<void> {
    await g.broker.publish('chat', `${ns}.end`, message('end'));
    await until(() => texts(g.topic.got).includes('end'), 'the end marker');
  }

  /** Send a marker to the queue and check it is the very next thing a fresh consumer gets: the queue held nothing else. */
  async function expectQueueEmpty(broker: Broker, queue: string): Promise<void> {
    const probe = recorder(true);
    const consumer = await broker.consume(queue, 10, probe.handler);
    await broker.sendToQueue(queue, message('probe'));
    await until(() => probe.got.length > 0, 'the probe');
    await consumer.cancel();
    expect(texts(probe.got)).toEqual(['probe']);
  }

  it('routes by topic pattern with * and #, and stops routing after unbind', async () => {
    const g = await f.gateway();
    const ns = f.namespace();
    await g.broker.bind('chat', `${ns}.rooms.*`);
    await g.broker.bind('chat', `${ns}.users.#`);
    await g.broker.bind('chat', `${ns}.end`);
    for (const key of ['rooms.a', 'rooms.a.b', 'rooms', 'users', 'users.x.y', 'other']) {
      await g.broker.publish('chat', `${ns}.${key}`, message(key));
    }
    await drainTopic(g, ns);
    expect(g.topic.got.map((d) => d.routingKey)).toEqual([
      `${ns}.rooms.a`,
      `${ns}.users`,
      `${ns}.users.x.y`,
      `${ns}.end`,
    ]);

    g.topic.got.length = 0;
    await g.broker.unbind('chat', `${ns}.rooms.*`);
    await g.broker.publish('chat', `${ns}.rooms.a`, message('rooms.a'));
    await g.broker.publish('chat', `${ns}.users.z`, message('users.z'));
    await drainTopic(g, ns);
    expect(texts(g.topic.got)).toEqual(['users.z', 'end']);
  });

  it('keeps the chat and relay exchanges apart', async () => {
    const g = await f.gateway();
    const ns = f.namespace();
    await g.broker.bind('relay', `${ns}.r.#`);
    await g.broker.bind('chat', `${ns}.c.#`);
    await g.broker.bind('chat', `${ns}.end`);
    await g.broker.publish('chat', `${ns}.r.1`, message('chat r.1'));
    await g.broker.publish('relay', `${ns}.r.2`, message('relay r.2'));
    await g.broker.publish('relay', `${ns}.c.3`, message('relay c.3'));
    await g.broker.publish('chat', `${ns}.c.4`, message('chat c.4'));
    await drainTopic(g, ns);
    expect(g.topic.got.map((d) => [d.exchange, d.routingKey, text(d)])).toEqual([
      ['relay', `${ns}.r.2`, 'relay r.2'],
      ['chat', `${ns}.c.4`, 'chat c.4'],
      ['chat', `${ns}.end`, 'end'],
    ]);
  });

  it('delivers a confirmed publish exactly once, headers and body intact; settling twice is a no-op', async () => {
    const g = await f.gateway({ autoAck: false });
    const health: BrokerHealth[] = [];
    g.broker.onHealth((h) => health.push(h));
    const ns = f.namespace();
    await g.broker.bind('chat', `${ns}.#`);
    const headers = {
      'event-type': 'CHAT',
      'sender-session': 'session-1',
      'sender-seq': '42',
      'content-type': 'application/json;charset=utf-8',
      persistent: 'true',
      'x-custom': 'a:b,c',
    };
    const body = Buffer.from(JSON.stringify({ type: 'CHAT', text: 'héllo ✓' }));
    await g.broker.publish('chat', `${ns}.rooms.r1`, { headers, body });
    await until(() => g.topic.got.length === 1, 'the delivery');
    const d = g.topic.got[0]!;
    d.ack();
    d.ack();
    d.nack(true);
    await drainTopic(g, ns);
    g.topic.got[1]!.ack();

    // A second settlement reaching RabbitMQ would close the channel: the link would have gone down and up.
    expect(health).toEqual([]);
    expect(g.topic.got).toHaveLength(2);
    expect(d.exchange).toBe('chat');
    expect(d.routingKey).toBe(`${ns}.rooms.r1`);
    expect(d.redelivered).toBe(false);
    expect(d.message.headers).toEqual(headers);
    expect(d.message.body.equals(body)).toBe(true);
  });

  it('splits a queue between competing consumers, none lost or duplicated', async () => {
    const g = await f.gateway();
    const q = f.queue();
    const a = recorder(true);
    const b = recorder(true);
    const ca = await g.broker.consume(q, 5, a.handler);
    const cb = await g.broker.consume(q, 5, b.handler);
    const sent = Array.from({ length: 20 }, (_, i) => `m${i}`);
    const headers = { 'content-type': 'text/plain', 'x-trace': 't1' };
    for (const m of sent) await g.broker.sendToQueue(q, message(m, headers));
    await until(() => a.got.length + b.got.length === 20, '20 deliveries');
    await ca.cancel();
    await cb.cancel();

    expect(a.got.length).toBeGreaterThan(0);
    expect(b.got.length).toBeGreaterThan(0);
    expect([...texts(a.got), ...texts(b.got)].sort()).toEqual([...sent].sort());
    for (const d of [...a.got, ...b.got]) {
      expect(d.exchange).toBe('queue');
      expect(d.routingKey).toBe(q);
      expect(d.redelivered).toBe(false);
      expect(d.message.headers).toEqual(headers);
    }
    await expectQueueEmpty(g.broker, q);
  });

  it('hands a consumer at most prefetch unsettled deliveries', async () => {
    const g = await f.gateway();
    const q = f.queue();
    const sent = Array.from({ length: 10 }, (_, i) => `m${i}`);
    for (const m of sent) await g.broker.sendToQueue(q, message(m));
    const a = recorder(false);
    await g.broker.consume(q, 3, a.handler);
    await until(() => a.got.length === 3, '3 deliveries to the first consumer');
    // The other 7 are still in the queue: a second consumer gets exactly those.
    const b = recorder(false);
    await g.broker.consume(q, 100, b.handler);
    await until(() => b.got.length === 7, '7 deliveries to the second consumer');

    expect(texts(a.got)).toEqual(sent.slice(0, 3));
    expect(texts(b.got)).toEqual(sent.slice(3));
  });

  it('redelivers on nack(true), flagged; drops on nack(false); a second ack is a no-op', async () => {
    const g = await f.gateway();
    const q = f.queue();
    const got: Delivery[] = [];
    const script = [
      (d: Delivery) => d.nack(true),
      (d: Delivery) => {
        d.ack();
        d.ack();
        d.nack(true);
      },
      (d: Delivery) => d.nack(false),
      (d: Delivery) => d.ack(),
    ];
    await g.broker.consume(q, 1, (d) => {
      got.push(d);
      script[got.length - 1]?.(d);
    });
    await g.broker.sendToQueue(q, message('m1'));
    await g.broker.sendToQueue(q, message('m2'));
    await until(() => got.length === 3, 'three deliveries');
    await g.broker.sendToQueue(q, message('end'));
    await until(() => got.length === 4, 'the end marker');

    expect(flagged(got)).toEqual([
      ['m1', false],
      ['m1', true],
      ['m2', false],
      ['end', false],
    ]);
  });

  it('returns unsettled deliveries of a cancelled consumer to another consumer, flagged', async () => {
    const g = await f.gateway();
    const q = f.queue();
    const a = recorder(false);
    const ca = await g.broker.consume(q, 10, a.handler);
    await g.broker.sendToQueue(q, message('m1'));
    await g.broker.sendToQueue(q, message('m2'));
    await until(() => a.got.length === 2, 'two deliveries to the first consumer');
    const b = recorder(true);
    await g.broker.consume(q, 10, b.handler);
    await ca.cancel();
    await until(() => b.got.length === 2, 'the returned deliveries');

    // Settling after the cancel is a no-op: it must not touch the copies now with b.
    a.got[0]!.ack();
    a.got[1]!.nack(false);
    await g.broker.sendToQueue(q, message('end'));
    await until(() => b.got.length === 3, 'the end marker');

    expect(flagged(a.got)).toEqual([
      ['m1', false],
      ['m2', false],
    ]);
    expect(flagged(b.got)).toEqual([
      ['m1', true],
      ['m2', true],
      ['end', false],
    ]);
  });

  it('keeps messages sent to a queue without consumers until one comes', async () => {
    const g = await f.gateway();
    const q = f.queue();
    for (const m of ['a', 'b', 'c']) await g.broker.sendToQueue(q, message(m));
    const c = recorder(true);
    const consumer = await g.broker.consume(q, 10, c.handler);
    await until(() => c.got.length === 3, 'three deliveries');
    await consumer.cancel();
    expect(flagged(c.got)).toEqual([
      ['a', false],
      ['b', false],
      ['c', false],
    ]);
    await expectQueueEmpty(g.broker, q);
  });

  it('bounds a queue: a send to a full queue is refused and dropped; handed-out messages do not count, given-back ones return', async () => {
    const g = await f.gateway({ queueMaxLength: 3 });
    const q = f.queue();
    for (const m of ['a', 'b', 'c']) await g.broker.sendToQueue(q, message(m));
    await expect(g.broker.sendToQueue(q, message('refused-1'))).rejects.toBeInstanceOf(QueueFullError);

    const first = recorder(false);
    const consumer = await g.broker.consume(q, 1, first.handler);
    await until(() => first.got.length === 1, 'the first delivery');
    // 'a' is handed out and unsettled: two ready, room for one more.
    await g.broker.sendToQueue(q, message('d'));
    await expect(g.broker.sendToQueue(q, message('refused-2'))).rejects.toBeInstanceOf(QueueFullError);
    // Given back to a full queue, 'a' still returns to its place: four ready now.
    await consumer.cancel();
    await expect(g.broker.sendToQueue(q, message('refused-3'))).rejects.toBeInstanceOf(QueueFullError);

    const all = recorder(true);
    await g.broker.consume(q, 10, all.handler);
    await until(() => all.got.length === 4, 'the four queued messages');
    await g.broker.sendToQueue(q, message('end'));
    await until(() => all.got.length === 5, 'the end marker');
    expect(flagged(first.got)).toEqual([['a', false]]);
    expect(flagged(all.got)).toEqual([
      ['a', true],
      ['b', false],
      ['c', false],
      ['d', false],
      ['end', false],
    ]);
  });

  it('refuses work after close()', async () => {
    const g = await f.gateway();
    const q = f.queue();
    await g.broker.close();
    await expect(g.broker.publish('chat', `${f.namespace()}.x`, message('x'))).rejects.toBeInstanceOf(
      BrokerUnavailableError,
    );
    await expect(g.broker.sendToQueue(q, message('x'))).rejects.toBeInstanceOf(BrokerUnavailableError);
    await expect(g.broker.consume(q, 1, () => {})).rejects.toBeInstanceOf(BrokerUnavailableError);
  });
});

describe('AmqpBroker against names and queues it cannot use as asked', () => {
  const f = fixture(amqpEngine);
  afterEach(() => f.cleanup());

  it('uses a queue that exists with other arguments as it is', async () => {
    const q = f.queue();
    // Declared by someone else (an older gateway, RabbitMQ Web-STOMP, an operator) with its own bound.
    await withRabbit(async (conn) => {
      const ch = await conn.createChannel();
      await ch.assertQueue(q, { durable: true, maxLength: 50 });
      await ch.close();
    });
    const g = await f.gateway({ queueMaxLength: 3 });
    const sent = ['m1', 'm2', 'm3', 'm4', 'm5'];
    for (const m of sent) await settledWithin(g.broker.sendToQueue(q, message(m)), 5_000);
    const c = recorder(true);
    await settledWithin(g.broker.consume(q, 10, c.handler), 5_000);
    await until(() => c.got.length === 5, 'five deliveries');
    expect(texts(c.got)).toEqual(sent);
  });

  it('declares a queue that exists with other arguments without failing other declarations in flight', async () => {
    const existing = f.queue();
    await withRabbit(async (conn) => {
      const ch = await conn.createChannel();
      await ch.assertQueue(existing, { durable: true, maxLength: 50 });
      await ch.close();
    });
    const g = await f.gateway();
    const ns = f.namespace();
    const c = recorder(true);
    // Issued together: RabbitMQ's refusal of the first declaration must not take the others down with it.
    const results = await Promise.allSettled([
      g.broker.sendToQueue(existing, message('to the existing queue')),
      g.broker.bind('chat', `${ns}.x`),
      g.broker.consume(f.queue(), 10, c.handler),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
  });

  it('refuses a name over 255 bytes and a prefetch over 65535, and every later operation still completes', async () => {
    const g = await f.gateway();
    const health: BrokerHealth[] = [];
    g.broker.onHealth((h) => health.push(h));
    const q = f.queue();
    const ns = f.namespace();
    const c = recorder(true);
    // One consumer already on the shared consumer channel: it must survive the failures beside it.
    await g.broker.consume(q, 10, c.handler);

    await expect(settledWithin(g.broker.consume('q'.repeat(300), 1, () => {}), 5_000)).rejects.toBeInstanceOf(BrokerUnavailableError);
    await expect(settledWithin(g.broker.bind('relay', 'k'.repeat(300)), 5_000)).rejects.toBeInstanceOf(BrokerUnavailableError);
    await expect(settledWithin(g.broker.consume(f.queue(), 70_000, () => {}), 5_000)).rejects.toBeInstanceOf(BrokerUnavailableError);

    await settledWithin(g.broker.bind('relay', `${ns}.after`), 5_000);
    await settledWithin(g.broker.publish('relay', `${ns}.after`, message('topic-after')), 5_000);
    const other = recorder(true);
    const q2 = f.queue();
    await settledWithin(g.broker.consume(q2, 10, other.handler), 5_000);
    await settledWithin(g.broker.sendToQueue(q2, message('q2-after')), 5_000);
    await settledWithin(g.broker.sendToQueue(q, message('q-after')), 5_000);
    await until(() => g.topic.got.length === 1 && other.got.length === 1 && c.got.length === 1, 'the deliveries after the refusals');
    expect(texts(g.topic.got)).toEqual(['topic-after']);
    expect(texts(other.got)).toEqual(['q2-after']);
    expect(texts(c.got)).toEqual(['q-after']);
    expect(health).toEqual([]);
  });
});

describe('AmqpBroker through a failing network', () => {
  const f = fixture(amqpEngine);
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  beforeAll(async () => {
    proxy = await startTcpProxy(RABBIT_PORT);
  });
  afterEach(async () => {
    proxy.resume();
    await f.cleanup();
  });
  afterAll(() => proxy.close());

  it('goes down and comes back with bindings, consumers and unsettled deliveries restored', async () => {
    const g = await f.gateway({ port: proxy.port, autoAck: false });
    const health: BrokerHealth[] = [];
    g.broker.onHealth((h) => health.push(h));
    const ns = f.namespace();
    const q = f.queue();
    await g.broker.bind('chat', `${ns}.kept.#`);
    await g.broker.bind('relay', `${ns}.relay`);
    await g.broker.bind('chat', `${ns}.gone.#`);
    const c = recorder(false);
    await g.broker.consume(q, 10, c.handler);

    // One unsettled delivery of each kind when the link drops.
    await g.broker.publish('chat', `${ns}.kept.1`, message('before'));
    await g.broker.sendToQueue(q, message('q-before'));
    await until(() => g.topic.got.length === 1 && c.got.length === 1, 'the deliveries before the outage');

    proxy.pause();
    const unconfirmed = g.broker.publish('chat', `${ns}.kept.1`, message('unconfirmed'));
    proxy.dropAll();
    await expect(settledWithin(unconfirmed, 5_000)).rejects.toBeInstanceOf(BrokerUnavailableError);
    await until(() => g.broker.health() === 'down', 'health down');

    await expect(settledWithin(g.broker.publish('chat', `${ns}.kept.1`, message('x')), 5_000)).rejects.toBeInstanceOf(
      BrokerUnavailableError,
    );
    await expect(settledWithin(g.broker.sendToQueue(q, message('x')), 5_000)).rejects.toBeInstanceOf(
      BrokerUnavailableError,
    );
    // A bind while down is remembered and declared with the others once the link is back.
    await expect(settledWithin(g.broker.bind('chat', `${ns}.late`), 5_000)).resolves.toBeUndefined();
    await g.broker.unbind('chat', `${ns}.gone.#`);

    // Routed by another client while this gateway is away.
    await withRabbit(async (conn) => {
      const ch = await conn.createConfirmChannel();
      ch.publish('chat.events', `${ns}.kept.2`, Buffer.from('during'));
      ch.publish('amq.topic', `${ns}.relay`, Buffer.from('relay-during'));
      ch.sendToQueue(q, Buffer.from('q-during'));
      await ch.waitForConfirms();
      await ch.close();
    });

    proxy.resume();
    await until(() => g.broker.health() === 'up', 'health up');
    expect(health).toEqual(['down', 'up']);

    // Deliveries from the dead channels: settling them is a no-op (they come back anyway, flagged).
    g.topic.got[0]!.ack();
    c.got[0]!.ack();

    await g.broker.publish('chat', `${ns}.kept.3`, message('after'));
    await g.broker.publish('chat', `${ns}.gone.1`, message('unbound'));
    await g.broker.publish('chat', `${ns}.late`, message('late'));
    await g.broker.sendToQueue(q, message('q-after'));
    await until(() => g.topic.got.length === 6 && c.got.length === 4, 'the deliveries after the outage');
    for (const d of [...g.topic.got.slice(1), ...c.got.slice(1)]) d.ack();

    // Nothing else is on its way: markers sent now are the next and last deliveries.
    await g.broker.bind('chat', `${ns}.end`);
    await g.broker.publish('chat', `${ns}.end`, message('end'));
    await g.broker.sendToQueue(q, message('q-end'));
    await until(() => g.topic.got.length === 7 && c.got.length === 5, 'the end markers');
    g.topic.got[6]!.ack();
    c.got[4]!.ack();

    const byText = (a: [string, boolean], b: [string, boolean]) => a[0].localeCompare(b[0]);
    expect(flagged(g.topic.got.slice(0, 1))).toEqual([['before', false]]);
    expect(flagged(g.topic.got.slice(1, 4)).sort(byText)).toEqual([
      ['before', true],
      ['during', false],
      ['relay-during', false],
    ]);
    expect(flagged(g.topic.got.slice(4))).toEqual([
      ['after', false],
      ['late', false],
      ['end', false],
    ]);
    expect(flagged(c.got.slice(0, 1))).toEqual([['q-before', false]]);
    expect(flagged(c.got.slice(1, 3)).sort(byText)).toEqual([
      ['q-before', true],
      ['q-during', false],
    ]);
    expect(flagged(c.got.slice(3))).toEqual([
      ['q-after', false],
      ['q-end', false],
    ]);
    expect(health).toEqual(['down', 'up']);
  });

  it('declares the gateway queue and its bindings again when it expired during an outage', async () => {
    const g = await f.gateway({ port: proxy.port });
    const ns = f.namespace();
    await g.broker.bind('chat', `${ns}.rooms.*`);
    await g.broker.bind('relay', `${ns}.plain`);
    await g.broker.bind('chat', `${ns}.end`);

    proxy.pause();
    proxy.dropAll();
    await until(() => g.broker.health() === 'down', 'health down');
    // What x-expires does to the queue of a gateway gone for long enough.
    await withRabbit(async (conn) => {
      const ch = await conn.createChannel();
      await ch.deleteQueue(`gateway.${g.id}`);
      await ch.close();
    });
    proxy.resume();
    await until(() => g.broker.health() === 'up', 'health up');

    await g.broker.publish('chat', `${ns}.rooms.r1`, message('room'));
    await g.broker.publish('relay', `${ns}.plain`, message('plain'));
    await g.broker.publish('chat', `${ns}.end`, message('end'));
    await until(() => g.topic.got.length === 3, 'three deliveries');
    expect(g.topic.got.map((d) => [d.exchange, text(d)])).toEqual([
      ['chat', 'room'],
      ['relay', 'plain'],
      ['chat', 'end'],
    ]);
  });

  it('gives up on an operation RabbitMQ does not answer, reports down, and replaces the link', async () => {
    const g = await f.gateway({ port: proxy.port, rpcTimeoutMs: 500 });
    const health: BrokerHealth[] = [];
    g.broker.onHealth((h) => health.push(h));
    const ns = f.namespace();
    proxy.silence();
    // Without a bound this waits for the heart-beat to give up on the connection (twice 10 s).
    await expect(settledWithin(g.broker.bind('chat', `${ns}.silent`), 5_000)).rejects.toBeInstanceOf(BrokerUnavailableError);
    expect(health).toEqual(['down']);
    await until(() => g.broker.health() === 'up', 'health up');

    await g.broker.bind('chat', `${ns}.after`);
    await g.broker.publish('chat', `${ns}.after`, message('after'));
    await until(() => g.topic.got.length === 1, 'the delivery after the new link');
    expect(texts(g.topic.got)).toEqual(['after']);
    expect(health).toEqual(['down', 'up']);
  });

  it('closes promptly during an outage and refuses work afterwards', async () => {
    const g = await f.gateway({ port: proxy.port });
    const health: BrokerHealth[] = [];
    g.broker.onHealth((h) => health.push(h));
    proxy.pause();
    proxy.dropAll();
    await until(() => g.broker.health() === 'down', 'health down');
    await settledWithin(g.broker.close(), 5_000);
    expect(g.broker.health()).toBe('down');
    expect(health).toEqual(['down']);
    await expect(g.broker.publish('chat', `${f.namespace()}.x`, message('x'))).rejects.toBeInstanceOf(
      BrokerUnavailableError,
    );
  });
});

/** The engine's own handles on its connection and consumer channels, for faults no client could cause through the Broker API. */
interface AmqpInternals {
  link: { conn: EventEmitter } | null;
  consumers: Set<{ attachment: { channel: Channel } | null }>;
}
const internals = (broker: Broker): AmqpInternals => broker as unknown as AmqpInternals;

/** How many consumers RabbitMQ has on `queue`, seen from the test's own connection; 0 when the queue does not exist. */
async function consumerCount(queue: string): Promise<number> {
  return withRabbit(async (conn) => {
    const ch = await conn.createChannel();
    ch.on('error', () => {});
    try {
      return (await ch.checkQueue(queue)).consumerCount;
    } catch {
      return 0;
    }
  });
}

/** A free port where nothing listens (it was free a moment ago). */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('AmqpBroker faults from RabbitMQ and the network', () => {
  const f = fixture(amqpEngine);
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  beforeAll(async () => {
    proxy = await startTcpProxy(RABBIT_PORT);
  });
  afterEach(async () => {
    proxy.resume();
    await f.cleanup();
    // The connections of this test, held or silenced, must not leak into the next.
    proxy.dropAll();
  });
  afterAll(() => proxy.close());

  it('rejects a publish whose confirm never comes within confirmTimeoutMs, and close() does not wait on it', async () => {
    const g = await f.gateway({ port: proxy.port, confirmTimeoutMs: 300, rpcTimeoutMs: 500 });
    const ns = f.namespace();
    await g.broker.bind('chat', `${ns}.#`);
    await g.broker.publish('chat', `${ns}.before`, message('before'));
    await until(() => g.topic.got.length === 1, 'the delivery before the silence');

    // RabbitMQ gets the publishes and confirms them; the confirms never come back.
    proxy.silence();
    const unconfirmed = g.broker.publish('chat', `${ns}.unconfirmed`, message('unconfirmed'));
    await expect(settledWithin(unconfirmed, 5_000)).rejects.toThrow(new BrokerUnavailableError('no publisher confirm within 300 ms'));
    await expect(unconfirmed).rejects.toBeInstanceOf(BrokerUnavailableError);

    const inFlight = g.broker.publish('chat', `${ns}.in-flight`, message('in flight'));
    const closing = g.broker.close();
    await expect(settledWithin(inFlight, 5_000)).rejects.toBeInstanceOf(BrokerUnavailableError);
    await settledWithin(closing, 5_000);
    expect(g.broker.health()).toBe('down');
    expect(texts(g.topic.got)).toEqual(['before']);
  });

  it('rejects a publish RabbitMQ nacks, and later publishes on the same link still confirm', async () => {
    const g = await f.gateway();
    const health: BrokerHealth[] = [];
    g.broker.onHealth((h) => health.push(h));
    const ns = f.namespace();
    const full = f.queue();
    // Another client's bounded queue on the chat exchange: once full, RabbitMQ nacks what would be routed to it.
    await withRabbit(async (conn) => {
      const ch = await conn.createChannel();
      await ch.assertQueue(full, { durable: false, maxLength: 1, arguments: { 'x-overflow': 'reject-publish' } });
      await ch.bindQueue(full, 'chat.events', `${ns}.full`);
      await ch.close();
    });
    await g.broker.bind('chat', `${ns}.open`);
    await g.broker.publish('chat', `${ns}.full`, message('fills it'));

    const refused = await g.broker.publish('chat', `${ns}.full`, message('refused')).then(() => null, (err: unknown) => err);
    expect(refused).toBeInstanceOf(BrokerUnavailableError);
    expect((refused as Error).message).toBe('publish refused by the broker');

    await settledWithin(g.broker.publish('chat', `${ns}.open`, message('after-1')), 5_000);
    await settledWithin(g.broker.publish('chat', `${ns}.open`, message('after-2')), 5_000);
    await until(() => g.topic.got.length === 2, 'the deliveries after the nack');
    expect(texts(g.topic.got)).toEqual(['after-1', 'after-2']);
    expect(health).toEqual([]);
  });

  // A real memory alarm (rabbitmqctl set_vm_memory_high_watermark) blocks every publisher on the node, and the node is
  // shared with other test runs: here RabbitMQ's side is simulated. The proxy stops forwarding what the engine sends,
  // as RabbitMQ stops reading a blocked connection, and the connection gets amqplib's blocked/unblocked events.
  it('logs a blocked connection, fails publishes within the confirm bound while blocked, and confirms again once unblocked (simulated)', async () => {
    const lines: Array<{ msg: string; reason?: string }> = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const g = await f.gateway({ port: proxy.port, confirmTimeoutMs: 300, log });
    const health: BrokerHealth[] = [];
    g.broker.onHealth((h) => health.push(h));
    const ns = f.namespace();
    await g.broker.bind('chat', `${ns}.#`);
    const conn = internals(g.broker).link!.conn;

    proxy.hold();
    conn.emit('blocked', 'low on memory');
    await expect(settledWithin(g.broker.publish('chat', `${ns}.blocked`, message('while blocked')), 5_000)).rejects.toThrow(
      new BrokerUnavailableError('no publisher confirm within 300 ms'),
    );

    conn.emit('unblocked');
    proxy.release();
    await settledWithin(g.broker.publish('chat', `${ns}.after`, message('after')), 5_000);
    await until(() => texts(g.topic.got).includes('after'), 'the delivery after the block');
    // RabbitMQ read the timed-out publish once unblocked: a publish that failed its confirm may still be delivered.
    expect(texts(g.topic.got)).toEqual(['while blocked', 'after']);
    expect(health).toEqual([]);
    expect(lines.filter((l) => /blocked/.test(l.msg)).map((l) => [l.msg, l.reason])).toEqual([
      ['RabbitMQ blocked publishing', 'low on memory'],
      ['RabbitMQ unblocked publishing', undefined],
    ]);
  });

  it('declares a queue again when RabbitMQ cancels its consumer (queue deleted), and the same consumer goes on, nothing twice', async () => {
    const g = await f.gateway();
    const health: BrokerHealth[] = [];
    g.broker.onHealth((h) => health.push(h));
    const q = f.queue();
    const c = recorder(true);
    await g.broker.consume(q, 10, c.handler);
    await g.broker.sendToQueue(q, message('before'));
    await until(() => c.got.length === 1, 'the delivery before the deletion');

    await withRabbit(async (conn) => {
      const ch = await conn.createChannel();
      await ch.deleteQueue(q);
      await ch.close();
    });
    await vi.waitFor(async () => expect(await consumerCount(q)).toBe(1), { timeout: WAIT_MS, interval: 50 });

    for (const m of ['after-1', 'after-2', 'end']) await g.broker.sendToQueue(q, message(m));
    await until(() => texts(c.got).includes('end'), 'the end marker');
    expect(flagged(c.got)).toEqual([
      ['before', false],
      ['after-1', false],
      ['after-2', false],
      ['end', false],
    ]);
    expect(health).toEqual([]);
  });

  it('moves the consumers of a channel RabbitMQ closed to another channel; unsettled deliveries come back flagged, none lost or twice', async () => {
    const g = await f.gateway();
    const health: BrokerHealth[] = [];
    g.broker.onHealth((h) => health.push(h));
    const [q1, q2] = [f.queue(), f.queue()];
    const a = recorder(false);
    const b = recorder(false);
    await g.broker.consume(q1, 10, a.handler);
    await g.broker.consume(q2, 10, b.handler);
    await g.broker.sendToQueue(q1, message('a1'));
    await g.broker.sendToQueue(q1, message('a2'));
    await g.broker.sendToQueue(q2, message('b1'));
    await until(() => a.got.length === 2 && b.got.length === 1, 'the deliveries before the channel error');
    a.got[0]!.ack();

    // Both consumers share one channel. Acking a delivery tag it never handed out makes RabbitMQ close it (406).
    const channels = new Set([...internals(g.broker).consumers].map((c) => c.attachment!.channel));
    expect(channels.size).toBe(1);
    const [channel] = channels;
    channel!.ack({ fields: { deliveryTag: 999_999 } } as ConsumeMessage);
    await vi.waitFor(
      () => expect([...internals(g.broker).consumers].map((c) => c.attachment?.channel !== channel && c.attachment !== null)).toEqual([true, true]),
      { timeout: WAIT_MS, interval: 20 },
    );

    await until(() => a.got.length === 3 && b.got.length === 2, 'the redeliveries');
    // Settling on the closed channel is a no-op; the copies above are the ones to settle.
    a.got[1]!.ack();
    b.got[0]!.ack();
    for (const d of [...a.got.slice(2), ...b.got.slice(1)]) d.ack();
    await g.broker.sendToQueue(q1, message('a-end'));
    await g.broker.sendToQueue(q2, message('b-end'));
    await until(() => a.got.length === 4 && b.got.length === 3, 'the end markers');
    expect(flagged(a.got)).toEqual([
      ['a1', false],
      ['a2', false],
      ['a2', true],
      ['a-end', false],
    ]);
    expect(flagged(b.got)).toEqual([
      ['b1', false],
      ['b1', true],
      ['b-end', false],
    ]);
    expect(health).toEqual([]);
  });

  it('fails start() at once where nothing listens, and leaves nothing running (the process exits on its own)', async () => {
    const port = await deadPort();
    // In a child process: a timer or socket left behind would keep it alive past the deadline.
    const script = `
      import { AmqpBroker } from './src/broker/amqp-broker.ts';
      import { createLogger } from './src/logger.ts';
      const broker = new AmqpBroker({ url: 'amqp://guest:guest@127.0.0.1:${port}', gatewayId: '${RUN}-dead', prefetch: 1,
        queueExpiresMs: 60000, queueMaxLength: 10, rpcTimeoutMs: 1000, log: createLogger('silent') });
      const health = [];
      broker.onHealth((h) => health.push(h));
      try {
        await broker.start(() => {});
        console.log('started');
      } catch (err) {
        console.log(JSON.stringify([err.name, err.code, broker.health(), health]));
      }`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      expect(await settledWithin(exited, 10_000)).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(JSON.parse(out)).toEqual(['BrokerUnavailableError', 'BROKER_UNAVAILABLE', 'down', []]);
  });

  it('notices a silent peer by its heart-beat, reports down, and comes back with bindings and consumers once it answers', async () => {
    const g = await f.gateway({ port: proxy.port, heartbeatS: 1 });
    const health: BrokerHealth[] = [];
    g.broker.onHealth((h) => health.push(h));
    const ns = f.namespace();
    const q = f.queue();
    await g.broker.bind('chat', `${ns}.#`);
    const c = recorder(true);
    await g.broker.consume(q, 10, c.handler);
    await g.broker.publish('chat', `${ns}.before`, message('before'));
    await g.broker.sendToQueue(q, message('q-before'));
    await until(() => g.topic.got.length === 1 && c.got.length === 1, 'the deliveries before the silence');

    // Nothing RabbitMQ sends arrives, the connection stays open, and no operation is issued to time out.
    proxy.pause();
    proxy.silence();
    await until(() => g.broker.health() === 'down', 'health down');
    proxy.resume();
    await until(() => g.broker.health() === 'up', 'health up');

    await g.broker.publish('chat', `${ns}.after`, message('after'));
    await g.broker.sendToQueue(q, message('q-after'));
    await until(() => g.topic.got.length === 2 && c.got.length === 2, 'the deliveries after the silence');
    expect(flagged(g.topic.got)).toEqual([
      ['before', false],
      ['after', false],
    ]);
    expect(flagged(c.got)).toEqual([
      ['q-before', false],
      ['q-after', false],
    ]);
    expect(health).toEqual(['down', 'up']);
  });
});
