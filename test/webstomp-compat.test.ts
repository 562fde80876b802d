import type { IFrame, IMessage, StompHeaders } from '@stomp/stompjs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectStomp, type TestClient } from './support/stomp-client.ts';
import { startLatencyProxy, type LatencyProxy } from './support/webstomp-latency-proxy.ts';
import { GATEWAY_ON_RABBITMQ, gatewayTarget, WEB_STOMP_PLUGIN, WEB_STOMP_TARGETS, type WebStompTarget } from './support/webstomp-targets.ts';

/**
 * "A client written for RabbitMQ Web-STOMP works unchanged against a gateway": one @stomp/stompjs client, the
 * same frames and the same expectations against RabbitMQ's own Web-STOMP plugin (the reference) and against a
 * gateway on RabbitMQ and on its embedded broker. Only the CONNECT headers differ (the gateway's passcode is an
 * access token). Exactness without timing: every "nothing else arrives" is proven by a fence message sent last,
 * which arrives after anything sent or requeued before it.
 */

const RECEIPT_TIMEOUT_MS = 10_000;
let runSeq = 0;
let receiptSeq = 0;

/** The RECEIPT answering `receipt`; rejects when none comes in time. */
function receiptFor(c: TestClient, receipt: string): Promise<IFrame> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no RECEIPT for ${receipt}`)), RECEIPT_TIMEOUT_MS);
    c.client.watchForReceipt(receipt, (frame) => {
      clearTimeout(timer);
      resolve(frame);
    });
  });
}

/** Run `act` with a fresh receipt id and wait for its RECEIPT. */
function withReceipt(c: TestClient, act: (receipt: string) => void): Promise<IFrame> {
  const receipt = `r-${++receiptSeq}`;
  const answered = receiptFor(c, receipt);
  act(receipt);
  return answered;
}

/** SUBSCRIBE and wait for its RECEIPT, so the subscription is live; returns the subscription id. */
async function subscribe(c: TestClient, destination: string, headers: StompHeaders = {}): Promise<string> {
  let id = '';
  await withReceipt(c, (receipt) => {
    id = c.subscribe(destination, { ...headers, receipt });
  });
  return id;
}

const send = (c: TestClient, destination: string, body: string, headers: StompHeaders = {}): Promise<IFrame> =>
  withReceipt(c, (receipt) => c.send(destination, body, { ...headers, receipt }));

const unsubscribe = (c: TestClient, id: string): Promise<IFrame> => withReceipt(c, (receipt) => c.client.unsubscribe(id, { receipt }));

const bodies = (c: TestClient, destination: string): string[] => c.messages(destination).map((m) => m.body);
const redelivered = (c: TestClient, destination: string): Array<string | undefined> =>
  c.messages(destination).map((m) => m.headers.redelivered);
const nth = (c: TestClient, destination: string, index: number): IMessage => c.messages(destination)[index]!;

/** Wait until `count` messages arrived on `destination`. */
const received = (c: TestClient, destination: string, count: number): Promise<void> =>
  c.until(() => c.messages(destination).length >= count);

/** Send `fence` from `from` and wait for it at `c`: whatever was sent or requeued before it has arrived by then. */
async function fenced(from: TestClient, c: TestClient, destination: string, fence = 'fence'): Promise<void> {
  await send(from, destination, fence);
  await c.until(() => c.messages(destination).some((m) => m.body === fence));
}

describe.each(WEB_STOMP_TARGETS)('a Web-STOMP client against $name', (spec) => {
  const run = `wsc${process.pid}x${Date.now().toString(36)}x${++runSeq}`;
  const queues: string[] = [];
  const clients: TestClient[] = [];
  let target: WebStompTarget;

  const topic = (name: string): string => `/topic/${run}.${name}`;
  const queue = (name: string): string => {
    const q = `${run}-${name}`;
    queues.push(q);
    return `/queue/${q}`;
  };
  const connect = async (): Promise<TestClient> => {
    const c = await connectStomp(target.wsUrl, target.connectHeaders);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    target = await spec.start();
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await target?.stop(queues);
  });

  it('delivers a /topic message to every subscriber, once each', async () => {
    const [a, b, publisher] = [await connect(), await connect(), await connect()];
    const t = topic('x');
    await subscribe(a, t);
    await subscribe(b, t);
    for (const body of ['m1', 'm2', 'm3']) await send(publisher, t, body);
    await fenced(publisher, a, t);
    await b.until(() => b.messages(t).some((m) => m.body === 'fence'));
    expect(bodies(a, t)).toEqual(['m1', 'm2', 'm3', 'fence']);
    expect(bodies(b, t)).toEqual(['m1', 'm2', 'm3', 'fence']);
  });

  it('routes topic wildcards as AMQP does: * one word, # zero or more', async () => {
    const c = await connect();
    const [one, any] = [topic('a.*'), topic('a.#')];
    await subscribe(c, one);
    await subscribe(c, any);
    for (const key of ['a', 'a.b', 'a.b.c', 'ab', 'b.a', 'a.z']) await send(c, topic(key), key);
    await c.until(() => [one, any].every((d) => c.messages(d).some((m) => m.body === 'a.z')));
    expect(bodies(c, one)).toEqual(['a.b', 'a.z']);
    expect(bodies(c, any)).toEqual(['a', 'a.b', 'a.b.c', 'a.z']);
    // The destination is where the message was sent, not the pattern subscribed to.
    expect(c.messages(one).map((m) => m.headers.destination)).toEqual([topic('a.b'), topic('a.z')]);
  });

  it('passes user headers and content-type through, on topics and queues', async () => {
    const c = await connect();
    const [t, q] = [topic('headers'), queue('headers')];
    const ids = { [t]: await subscribe(c, t), [q]: await subscribe(c, q) };
    const body = 'héllo ✓';
    const headers = { 'content-type': 'text/plain;charset=utf-8', 'x-trace-id': 'trace:1/2', 'x-retry': '3', persistent: 'true' };
    await send(c, t, body, headers);
    await send(c, q, body, headers);
    await received(c, t, 1);
    await received(c, q, 1);
    for (const destination of [t, q]) {
      const m = nth(c, destination, 0);
      expect(m.body).toBe(body);
      const names = [...Object.keys(headers), 'destination', 'subscription', 'redelivered', 'content-length'];
      expect(Object.fromEntries(names.map((n) => [n, m.headers[n]]))).toEqual({
        ...headers,
        destination,
        subscription: ids[destination],
        redelivered: 'false',
        'content-length': String(Buffer.byteLength(body)),
      });
      expect(m.headers['message-id']).toMatch(/./);
      // `ack: auto`: nothing to acknowledge.
      expect(m.headers.ack).toBeUndefined();
    }
  });

  it("keeps the MESSAGE's own subscription, ack and redelivered headers when a SEND carried headers of those names", async () => {
    const c = await connect();
    const [t, q] = [topic('own-headers'), queue('own-headers')];
    const ids = { [t]: await subscribe(c, t, { ack: 'client-individual' }), [q]: await subscribe(c, q, { ack: 'client-individual' }) };
    const spoofed = { subscription: 'spoofed', ack: 'spoofed', redelivered: 'true' };
    await send(c, t, 'm1', spoofed);
    await send(c, q, 'm1', spoofed);
    await received(c, t, 1);
    await received(c, q, 1);
    for (const destination of [t, q]) {
      const m = nth(c, destination, 0);
      expect([m.headers.subscription, m.headers.ack, m.headers.redelivered]).toEqual([ids[destination], m.headers['message-id'], 'false']);
    }
  });

  it('splits /queue messages between competing consumers, none lost or duplicated', async () => {
    const [a, b, producer] = [await connect(), await connect(), await connect()];
    const q = queue('compete');
    const ids = [await subscribe(a, q), await subscribe(b, q)];
    const sent = Array.from({ length: 10 }, (_, i) => `m${i + 1}`);
    for (const body of sent) await send(producer, q, body);
    const all = (): boolean => a.messages(q).length + b.messages(q).length >= sent.length;
    // Each client wakes only on its own messages; whichever gets the last one sees the total.
    await Promise.any([a.until(all), b.until(all)]);
    await unsubscribe(a, ids[0]!);
    await unsubscribe(b, ids[1]!);
    const [fromA, fromB] = [bodies(a, q), bodies(b, q)];
    // Round robin over consumers with room, each in queue order.
    expect(fromA).toHaveLength(5);
    expect(fromB).toHaveLength(5);
    expect([...fromA, ...fromB].sort()).toEqual([...sent].sort());
    expect(fromA).toEqual(sent.filter((m) => fromA.includes(m)));
    expect(fromB).toEqual(sent.filter((m) => fromB.includes(m)));
  });

  it('keeps messages sent to a queue before anyone subscribed until a consumer comes', async () => {
    const [producer, c] = [await connect(), await connect()];
    const q = queue('waiting');
    for (const body of ['m1', 'm2', 'm3']) await send(producer, q, body);
    await subscribe(c, q);
    await received(c, q, 3);
    await fenced(producer, c, q);
    expect(bodies(c, q)).toEqual(['m1', 'm2', 'm3', 'fence']);
    expect(redelivered(c, q)).toEqual(['false', 'false', 'false', 'false']);
  });

  it('ack: client is cumulative: acking the 3rd of 5 settles the first 3', async () => {
    const [a, b] = [await connect(), await connect()];
    const q = queue('cumulative');
    for (const body of ['m1', 'm2', 'm3', 'm4', 'm5']) await send(b, q, body);
    await subscribe(a, q, { ack: 'client' });
    await received(a, q, 5);
    expect(bodies(a, q)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    nth(a, q, 2).ack();
    await a.disconnect();
    await subscribe(b, q);
    await received(b, q, 2);
    await fenced(b, b, q);
    expect(bodies(b, q)).toEqual(['m4', 'm5', 'fence']);
    expect(redelivered(b, q)).toEqual(['true', 'true', 'false']);
  });

  it('ack: client-individual settles only the message acked', async () => {
    const [a, b] = [await connect(), await connect()];
    const q = queue('individual');
    for (const body of ['m1', 'm2', 'm3']) await send(b, q, body);
    await subscribe(a, q, { ack: 'client-individual' });
    await received(a, q, 3);
    nth(a, q, 1).ack();
    await a.disconnect();
    await subscribe(b, q);
    await received(b, q, 2);
    await fenced(b, b, q);
    expect(bodies(b, q)).toEqual(['m1', 'm3', 'fence']);
    expect(redelivered(b, q)).toEqual(['true', 'true', 'false']);
  });

  it('NACK requeues: the message comes again, flagged redelivered', async () => {
    const c = await connect();
    const q = queue('nack');
    for (const body of ['m1', 'm2']) await send(c, q, body);
    await subscribe(c, q, { ack: 'client-individual' });
    await received(c, q, 2);
    nth(c, q, 0).nack();
    await received(c, q, 3);
    nth(c, q, 1).ack();
    nth(c, q, 2).ack();
    await fenced(c, c, q);
    expect(bodies(c, q)).toEqual(['m1', 'm2', 'm1', 'fence']);
    expect(redelivered(c, q)).toEqual(['false', 'false', 'true', 'false']);
  });

  it('NACK in ack: client mode is cumulative: nacking the 3rd of 5 requeues the first 3, in order', async () => {
    const c = await connect();
    const q = queue('nack-cumulative');
    for (const body of ['m1', 'm2', 'm3', 'm4', 'm5']) await send(c, q, body);
    await subscribe(c, q, { ack: 'client' });
    await received(c, q, 5);
    nth(c, q, 2).nack();
    await received(c, q, 8);
    await fenced(c, c, q);
    expect(bodies(c, q)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm1', 'm2', 'm3', 'fence']);
    expect(redelivered(c, q)).toEqual(['false', 'false', 'false', 'false', 'false', 'true', 'true', 'true', 'false']);
  });

  it('returns unacked messages to the queue for another consumer when their consumer unsubscribes and leaves', async () => {
    const [a, b] = [await connect(), await connect()];
    const q = queue('unsubscribe');
    for (const body of ['m1', 'm2']) await send(b, q, body);
    const id = await subscribe(a, q, { ack: 'client-individual' });
    await received(a, q, 2);
    await unsubscribe(a, id);
    await subscribe(b, q, { ack: 'client-individual' });
    // RabbitMQ's plugin hands them back only when the connection ends (the gateway already at UNSUBSCRIBE).
    await a.disconnect();
    await received(b, q, 2);
    await fenced(b, b, q);
    expect(bodies(b, q)).toEqual(['m1', 'm2', 'fence']);
    expect(redelivered(b, q)).toEqual(['true', 'true', 'false']);
  });

  it('returns unacked messages to the queue for another consumer when their consumer disconnects', async () => {
    const [a, b] = [await connect(), await connect()];
    const q = queue('disconnect');
    for (const body of ['m1', 'm2']) await send(b, q, body);
    await subscribe(a, q, { ack: 'client' });
    await received(a, q, 2);
    await subscribe(b, q, { ack: 'client' });
    await a.disconnect();
    await received(b, q, 2);
    await fenced(b, b, q);
    expect(bodies(b, q)).toEqual(['m1', 'm2', 'fence']);
    expect(redelivered(b, q)).toEqual(['true', 'true', 'false']);
  });

  it('prefetch-count bounds the unacked messages a subscription holds, exactly', async () => {
    const [a, b, producer] = [await connect(), await connect(), await connect()];
    const q = queue('prefetch');
    for (const body of ['m1', 'm2', 'm3', 'm4', 'm5']) await send(producer, q, body);
    await subscribe(a, q, { ack: 'client-individual', 'prefetch-count': '2' });
    await received(a, q, 2);
    // Had `a` been sent more than 2, nothing would be left for `b`.
    const bId = await subscribe(b, q);
    await received(b, q, 3);
    await unsubscribe(b, bId);
    expect(bodies(a, q)).toEqual(['m1', 'm2']);
    expect(bodies(b, q)).toEqual(['m3', 'm4', 'm5']);
    // One ack makes room for exactly one more.
    for (const body of ['m6', 'm7']) await send(producer, q, body);
    nth(a, q, 0).ack();
    await received(a, q, 3);
    await subscribe(producer, q);
    await received(producer, q, 1);
    expect(bodies(a, q)).toEqual(['m1', 'm2', 'm6']);
    expect(bodies(producer, q)).toEqual(['m7']);
  });

  it('transactions: BEGIN/SEND/COMMIT delivers all, in order, at COMMIT, and only then answers their receipts', async () => {
    const c = await connect();
    const q = queue('commit');
    await subscribe(c, q);
    const receipts: string[] = [];
    const tx = c.client.begin();
    const answered = ['t1', 't2', 't3'].map((body) => {
      const receipt = `${run}-${body}`;
      const done = receiptFor(c, receipt).then(() => void receipts.push(body));
      c.send(q, body, { transaction: tx.id, receipt });
      return done;
    });
    // Sent after the transactional ones, outside the transaction: it arrives first, and is answered first.
    await send(c, q, 'outside');
    await received(c, q, 1);
    expect(receipts).toEqual([]);
    tx.commit();
    await Promise.all(answered);
    await fenced(c, c, q);
    expect(bodies(c, q)).toEqual(['outside', 't1', 't2', 't3', 'fence']);
    expect(receipts).toEqual(['t1', 't2', 't3']);
  });

  it('transactions: ABORT delivers none of its messages and answers none of their receipts', async () => {
    const c = await connect();
    const q = queue('abort');
    await subscribe(c, q);
    const receipts: string[] = [];
    const tx = c.client.begin();
    for (const body of ['t1', 't2']) {
      c.client.watchForReceipt(`${run}-${body}`, () => receipts.push(body));
      c.send(q, body, { transaction: tx.id, receipt: `${run}-${body}` });
    }
    tx.abort();
    await fenced(c, c, q);
    expect(bodies(c, q)).toEqual(['fence']);
    expect(receipts).toEqual([]);
  });

  it('transactions: an ACK inside an aborted transaction leaves the message unacked, one inside a committed one settles it', async () => {
    const [a, b] = [await connect(), await connect()];
    const q = queue('tx-ack');
    for (const body of ['m1', 'm2']) await send(b, q, body);
    await subscribe(a, q, { ack: 'client-individual' });
    await received(a, q, 2);
    const aborted = a.client.begin();
    nth(a, q, 0).ack({ transaction: aborted.id });
    aborted.abort();
    const committed = a.client.begin();
    nth(a, q, 1).ack({ transaction: committed.id });
    committed.commit();
    await a.disconnect();
    await subscribe(b, q);
    await received(b, q, 1);
    await fenced(b, b, q);
    expect(bodies(b, q)).toEqual(['m1', 'fence']);
    expect(redelivered(b, q)).toEqual(['true', 'false']);
  });

  it('answers SEND and SUBSCRIBE with a RECEIPT naming their receipt header', async () => {
    const c = await connect();
    const q = queue('receipts');
    const receipts: IFrame[] = [];
    const receiptOf = (id: string): Promise<void> =>
      new Promise((resolve) => c.client.watchForReceipt(id, (frame) => resolve(void receipts.push(frame))));
    const subscribed = receiptOf(`${run}-subscribe`);
    c.subscribe(q, { receipt: `${run}-subscribe` });
    await subscribed;
    const sent = receiptOf(`${run}-send`);
    c.send(q, 'm1', { receipt: `${run}-send` });
    await sent;
    expect(receipts.map((f) => [f.command, f.headers['receipt-id']])).toEqual([
      ['RECEIPT', `${run}-subscribe`],
      ['RECEIPT', `${run}-send`],
    ]);
    // The subscription the first RECEIPT confirmed is live, and the message the second confirmed is in the queue.
    await received(c, q, 1);
    expect(bodies(c, q)).toEqual(['m1']);
  });

  it('carries a frame of nearly 1 MiB on topics and queues', async () => {
    const c = await connect();
    const [t, q] = [topic('large'), queue('large')];
    await subscribe(c, t);
    await subscribe(c, q);
    const body = 'x'.repeat(1024 * 1024 - 1024);
    await send(c, t, body);
    await send(c, q, body);
    await received(c, t, 1);
    await received(c, q, 1);
    expect([nth(c, t, 0).body.length, nth(c, q, 0).body.length]).toEqual([body.length, body.length]);
  });

  it('sends heart-beats as often as a client asks, down to 1 s', async () => {
    const c = await connectStomp(target.wsUrl, target.connectHeaders, 1000);
    clients.push(c);
    expect(c.connectedHeaders['heart-beat']!.split(',')[0]).toBe('1000');
  });
});

describe('a gateway on RabbitMQ and RabbitMQ Web-STOMP share /topic and /queue destinations', () => {
  const run = `wsx${process.pid}x${Date.now().toString(36)}`;
  const queues: string[] = [];
  const clients: TestClient[] = [];
  let plugin: WebStompTarget;
  let gateway: WebStompTarget;
  const connect = async (target: WebStompTarget): Promise<TestClient> => {
    const c = await connectStomp(target.wsUrl, target.connectHeaders);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    [plugin, gateway] = await Promise.all([WEB_STOMP_PLUGIN.start(), GATEWAY_ON_RABBITMQ.start()]);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await Promise.all([gateway?.stop(queues), plugin?.stop([])]);
  });

  it('a /topic message from either side reaches subscribers on both', async () => {
    const [p, g] = [await connect(plugin), await connect(gateway)];
    const t = `/topic/${run}.mixed`;
    await subscribe(p, t);
    await subscribe(g, t);
    await send(p, t, 'from-plugin');
    await send(g, t, 'from-gateway');
    await received(p, t, 2);
    await received(g, t, 2);
    await send(p, t, 'fence');
    await p.until(() => bodies(p, t).includes('fence'));
    await g.until(() => bodies(g, t).includes('fence'));
    // Two publishers, so no order between them; the fence comes after both on either side.
    for (const c of [p, g]) {
      expect(bodies(c, t).slice(0, 2).sort()).toEqual(['from-gateway', 'from-plugin']);
      expect(bodies(c, t).slice(2)).toEqual(['fence']);
      expect(c.messages(t).map((m) => m.headers.destination)).toEqual([t, t, t]);
    }
  });

  it('a /queue is the same RabbitMQ queue from either side', async () => {
    const [p, g] = [await connect(plugin), await connect(gateway)];
    const name = `${run}-mixed`;
    queues.push(name);
    const q = `/queue/${name}`;
    await send(p, q, 'from-plugin');
    const gId = await subscribe(g, q);
    await received(g, q, 1);
    await unsubscribe(g, gId);
    await send(g, q, 'from-gateway');
    await subscribe(p, q);
    await received(p, q, 1);
    expect(bodies(g, q)).toEqual(['from-plugin']);
    expect(bodies(p, q)).toEqual(['from-gateway']);
  });
});

/**
 * Web-STOMP clients settle a message the moment it arrives (ACK in the callback, or `ack: auto` and leave). The
 * gateway records each write in its delivery history; with a slow history (Redis behind a 100 ms link) that record
 * lags the frame by far more than the client takes to answer, and the answer must still count.
 */
describe('a gateway whose delivery history is slow, with a client that settles messages at once', () => {
  const HISTORY_DELAY_MS = 100;
  const run = `wsl${process.pid}x${Date.now().toString(36)}`;
  const clients: TestClient[] = [];
  let proxy: LatencyProxy;
  let gateway: WebStompTarget;
  const connect = async (): Promise<TestClient> => {
    const c = await connectStomp(gateway.wsUrl, gateway.connectHeaders);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    proxy = await startLatencyProxy(6379, HISTORY_DELAY_MS);
    gateway = await gatewayTarget({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` }, false);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await gateway?.stop([]);
    await proxy?.close();
    // Each session's delivery history: `delivery:h:<session>` (RedisHistory's default prefix).
    const redis = new Redis('redis://127.0.0.1:6379');
    await redis.del(...clients.map((c) => `delivery:h:${c.connectedHeaders.session}`));
    redis.disconnect();
  });

  it('an ACK sent as soon as the message arrives settles it', async () => {
    const [a, b] = [await connect(), await connect()];
    const q = `/queue/${run}-ack`;
    await send(b, q, 'm1');
    await subscribe(a, q, { ack: 'client-individual' });
    await received(a, q, 1);
    nth(a, q, 0).ack();
    await a.disconnect();
    await subscribe(b, q);
    await fenced(b, b, q);
    expect(bodies(b, q)).toEqual(['fence']);
  });

  it('an ack: auto message is settled once written, even if its consumer leaves at once', async () => {
    const [a, b] = [await connect(), await connect()];
    const q = `/queue/${run}-auto`;
    await send(b, q, 'm1');
    await subscribe(a, q);
    await received(a, q, 1);
    await a.disconnect();
    await subscribe(b, q);
    await fenced(b, b, q);
    expect(bodies(b, q)).toEqual(['fence']);
  });
});
