import { randomBytes } from 'node:crypto';
import type { IFrame } from '@stomp/stompjs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { api, connectAs, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import { REDIS } from './support/redis.ts';
import type { TestClient } from './support/stomp-client.ts';
import { REDIS_URL, VARIANTS } from './support/variants.ts';

const topicOf = (roomId: string) => `/topic/rooms.${roomId}`;
const sendTo = (roomId: string) => `/app/rooms.${roomId}.send`;
const waitUntil = (predicate: () => boolean) => vi.waitFor(() => expect(predicate()).toBe(true), { timeout: 10_000, interval: 20 });

/** Records the ERROR frames a connected client gets, and whether its socket closed. */
function watchEnd(c: TestClient): { errors: IFrame[]; closed: () => boolean } {
  const errors: IFrame[] = [];
  let closed = false;
  c.client.onStompError = (f) => void errors.push(f);
  c.client.onWebSocketClose = () => void (closed = true);
  return { errors, closed: () => closed };
}

async function groupRoom(server: TestServer, owner: TestUser, members: TestUser[]): Promise<string> {
  const res = await api<{ id: string }>(server.url, 'POST', '/api/rooms', {
    kind: 'group',
    name: `g-${randomBytes(4).toString('hex')}`,
    members: members.map((m) => m.username),
  }, owner.accessToken);
  expect(res.status).toBe(201);
  return res.body.id;
}

/** The same cases on the embedded default and, across two gateways, on Redis. */
for (const variant of VARIANTS) {
  describe(`session lifecycle on ${variant.name}`, () => {
    const servers: TestServer[] = [];
    const clients: TestClient[] = [];
    let alice: TestUser;
    let bob: TestUser;
    const connect = async (server: TestServer, user: TestUser, headers: Record<string, string> = {}) => {
      const c = await connectAs(server, user, headers);
      clients.push(c);
      await c.watchErrors();
      return c;
    };

    let tearDown = async () => {};

    beforeAll(async () => {
      const setUp = await variant.setUp();
      tearDown = setUp.tearDown;
      const env = { ...setUp.env, MAX_CONNECTIONS_PER_USER: '3' };
      // Two gateways where they share state; on the embedded default, one gateway twice.
      const first = await startTestGateway(env);
      servers.push(first, variant.shared ? await startTestGateway(env) : first);
      [alice, bob] = await Promise.all([newUser(servers[0]!.url, 'alice'), newUser(servers[0]!.url, 'bob')]);
    });
    afterAll(async () => {
      await Promise.all(clients.map((c) => c.disconnect()));
      for (const server of new Set(servers)) await server.stop();
      await tearDown();
    });

    it('refuses since-seq beyond any seq with BAD_REQUEST and its request code, not INTERNAL', async () => {
      const roomId = await groupRoom(servers[0]!, alice, [bob]);
      const a = await connect(servers[0]!, alice);
      a.subscribe(topicOf(roomId), { 'since-seq': '1e300', 'client-request-code': 'huge' });
      a.subscribe(topicOf(roomId), { 'since-seq': '99999999999', 'client-request-code': 'overflow' });
      await a.until(() => a.errors.length === 2);
      expect(a.errors.map((e) => [e.code, e.clientRequestCode])).toEqual([
        ['BAD_REQUEST', 'huge'],
        ['BAD_REQUEST', 'overflow'],
      ]);
    });

    it('refuses a second subscription to a room the session already has, and the first keeps receiving', async () => {
      const roomId = await groupRoom(servers[0]!, alice, [bob]);
      const a = await connect(servers[0]!, alice);
      const b = await connect(servers[0]!, bob);
      await a.subscribeConfirmed(topicOf(roomId));
      a.subscribe(topicOf(roomId), { 'client-request-code': 'again' });
      await a.until(() => a.errors.length === 1);
      expect(a.errors[0]).toMatchObject({ code: 'CONFLICT', clientRequestCode: 'again' });
      await b.sendConfirmed(sendTo(roomId), { type: 'CHAT', text: 'still here' });
      await a.until(() => a.logged(topicOf(roomId)).length === 1);
      expect(a.logged(topicOf(roomId))[0]).toMatchObject({ type: 'CHAT', text: 'still here' });
    });

    it('lets a second connection with a live session-resume take the session over: the older gets ERROR and closes', async () => {
      const erin = await newUser(servers[0]!.url, 'erin');
      const roomId = await groupRoom(servers[0]!, erin, [bob]);
      const first = await connect(servers[0]!, erin);
      const ended = watchEnd(first);
      await first.subscribeConfirmed(topicOf(roomId));
      const resume = first.connectedHeaders['session-resume']!;
      const second = await connect(servers[1]!, erin, { 'session-resume': resume });
      await waitUntil(() => ended.closed());
      expect(ended.errors.map((f) => f.headers.message)).toEqual(['session taken over']);

      await second.subscribeConfirmed(topicOf(roomId));
      const b = await connect(servers[0]!, bob);
      await b.sendConfirmed(sendTo(roomId), { type: 'CHAT', text: 'to the new tab' });
      await second.until(() => second.logged(topicOf(roomId)).length === 1);
      expect(second.logged(topicOf(roomId))[0]).toMatchObject({ text: 'to the new tab' });
    });

    it('refuses a session-resume token of another user, or a forged one, with ERROR unauthorized', async () => {
      const frank = await newUser(servers[0]!.url, 'frank');
      const a = await connect(servers[0]!, frank);
      const frankResume = a.connectedHeaders['session-resume']!;
      await expect(connectAs(servers[1]!, bob, { 'session-resume': frankResume })).rejects.toThrow('STOMP ERROR: unauthorized');
      await expect(connectAs(servers[1]!, frank, { 'session-resume': `${frankResume.slice(0, -4)}AAAA` })).rejects.toThrow('STOMP ERROR: unauthorized');
      // Frank's own session was not taken over by either attempt.
      await a.sendConfirmed('/topic/fence-resume', 'still mine');
    });

    it('refuses a CONNECT over MAX_CONNECTIONS_PER_USER with an ERROR, and takes one again once a session ends', async () => {
      const carol = await newUser(servers[0]!.url, 'carol');
      const open = await Promise.all([1, 2, 3].map(() => connect(servers[0]!, carol)));
      await expect(connectAs(servers[0]!, carol)).rejects.toThrow('STOMP ERROR: too many sessions for one user (max 3)');
      await open[0]!.disconnect();
      const again = await connect(servers[0]!, carol);
      expect(again.connectedHeaders['user-name']).toBe(carol.username);
    });
  });
}

describe('a live session on Redis', () => {
  let server: TestServer;
  let client: TestClient;
  afterAll(async () => {
    await client?.disconnect();
    await server?.stop();
  });

  it('keeps its delivery history past RESUME_TTL_S while it is connected', async () => {
    server = await startTestGateway({ REDIS_URL, RESUME_TTL_S: '1' });
    const user = await newUser(server.url, 'dave');
    client = await connectAs(server, user);
    const historyKey = `delivery:h:${client.connectedHeaders.session}`;
    const redis = new Redis(REDIS);
    try {
      const started = Date.now();
      // Past three TTLs of a history that was retained only at connect, it would be gone.
      await vi.waitFor(() => expect(Date.now() - started).toBeGreaterThan(3000), { timeout: 5000, interval: 100 });
      expect(await redis.pttl(historyKey)).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
    }
  });
});
