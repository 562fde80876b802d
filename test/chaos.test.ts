import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { Client, type IMessage } from '@stomp/stompjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { freePorts, startGatewayProcess, type GatewayProcess } from '../scripts/gateway-process.ts';
import { createTempPostgres } from '../scripts/temp-postgres.ts';
import { api, newUser, TEST_RATE_LIMITS, type TestUser } from './support/gateway.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';
import { prng } from './support/prng.ts';

/**
 * Chaos, asserted exactly: 30 clients on three gateways (on the real RabbitMQ, Redis and PostgreSQL) exchange a
 * steady stream for 30 s while the gateways' AMQP connections are cut at random moments and one gateway is killed
 * outright. Afterwards every client has every message of its rooms exactly once and in seq order, no session was
 * refused or ended with an ERROR frame, no send was answered with an error event, and the interceptor dropped
 * copies of broker redeliveries.
 */

const CLIENTS = 30;
const ROOMS = 3;
const DURATION_MS = 30_000;
const SEND_EVERY_MS = 250;

interface Received {
  seq: number;
  id: string;
  text: string;
}

/** A chat client that survives its gateway: on a lost socket it reconnects to a live gateway with session-resume and since-seq. */
class ChaosClient {
  readonly received = new Map<string, Received[]>();
  /** Sends not yet confirmed by a RECEIPT, by client-msg-id. */
  readonly unconfirmed = new Map<string, string>();
  readonly confirmed = new Set<string>();
  reconnects = 0;
  /** Error events received, by gateway: none are expected (a stored send is confirmed even while the broker is down). */
  readonly errors: string[] = [];
  /** ERROR frames received, by gateway: none are expected (a SIGKILLed gateway writes none, and no other ends a session). */
  readonly stompErrors: string[] = [];
  private client: Client | undefined;
  private resume: string | undefined;
  private sent = 0;
  private stopped = false;
  private gateway = '';

  constructor(
    readonly index: number,
    readonly user: TestUser,
    readonly rooms: string[],
    private readonly gatewayFor: (attempt: number) => GatewayProcess,
  ) {
    for (const r of rooms) this.received.set(r, []);
  }

  lastSeq(roomId: string): number {
    return this.received.get(roomId)!.at(-1)?.seq ?? 0;
  }

  connect(attempt = 0): Promise<void> {
    const gateway = this.gatewayFor(this.index + attempt);
    this.gateway = gateway.name;
    return new Promise((resolve) => {
      const client = new Client({
        webSocketFactory: () => new WebSocket(`${gateway.url.replace('http', 'ws')}/ws`, ['v12.stomp']),
        connectHeaders: {
          Authorization: `Bearer ${this.user.accessToken}`,
          ...(this.resume ? { 'session-resume': this.resume } : {}),
        },
        reconnectDelay: 0,
        heartbeatIncoming: 0,
        heartbeatOutgoing: 0,
        debug: () => {},
      });
      this.client = client;
      let settled = false;
      client.onConnect = (frame) => {
        settled = true;
        this.resume = frame.headers['session-resume'];
        client.subscribe('/user/queue/errors', (m) => this.errors.push(`${gateway.name}: ${m.body}`));
        for (const roomId of this.rooms) {
          client.subscribe(`/topic/rooms.${roomId}`, (m) => this.onEvent(roomId, m), { 'since-seq': String(this.lastSeq(roomId)) });
        }
        // Whatever was in flight when the last socket died goes again, under the same client-msg-id.
        for (const [id, text] of this.unconfirmed) this.publish(id, text);
        resolve();
      };
      const retry = () => {
        if (this.stopped || client !== this.client) return;
        this.reconnects++;
        this.client = undefined;
        setTimeout(() => void this.connect(attempt + 1).then(() => !settled && resolve()), 100);
      };
      client.onWebSocketClose = retry;
      client.onStompError = (frame) => {
        this.stompErrors.push(`${gateway.name}: ${frame.headers.message} ${frame.body}`);
        void client.deactivate();
      };
      client.activate();
    });
  }

  describe(): string {
    return `${this.unconfirmed.size} unconfirmed (${[...this.unconfirmed.keys()].slice(0, 3).join(' ')}), connected ${this.client?.connected ?? false} to ${this.gateway}, ${this.reconnects} reconnects`;
  }

  /** Send the next message to the room this client sends in; returns its text. */
  sendNext(): string {
    const id = `${this.index}-${++this.sent}`;
    const text = `m ${id} ${randomBytes(4).toString('hex')}`;
    this.unconfirmed.set(id, text);
    this.publish(id, text);
    return text;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.client?.deactivate();
  }

  private publish(id: string, text: string): void {
    const client = this.client;
    if (!client?.connected) return; // sent again on reconnect
    const receipt = `r-${id}-${Math.random().toString(36).slice(2)}`;
    client.watchForReceipt(receipt, () => {
      this.unconfirmed.delete(id);
      this.confirmed.add(id);
    });
    client.publish({
      destination: `/app/rooms.${this.rooms[0]}.send`,
      body: JSON.stringify({ text }),
      headers: { 'client-msg-id': id, receipt },
    });
  }

  private onEvent(roomId: string, m: IMessage): void {
    const e = JSON.parse(m.body) as { type: string; seq: number; id: string; text: string };
    if (e.type === 'CHAT') this.received.get(roomId)!.push({ seq: e.seq, id: e.id, text: e.text });
  }
}

async function counter(gateway: GatewayProcess, name: string): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  return Number(new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
}
const droppedCopies = (gateway: GatewayProcess) => counter(gateway, 'chat_duplicates_dropped_total');
const droppedRedeliveries = (gateway: GatewayProcess) => counter(gateway, 'chat_redelivered_dropped_total');
const outboxRepublished = (gateway: GatewayProcess) => counter(gateway, 'chat_outbox_republished_total');

async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('chaos: broker faults and a gateway death under steady traffic', () => {
  let pg: Awaited<ReturnType<typeof createTempPostgres>>;
  const proxies: TcpProxy[] = [];
  const gateways: GatewayProcess[] = [];
  const clients: ChaosClient[] = [];
  const logs: string[] = [];

  beforeAll(async () => {
    pg = await createTempPostgres();
    const env = {
      DATABASE_URL: pg.url,
      REDIS_URL: 'redis://127.0.0.1:6379',
      JWT_SECRET: randomBytes(32).toString('hex'),
      LOG_LEVEL: 'warn',
      BROKER_QUEUE_EXPIRES_MS: '10000',
      RATE_LIMIT_PER_S: '1000',
      ...TEST_RATE_LIMITS,
    };
    const ports = await freePorts(3);
    for (const [i, port] of ports.entries()) {
      const proxy = await startTcpProxy(5672);
      proxies.push(proxy);
      gateways.push(
        await startGatewayProcess(`chaos-g${i}-${port}`, port, { ...env, BROKER_URL: `amqp://guest:guest@127.0.0.1:${proxy.port}` }, (l) => logs.push(l)),
      );
    }
  });

  afterAll(async () => {
    if (process.env.CHAOS_LOG) await writeFile(process.env.CHAOS_LOG, logs.join('\n'));
    await Promise.all(clients.map((c) => c.stop()));
    for (const g of gateways) g.kill('SIGTERM');
    await Promise.all(gateways.map((g) => g.exited));
    await Promise.all(proxies.map((p) => p.close()));
    await pg?.drop();
  });

  it('delivers every message of every room to every member exactly once, in order', async () => {
    const base = gateways[0]!.url;
    const users = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => newUser(base, `chaos${i}`)));
    // Member i is in room i % 3 (where it sends) and room (i + 1) % 3 (which it only reads).
    const roomIds: string[] = [];
    for (let r = 0; r < ROOMS; r++) {
      const members = users.filter((_, i) => i % ROOMS === r || (i + 1) % ROOMS === r);
      const [owner, ...rest] = members;
      const room = await api<{ id: string }>(base, 'POST', '/api/rooms', { kind: 'group', name: `chaos ${r}`, members: rest.map((u) => u.username) }, owner!.accessToken);
      expect(room.status).toBe(201);
      roomIds.push(room.body.id);
    }
    const alive = new Set(gateways);
    const gatewayFor = (n: number): GatewayProcess => {
      const live = gateways.filter((g) => alive.has(g));
      return live[n % live.length]!;
    };
    users.forEach((u, i) => clients.push(new ChaosClient(i, u, [roomIds[i % ROOMS]!, roomIds[(i + 1) % ROOMS]!], gatewayFor)));
    await Promise.all(clients.map((c) => c.connect()));

    const rand = prng(20261122);
    const faults: string[] = [];
    let dropped = 0;
    let redeliveriesDropped = 0;
    const victim = gateways[2]!;
    const start = Date.now();
    const sender = setInterval(() => clients.forEach((c) => c.sendNext()), SEND_EVERY_MS);
    // Cut a random gateway's AMQP connections every 1.5-4 s; kill one gateway outright at about 40% of the run.
    let nextFault = start + 1500 + rand() * 2500;
    let killed = false;
    while (Date.now() - start < DURATION_MS) {
      await new Promise((r) => setTimeout(r, 50));
      if (!killed && Date.now() - start > DURATION_MS * 0.4) {
        killed = true;
        dropped += await droppedCopies(victim);
        redeliveriesDropped += await droppedRedeliveries(victim);
        alive.delete(victim);
        victim.kill('SIGKILL');
        faults.push(`${Date.now() - start}ms kill ${victim.name}`);
      }
      if (Date.now() >= nextFault) {
        // Among the live gateways: cutting the killed one's link would count as a fault and do nothing.
        const live = gateways.flatMap((g, k) => (alive.has(g) ? [k] : []));
        const i = live[Math.floor(rand() * live.length)]!;
        proxies[i]!.dropAll();
        faults.push(`${Date.now() - start}ms drop AMQP of g${i}`);
        nextFault = Date.now() + 1500 + rand() * 2500;
      }
    }
    clearInterval(sender);
    await victim.exited;

    // Every send is confirmed in the end (retried under its client-msg-id until stored and published). A send
    // answered with an error event is never confirmed: that fails at once, by name, rather than at the deadline.
    const refusals = () => clients.flatMap((c) => [...c.errors, ...c.stompErrors]);
    const confirmedOrRefused = () => refusals().length > 0 || clients.every((c) => c.unconfirmed.size === 0);
    const allConfirmed = () =>
      until(confirmedOrRefused, 60_000, 'all sends confirmed').catch((err: Error) => {
        const stuck = clients.filter((c) => c.unconfirmed.size > 0).map((c) => `client ${c.index}: ${c.describe()}`);
        throw new Error(`${err.message}; ${stuck.join('; ')}`);
      });
    await allConfirmed();
    expect(refusals()).toEqual([]);
    // The fence: one last message per room, sent once every other send is confirmed and the faults have stopped.
    // Room feeds deliver in seq order, so a client that has it has had every message before it, and any second
    // copy the interceptor let through; the lists are then asserted exactly, with no sleep.
    const fences = roomIds.map((roomId) => clients.find((c) => c.rooms[0] === roomId)!.sendNext());
    await allConfirmed();
    const lastSeqs = new Map<string, number>();
    for (let r = 0; r < ROOMS; r++) {
      const owner = users.find((_, i) => i % ROOMS === r)!;
      const rooms = await api<Array<{ id: string; lastSeq: number }>>(base, 'GET', '/api/rooms', undefined, owner.accessToken);
      lastSeqs.set(roomIds[r]!, rooms.body.find((x) => x.id === roomIds[r])!.lastSeq);
    }
    const caughtUp = (c: ChaosClient) => c.rooms.every((r) => c.received.get(r)!.some((e) => e.text === fences[roomIds.indexOf(r)]));
    await until(() => clients.every(caughtUp), 60_000, 'all clients have the fence').catch((err: Error) => {
      const behind = clients.filter((c) => !caughtUp(c)).map((c) => {
        const rooms = c.rooms.map((r) => {
          const seen = new Set(c.received.get(r)!.map((e) => e.seq));
          const missing = Array.from({ length: lastSeqs.get(r)! }, (_, k) => k + 1).filter((q) => !seen.has(q));
          return `room ${roomIds.indexOf(r)} missing ${missing.length} (${missing.slice(0, 5).join(',')})`;
        });
        return `client ${c.index} (${c.describe()}): ${rooms.join(', ')}`;
      });
      throw new Error(`${err.message}; ${behind.join('; ')}`);
    });

    for (const g of gateways.filter((x) => alive.has(x))) {
      dropped += await droppedCopies(g);
      redeliveriesDropped += await droppedRedeliveries(g);
    }
    const sent = clients.reduce((n, c) => n + c.confirmed.size, 0);
    const delivered = clients.reduce((n, c) => n + [...c.received.values()].reduce((m, l) => m + l.length, 0), 0);
    const reconnects = clients.reduce((n, c) => n + c.reconnects, 0);
    const errors = clients.flatMap((c) => c.errors);
    const stompErrors = clients.flatMap((c) => c.stompErrors);
    let republished = 0;
    for (const g of gateways.filter((x) => alive.has(x))) republished += await outboxRepublished(g);
    console.log(
      `chaos: ${sent} messages confirmed, ${delivered} delivered, ${dropped} copies dropped by the interceptor ` +
        `(${redeliveriesDropped} of them broker redeliveries), ${reconnects} client reconnects, ${errors.length} error events, ` +
        `${stompErrors.length} ERROR frames, ${republished} events published by an outbox sweep on the surviving gateways; ` +
        `faults: ${faults.join(', ')}`,
    );

    // The log has exactly the confirmed messages, once each.
    const texts = new Map<string, number>();
    for (const [r, roomId] of roomIds.entries()) {
      const history = await api<Array<{ seq: number; text: string }>>(base, 'GET', `/api/rooms/${roomId}/messages?after=0&limit=500`, undefined, users[r]!.accessToken);
      let all = history.body;
      while (all.length < lastSeqs.get(roomId)!) {
        const more = await api<Array<{ seq: number; text: string }>>(base, 'GET', `/api/rooms/${roomId}/messages?after=${all.at(-1)!.seq}&limit=500`, undefined, users[r]!.accessToken);
        all = all.concat(more.body);
      }
      expect(all.map((e) => e.seq)).toEqual(Array.from({ length: lastSeqs.get(roomId)! }, (_, k) => k + 1));
      for (const e of all) texts.set(e.text, (texts.get(e.text) ?? 0) + 1);
    }
    const expectedTexts = clients.flatMap((c) => [...c.confirmed].map((id) => [...texts.keys()].find((t) => t.startsWith(`m ${id} `))));
    expect(expectedTexts.filter((t) => t === undefined)).toHaveLength(0);
    expect([...texts.values()].every((n) => n === 1)).toBe(true);
    expect(texts.size).toBe(sent);

    // Every client has every message of each of its rooms exactly once, in seq order, the fence last.
    for (const c of clients) {
      for (const roomId of c.rooms) {
        const list = c.received.get(roomId)!;
        expect(list.map((e) => e.seq), `client ${c.index} room ${roomId}`).toEqual(Array.from({ length: lastSeqs.get(roomId)! }, (_, k) => k + 1));
        expect(list.at(-1)!.text).toBe(fences[roomIds.indexOf(roomId)]);
      }
    }
    expect(killed).toBe(true);
    expect(faults.length).toBeGreaterThanOrEqual(6);
    expect(reconnects).toBeGreaterThanOrEqual(CLIENTS / 3);
    // Copies RabbitMQ handed out again (unacked when a link was cut) reached the interceptor and were dropped there.
    expect(redeliveriesDropped).toBeGreaterThan(0);
    // Sends are stored before anything can fail on the broker: each is confirmed (the outbox publishes it), never
    // answered BROKER_UNAVAILABLE.
    expect(errors).toEqual([]);
    // A cut AMQP link ends no session, and the SIGKILLed gateway's clients only lost their sockets.
    expect(stompErrors).toEqual([]);
  }, 240_000);
});
