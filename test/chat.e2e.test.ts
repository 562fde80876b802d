import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { api, connectAs, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import { connectStomp, type TestClient } from './support/stomp-client.ts';
import { VARIANTS } from './support/variants.ts';

interface RoomView {
  id: string;
  kind: string;
  lastSeq: number;
  readSeq: number;
  unread: number;
}

describe.each(VARIANTS)('chat end to end on $name', (variant) => {
  let server: TestServer;
  let dropDatabase: () => Promise<void>;
  let alice: TestUser;
  let bob: TestUser;
  let mallory: TestUser;
  let roomId: string;
  const clients: TestClient[] = [];
  const connect = async (user: TestUser, extra: Record<string, string> = {}) => {
    const c = await connectAs(server, user, extra);
    clients.push(c);
    await c.watchErrors();
    return c;
  };

  beforeAll(async () => {
    const setUp = await variant.setUp();
    dropDatabase = setUp.tearDown;
    server = await startTestGateway(setUp.env);
    [alice, bob, mallory] = await Promise.all([newUser(server.url, 'alice'), newUser(server.url, 'bob'), newUser(server.url, 'mallory')]);
    const room = await api<{ id: string; kind: string }>(server.url, 'POST', '/api/rooms', { kind: 'direct', members: [bob.username] }, alice.accessToken);
    expect(room.status).toBe(201);
    roomId = room.body.id;
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await server?.stop();
    await dropDatabase?.();
  });

  it('gives the same pair the same direct room, from either side', async () => {
    const again = await api<{ id: string }>(server.url, 'POST', '/api/rooms', { kind: 'direct', members: [alice.username] }, bob.accessToken);
    expect(again.body.id).toBe(roomId);
    const list = await api<RoomView[]>(server.url, 'GET', '/api/rooms', undefined, bob.accessToken);
    expect(list.body.map((r) => r.id)).toEqual([roomId]);
  });

  it('lets two users chat both ways, each send stored before its receipt', async () => {
    const a = await connect(alice);
    const b = await connect(bob);
    const topic = `/topic/rooms.${roomId}`;
    await a.subscribeConfirmed(topic);
    await b.subscribeConfirmed(topic);
    const before = (await api<RoomView[]>(server.url, 'GET', '/api/rooms', undefined, alice.accessToken)).body[0]!.lastSeq;

    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'hi bob' });
    // The receipt means stored: history has it at once.
    const h1 = await api<Array<{ text: string; seq: number }>>(server.url, 'GET', `/api/rooms/${roomId}/messages?after=${before}`, undefined, bob.accessToken);
    expect(h1.body.map((e) => e.text)).toEqual(['hi bob']);
    await b.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'hi alice' });

    for (const c of [a, b]) await c.until(() => c.logged(topic).length === 2);
    for (const c of [a, b]) {
      const events = c.logged(topic);
      expect(events.map((e) => [e.type, e.text, (e.sender as { username: string }).username, e.seq])).toEqual([
        ['CHAT', 'hi bob', alice.username, before + 1],
        ['CHAT', 'hi alice', bob.username, before + 2],
      ]);
      const m = c.messages(topic).find((x) => x.headers['event-type'] === 'CHAT')!;
      expect(JSON.parse(m.body).text).toBe('hi bob');
      expect(m.headers['sender-session']).toBe(a.connectedHeaders.session);
      expect(m.headers['sender-seq']).toMatch(/^\d+$/);
    }
    expect(a.errors).toEqual([]);
    expect(b.errors).toEqual([]);
  });

  it('refuses a non-member: SUBSCRIBE and SEND are FORBIDDEN with their request codes, and nothing arrives', async () => {
    const m = await connect(mallory);
    const topic = `/topic/rooms.${roomId}`;
    m.subscribe(topic, { 'client-request-code': 'sub-1' });
    m.send(`/app/rooms.${roomId}.send`, { text: 'let me in' }, { 'client-request-code': 'send-1' });
    await m.until(() => m.errors.length === 2);
    expect(m.errors.map((e) => [e.code, e.clientRequestCode])).toEqual([
      ['FORBIDDEN', 'sub-1'],
      ['FORBIDDEN', 'send-1'],
    ]);
    const a = await connect(alice);
    await a.subscribeConfirmed(topic);
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'private' });
    await a.until(() => a.logged(topic).length === 1);
    expect(m.messages(topic)).toEqual([]);
    const history = await api<{ code: string }>(server.url, 'GET', `/api/rooms/${roomId}/messages`, undefined, mallory.accessToken);
    expect(history.status).toBe(403);
    expect(history.body.code).toBe('FORBIDDEN');
    const h = await api<Array<{ text: string }>>(server.url, 'GET', `/api/rooms/${roomId}/messages`, undefined, alice.accessToken);
    expect(h.body.some((e) => e.text === 'let me in')).toBe(false);
  });

  it('refuses a bad token on CONNECT with ERROR message:unauthorized, then closes', async () => {
    const refused: Array<Record<string, string>> = [{ Authorization: 'Bearer not-a-jwt' }, { passcode: `${alice.accessToken}x` }, {}];
    for (const headers of refused) {
      await expect(connectStomp(server.wsUrl, headers)).rejects.toThrow('STOMP ERROR: unauthorized');
    }
    // The token in `access-token` or `passcode` works as well as in Authorization.
    const accepted: Array<Record<string, string>> = [{ 'access-token': alice.accessToken }, { login: 'x', passcode: alice.accessToken }];
    for (const headers of accepted) {
      const c = await connectStomp(server.wsUrl, headers);
      expect(c.connectedHeaders['user-name']).toBe(alice.username);
      await c.disconnect();
    }
  });

  it('after a reconnect, REST history and since-seq replay return exactly the missed events in order', async () => {
    const topic = `/topic/rooms.${roomId}`;
    const b1 = await connect(bob);
    await b1.subscribeConfirmed(topic);
    const a = await connect(alice);
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'before the drop' });
    await b1.until(() => b1.events(topic).some((e) => e.text === 'before the drop'));
    const lastSeen = b1.logged(topic).at(-1)!.seq as number;
    const resume = b1.connectedHeaders['session-resume']!;
    await b1.disconnect();

    const missed = ['m1', 'm2', 'm3', 'm4', 'm5'];
    for (const text of missed) await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text });

    const history = await api<Array<{ text: string; seq: number }>>(server.url, 'GET', `/api/rooms/${roomId}/messages?after=${lastSeen}`, undefined, bob.accessToken);
    expect(history.body.map((e) => [e.seq, e.text])).toEqual(missed.map((t, i) => [lastSeen + 1 + i, t]));

    const b2 = await connect(bob, { 'session-resume': resume });
    await b2.subscribeConfirmed(topic, { 'since-seq': String(lastSeen) });
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'live' });
    await b2.until(() => b2.events(topic).some((e) => e.text === 'live'));
    expect(b2.logged(topic).map((e) => [e.seq, e.text])).toEqual([...missed, 'live'].map((t, i) => [lastSeen + 1 + i, t]));

    // Paging backwards with before/limit walks the same log.
    const page = await api<Array<{ seq: number }>>(server.url, 'GET', `/api/rooms/${roomId}/messages?before=${lastSeen + 4}&limit=2`, undefined, bob.accessToken);
    expect(page.body.map((e) => e.seq)).toEqual([lastSeen + 2, lastSeen + 3]);
  });

  it('gives 20 concurrent senders in one room seqs 1..N with no gap or repeat', async () => {
    const owner = await newUser(server.url, 'owner');
    const room = await api<{ id: string }>(server.url, 'POST', '/api/rooms', { kind: 'open', name: 'busy' }, owner.accessToken);
    const senders = await Promise.all(Array.from({ length: 20 }, (_, i) => newUser(server.url, `s${i}`)));
    for (const s of senders) expect((await api(server.url, 'POST', `/api/rooms/${room.body.id}/join`, {}, s.accessToken)).status).toBe(204);
    const watcher = await connect(owner);
    const topic = `/topic/rooms.${room.body.id}`;
    await watcher.subscribeConfirmed(topic);
    const baseSeq = (await api<RoomView[]>(server.url, 'GET', '/api/rooms', undefined, owner.accessToken)).body.find((r) => r.id === room.body.id)!.lastSeq;
    expect(baseSeq).toBe(20); // one ENTER per join; creating the room logs none

    const clientsBySender = await Promise.all(senders.map((s) => connect(s)));
    const perSender = 5;
    await Promise.all(
      clientsBySender.map(async (c, i) => {
        for (let k = 0; k < perSender; k++) await c.sendConfirmed(`/app/rooms.${room.body.id}.send`, { text: `${i}:${k}` });
      }),
    );
    const n = senders.length * perSender;
    await watcher.until(() => watcher.events(topic).filter((e) => e.type === 'CHAT').length === n);
    const seqs = watcher.events(topic).filter((e) => e.type === 'CHAT').map((e) => e.seq as number);
    expect(seqs).toEqual(Array.from({ length: n }, (_, i) => baseSeq + 1 + i));
    const history = await api<Array<{ seq: number; text: string }>>(server.url, 'GET', `/api/rooms/${room.body.id}/messages?after=${baseSeq}&limit=500`, undefined, owner.accessToken);
    expect(history.body.map((e) => e.seq)).toEqual(seqs);
    // Each sender's own messages kept their order.
    for (let i = 0; i < senders.length; i++) {
      expect(history.body.filter((e) => e.text.startsWith(`${i}:`)).map((e) => e.text)).toEqual(Array.from({ length: perSender }, (_, k) => `${i}:${k}`));
    }
  });

  it('makes a retried send with the same client-msg-id land once', async () => {
    const a = await connect(alice);
    const topic = `/topic/rooms.${roomId}`;
    await a.subscribeConfirmed(topic);
    for (let i = 0; i < 3; i++) await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'once' }, { 'client-msg-id': 'retry-1' });
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'after' });
    await a.until(() => a.events(topic).some((e) => e.text === 'after'));
    expect(a.events(topic).filter((e) => e.text === 'once')).toHaveLength(1);
    const h = await api<Array<{ text: string }>>(server.url, 'GET', `/api/rooms/${roomId}/messages?limit=500`, undefined, alice.accessToken);
    expect(h.body.filter((e) => e.text === 'once')).toHaveLength(1);
  });

  it('ends only the offending session on malformed input; others keep chatting', async () => {
    const a = await connect(alice);
    const topic = `/topic/rooms.${roomId}`;
    await a.subscribeConfirmed(topic);
    const junk = [
      'CONNECT\naccept-version:1.2\nAuthorization:Bearer x\n\n\0'.replace('CONNECT', 'BOGUS'),
      `CONNECT\naccept-version:1.2\n${'x'.repeat(10_000)}:y\n\n\0`,
      Buffer.from([0xff, 0xfe, 0x00, 0x13, 0x37]),
    ];
    for (const payload of junk) {
      const ws = new WebSocket(server.wsUrl, ['v12.stomp']);
      const frames: string[] = [];
      ws.on('message', (d) => frames.push(d.toString()));
      await new Promise((r) => ws.once('open', r));
      ws.send(payload);
      const code = await new Promise<number>((r) => ws.once('close', (c) => r(c)));
      expect(frames).toHaveLength(1);
      expect(frames[0]!.startsWith('ERROR\n')).toBe(true);
      expect(code).toBe(1002);
    }
    await a.sendConfirmed(`/app/rooms.${roomId}.send`, { text: 'still here' });
    await a.until(() => a.events(topic).some((e) => e.text === 'still here'));
  });
});
