import { randomBytes } from 'node:crypto';
import type { IFrame, IMessage } from '@stomp/stompjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuditLog } from '../src/audit.ts';
import { TokenService } from '../src/auth/tokens.ts';
import { api, connectAs, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import type { TestClient } from './support/stomp-client.ts';
import { VARIANTS, type Variant } from './support/variants.ts';

type Event = Record<string, unknown> & { type: string };

interface RoomView {
  id: string;
  name: string;
  kind: string;
  lastSeq: number;
  readSeq: number;
  unread: number;
  lastMessage: Event | null;
}

const topicOf = (roomId: string) => `/topic/rooms.${roomId}`;
const action = (roomId: string, name: string) => `/app/rooms.${roomId}.${name}`;
/** The room's events of the given types, as the client got them (PRESENCE and the like come in between). */
const eventsOf = (c: TestClient, roomId: string, ...types: string[]): Event[] =>
  (c.events(topicOf(roomId)) as Event[]).filter((e) => types.includes(e.type));
const framesOf = (c: TestClient, roomId: string, type: string): IMessage[] =>
  c.messages(topicOf(roomId)).filter((m) => m.headers['event-type'] === type);
const ref = (u: TestUser) => ({ id: u.id, username: u.username });
/** A message as REST history serves it once deleted. */
const asDeleted = ({ text: _text, file: _file, ...message }: Event): Event => ({ ...message, deleted: true });
/** For what no received frame signals (a closed socket): poll, bounded. */
const waitUntil = (predicate: () => boolean) => vi.waitFor(() => expect(predicate()).toBe(true), { timeout: 10_000, interval: 20 });

/** Start a gateway on `variant` and sign up users on it; everything is stopped and disconnected after the suite. */
function suite(variant: Variant, env: () => Record<string, string>, ...prefixes: string[]) {
  let tearDown = async () => {};
  const s = {
    server: undefined as unknown as TestServer,
    users: [] as TestUser[],
    clients: [] as TestClient[],
    async connect(user: TestUser, headers: Record<string, string> = {}): Promise<TestClient> {
      const c = await connectAs(s.server, user, headers);
      s.clients.push(c);
      await c.watchErrors();
      return c;
    },
    async room(owner: TestUser, kind: 'group' | 'open', members: TestUser[] = []): Promise<string> {
      const name = `${kind}-${randomBytes(4).toString('hex')}`;
      const res = await api<{ id: string }>(s.server.url, 'POST', '/api/rooms', { kind, name, members: members.map((m) => m.username) }, owner.accessToken);
      expect(res.status).toBe(201);
      return res.body.id;
    },
    async summary(user: TestUser, roomId: string): Promise<RoomView | undefined> {
      const res = await api<RoomView[]>(s.server.url, 'GET', '/api/rooms', undefined, user.accessToken);
      return res.body.find((r) => r.id === roomId);
    },
  };
  beforeAll(async () => {
    const setUp = await variant.setUp();
    tearDown = setUp.tearDown;
    s.server = await startTestGateway({ ...setUp.env, ...env() });
    s.users = await Promise.all(prefixes.map((p) => newUser(s.server.url, p)));
  });
  afterAll(async () => {
    await Promise.all(s.clients.map((c) => c.disconnect()));
    await s.server?.stop();
    await tearDown();
  });
  return s;
}

describe.each(VARIANTS)('chat features end to end on $name', (variant) => {
  const s = suite(variant, () => ({}), 'alice', 'bob', 'mallory');
  const users = () => s.users as [TestUser, TestUser, TestUser];

  it('sends TYPING to the other members and nothing to a non-member, who is refused with request codes', async () => {
    const [alice, bob, mallory] = users();
    const roomId = await s.room(alice, 'group', [bob]);
    const [a, b, m] = await Promise.all([s.connect(alice), s.connect(bob), s.connect(mallory)]);
    await a.subscribeConfirmed(topicOf(roomId));
    await b.subscribeConfirmed(topicOf(roomId));

    m.subscribe(topicOf(roomId), { 'client-request-code': 'm-sub' });
    m.send(action(roomId, 'typing'), { typing: true }, { 'client-request-code': 'm-typing' });
    await m.until(() => m.errors.length === 2);
    expect(m.errors).toEqual([
      { code: 'FORBIDDEN', message: `not a member of room ${roomId}`, clientRequestCode: 'm-sub' },
      { code: 'FORBIDDEN', message: `not a member of room ${roomId}`, clientRequestCode: 'm-typing' },
    ]);

    await a.sendConfirmed(action(roomId, 'typing'), { typing: true });
    await a.sendConfirmed(action(roomId, 'typing'), { typing: false });
    await b.until(() => eventsOf(b, roomId, 'TYPING').length === 2);
    expect(eventsOf(b, roomId, 'TYPING')).toEqual([
      { type: 'TYPING', roomId, userId: alice.id, typing: true },
      { type: 'TYPING', roomId, userId: alice.id, typing: false },
    ]);
    const frames = framesOf(b, roomId, 'TYPING');
    expect(frames.map((f) => f.headers['sender-session'])).toEqual([a.connectedHeaders.session, a.connectedHeaders.session]);
    expect(frames.map((f) => f.headers.seq)).toEqual([undefined, undefined]);
    expect(m.messages(topicOf(roomId))).toEqual([]);

    a.send(action(roomId, 'typing'), { typing: 'yes' }, { 'client-request-code': 'bad-typing' });
    await a.until(() => a.errors.length === 1);
    expect(a.errors.map((e) => [e.code, e.clientRequestCode])).toEqual([['BAD_REQUEST', 'bad-typing']]);
    expect([b.errors, m.errors.length]).toEqual([[], 2]);
  });

  it('publishes READ with the clamped seq and shows readSeq and unread (others\' live messages only) in GET /api/rooms', async () => {
    const [alice, bob] = users();
    const roomId = await s.room(alice, 'group', [bob]);
    const [a, b] = await Promise.all([s.connect(alice), s.connect(bob)]);
    await a.subscribeConfirmed(topicOf(roomId));
    await b.subscribeConfirmed(topicOf(roomId));

    await b.sendConfirmed(action(roomId, 'send'), { text: 'b1' });
    await b.sendConfirmed(action(roomId, 'send'), { type: 'NOTICE', text: 'b2' });
    await a.sendConfirmed(action(roomId, 'send'), { text: 'a1' });
    await b.sendConfirmed(action(roomId, 'send'), { type: 'RESOURCE', text: 'r1' });
    await a.until(() => eventsOf(a, roomId, 'CHAT', 'NOTICE', 'RESOURCE').length === 4);
    const [b1, , a1, r1] = eventsOf(a, roomId, 'CHAT', 'NOTICE', 'RESOURCE');
    expect(eventsOf(a, roomId, 'CHAT', 'NOTICE', 'RESOURCE').map((e) => [e.type, e.seq, e.text])).toEqual([
      ['CHAT', 1, 'b1'],
      ['NOTICE', 2, 'b2'],
      ['CHAT', 3, 'a1'],
      ['RESOURCE', 4, 'r1'],
    ]);
    const view = (lastSeq: number, readSeq: number, unread: number, lastMessage: Event) => ({
      id: roomId,
      name: expect.stringMatching(/^group-/),
      kind: 'group',
      lastSeq,
      readSeq,
      unread,
      lastMessage,
    });
    expect(await s.summary(alice, roomId)).toEqual(view(4, 0, 3, r1!));
    expect(await s.summary(bob, roomId)).toEqual(view(4, 0, 1, r1!));

    await a.sendConfirmed(action(roomId, 'read'), { seq: 2 });
    expect(await s.summary(alice, roomId)).toEqual(view(4, 2, 1, r1!));
    // Never back.
    await a.sendConfirmed(action(roomId, 'read'), { seq: 1 });
    expect(await s.summary(alice, roomId)).toEqual(view(4, 2, 1, r1!));
    // A deleted message is not unread, and no longer the last message.
    await b.sendConfirmed(action(roomId, 'delete'), { messageId: r1!.id });
    expect(await s.summary(alice, roomId)).toEqual(view(5, 2, 0, a1!));
    // Never past the room's last seq.
    await a.sendConfirmed(action(roomId, 'read'), { seq: 999 });
    expect(await s.summary(alice, roomId)).toEqual(view(5, 5, 0, a1!));
    expect(await s.summary(bob, roomId)).toEqual(view(5, 0, 1, a1!));
    await b.sendConfirmed(action(roomId, 'read'), { seq: 3 });
    expect(await s.summary(bob, roomId)).toEqual(view(5, 3, 0, a1!));

    await b.until(() => eventsOf(b, roomId, 'READ').length === 4);
    expect(eventsOf(b, roomId, 'READ')).toEqual([
      { type: 'READ', roomId, userId: alice.id, seq: 2 },
      { type: 'READ', roomId, userId: alice.id, seq: 2 },
      { type: 'READ', roomId, userId: alice.id, seq: 5 },
      { type: 'READ', roomId, userId: bob.id, seq: 3 },
    ]);
    expect(b1!.sender).toEqual(ref(bob));

    a.send(action(roomId, 'read'), { seq: -1 }, { 'client-request-code': 'neg' });
    await a.until(() => a.errors.length === 1);
    expect(a.errors.map((e) => [e.code, e.clientRequestCode])).toEqual([['BAD_REQUEST', 'neg']]);
  });

  it('sends EDIT and DELETE with their own seqs, refuses others\' edits and deletes (the owner may delete any), and history reflects them', async () => {
    const [alice, bob] = users();
    const roomId = await s.room(alice, 'group', [bob]);
    const [a, b] = await Promise.all([s.connect(alice), s.connect(bob)]);
    await a.subscribeConfirmed(topicOf(roomId));
    await b.subscribeConfirmed(topicOf(roomId));
    const kinds = ['CHAT', 'EDIT', 'DELETE'];

    await a.sendConfirmed(action(roomId, 'send'), { text: 'hello' });
    await b.sendConfirmed(action(roomId, 'send'), { text: 'hi' });
    await b.until(() => eventsOf(b, roomId, ...kinds).length === 2);
    const [hello, hi] = eventsOf(b, roomId, ...kinds) as [Event, Event];

    await a.sendConfirmed(action(roomId, 'edit'), { messageId: hello.id, text: 'hello, world' });
    b.send(action(roomId, 'edit'), { messageId: hello.id, text: 'hacked' }, { 'client-request-code': 'edit-other' });
    b.send(action(roomId, 'delete'), { messageId: hello.id }, { 'client-request-code': 'delete-other' });
    await b.until(() => b.errors.length === 2);
    // The owner deletes bob's message; bob cannot delete it again, then deletes one of his own.
    await a.sendConfirmed(action(roomId, 'delete'), { messageId: hi.id });
    b.send(action(roomId, 'delete'), { messageId: hi.id }, { 'client-request-code': 'delete-gone' });
    a.send(action(roomId, 'edit'), { messageId: hi.id, text: 'too late' }, { 'client-request-code': 'edit-gone' });
    await b.sendConfirmed(action(roomId, 'send'), { text: 'again' });
    await b.until(() => eventsOf(b, roomId, ...kinds).length === 5);
    const again = eventsOf(b, roomId, ...kinds)[4]!;
    await b.sendConfirmed(action(roomId, 'delete'), { messageId: again.id });

    expect(b.errors).toEqual([
      { code: 'FORBIDDEN', message: 'only its sender may edit a message', clientRequestCode: 'edit-other' },
      { code: 'FORBIDDEN', message: 'only its sender or the room owner may delete a message', clientRequestCode: 'delete-other' },
      { code: 'NOT_FOUND', message: 'no such message', clientRequestCode: 'delete-gone' },
    ]);
    await a.until(() => a.errors.length === 1);
    expect(a.errors).toEqual([{ code: 'NOT_FOUND', message: 'no such message', clientRequestCode: 'edit-gone' }]);

    const expected = [
      { ...hello, seq: 1, text: 'hello' },
      { ...hi, seq: 2, text: 'hi' },
      { type: 'EDIT', roomId, seq: 3, messageId: hello.id, text: 'hello, world', editedAt: expect.any(String) },
      { type: 'DELETE', roomId, seq: 4, messageId: hi.id },
      { ...again, seq: 5, text: 'again' },
      { type: 'DELETE', roomId, seq: 6, messageId: again.id },
    ];
    for (const c of [a, b]) {
      await c.until(() => eventsOf(c, roomId, ...kinds).length === 6);
      expect(eventsOf(c, roomId, ...kinds)).toEqual(expected);
      const frames = c.messages(topicOf(roomId)).filter((f) => kinds.includes(f.headers['event-type']!));
      expect(frames.map((f) => [f.headers['event-type'], f.headers.seq, f.headers['sender-session']])).toEqual([
        ['CHAT', '1', a.connectedHeaders.session],
        ['CHAT', '2', b.connectedHeaders.session],
        ['EDIT', '3', a.connectedHeaders.session],
        ['DELETE', '4', a.connectedHeaders.session],
        ['CHAT', '5', b.connectedHeaders.session],
        ['DELETE', '6', b.connectedHeaders.session],
      ]);
    }
    expect(Date.parse(eventsOf(a, roomId, 'EDIT')[0]!.editedAt as string)).toBeGreaterThan(0);

    // History keeps the log's edits and deletes as events and shows each message as it is now, as the room list does.
    const history = await api<Event[]>(s.server.url, 'GET', `/api/rooms/${roomId}/messages`, undefined, bob.accessToken);
    expect(history.body).toEqual([
      { ...expected[0], text: 'hello, world', editedAt: eventsOf(a, roomId, 'EDIT')[0]!.editedAt },
      asDeleted(expected[1]!),
      expected[2],
      expected[3],
      asDeleted(expected[4]!),
      expected[5],
    ]);
    expect(history.body[2]).toEqual(eventsOf(a, roomId, 'EDIT')[0]);
    expect((await s.summary(alice, roomId))!.lastMessage).toEqual({ ...hello, text: 'hello, world' });
  });

  it('serves history as people read it: each message as it is now, then the EDIT and DELETE events with their seqs, in every page', async () => {
    const [alice, bob] = users();
    const roomId = await s.room(alice, 'group', [bob]);
    const [a, b] = await Promise.all([s.connect(alice), s.connect(bob)]);
    await b.subscribeConfirmed(topicOf(roomId));
    for (const text of ['one', 'two', 'three']) await a.sendConfirmed(action(roomId, 'send'), { text });
    await b.until(() => eventsOf(b, roomId, 'CHAT').length === 3);
    const [one, two, three] = eventsOf(b, roomId, 'CHAT') as [Event, Event, Event];
    await a.sendConfirmed(action(roomId, 'edit'), { messageId: one.id, text: 'one, edited' });
    await a.sendConfirmed(action(roomId, 'edit'), { messageId: one.id, text: 'one, final' });
    await a.sendConfirmed(action(roomId, 'delete'), { messageId: two.id });
    await b.until(() => eventsOf(b, roomId, 'EDIT', 'DELETE').length === 3);
    const [edit1, edit2, del] = eventsOf(b, roomId, 'EDIT', 'DELETE') as [Event, Event, Event];
    expect([one.seq, two.seq, three.seq, edit1.seq, edit2.seq, del.seq]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([edit1.text, edit2.text, del.messageId]).toEqual(['one, edited', 'one, final', two.id]);

    const now = [{ ...one, text: 'one, final', editedAt: edit2.editedAt }, asDeleted(two), three, edit1, edit2, del];
    const page = async (query: string) =>
      (await api<Event[]>(s.server.url, 'GET', `/api/rooms/${roomId}/messages${query}`, undefined, bob.accessToken)).body;
    expect(await page('')).toEqual(now);
    expect(await page('?limit=2')).toEqual(now.slice(4));
    expect(await page('?before=3&limit=2')).toEqual(now.slice(0, 2));
    expect(await page('?after=1&limit=2')).toEqual(now.slice(1, 3));
    expect(await page('?after=0&before=5')).toEqual(now.slice(0, 4));
    // Live frames are the log as it happened.
    expect(eventsOf(b, roomId, 'CHAT').map((e) => e.text)).toEqual(['one', 'two', 'three']);
  });

  it('round-trips replyTo, and refuses a reply to a message of another room', async () => {
    const [alice, bob] = users();
    const roomId = await s.room(alice, 'group', [bob]);
    const otherRoom = await s.room(alice, 'group', [bob]);
    const [a, b] = await Promise.all([s.connect(alice), s.connect(bob)]);
    await a.subscribeConfirmed(topicOf(roomId));
    await a.subscribeConfirmed(topicOf(otherRoom));

    await a.sendConfirmed(action(roomId, 'send'), { text: 'question?' });
    await a.sendConfirmed(action(otherRoom, 'send'), { text: 'elsewhere' });
    await a.until(() => eventsOf(a, roomId, 'CHAT').length === 1 && eventsOf(a, otherRoom, 'CHAT').length === 1);
    const question = eventsOf(a, roomId, 'CHAT')[0]!;
    const elsewhere = eventsOf(a, otherRoom, 'CHAT')[0]!;

    await b.sendConfirmed(action(roomId, 'send'), { text: 'answer', replyTo: question.id });
    b.send(action(roomId, 'send'), { text: 'wrong room', replyTo: elsewhere.id }, { 'client-request-code': 'reply-elsewhere' });
    b.send(action(roomId, 'send'), { text: 'no such', replyTo: 'not-a-message' }, { 'client-request-code': 'reply-junk' });
    await b.until(() => b.errors.length === 2);
    expect(b.errors).toEqual([
      { code: 'NOT_FOUND', message: 'replyTo: no such message in this room', clientRequestCode: 'reply-elsewhere' },
      { code: 'NOT_FOUND', message: 'replyTo: no such message in this room', clientRequestCode: 'reply-junk' },
    ]);

    await a.until(() => eventsOf(a, roomId, 'CHAT').length === 2);
    const answer = eventsOf(a, roomId, 'CHAT')[1]!;
    expect(answer).toEqual({
      type: 'CHAT',
      id: expect.any(String),
      roomId,
      seq: 2,
      sender: ref(bob),
      text: 'answer',
      replyTo: question.id,
      createdAt: expect.any(String),
    });
    expect('replyTo' in question).toBe(false);
    const history = await api<Event[]>(s.server.url, 'GET', `/api/rooms/${roomId}/messages`, undefined, alice.accessToken);
    expect(history.body).toEqual([question, answer]);
  });

  it('sends LEAVE when a member leaves over REST, and refuses the leaver\'s later SUBSCRIBE and SEND', async () => {
    const [alice, bob] = users();
    const roomId = await s.room(alice, 'group', [bob]);
    const a = await s.connect(alice);
    await a.subscribeConfirmed(topicOf(roomId));
    const b = await s.connect(bob);

    const left = await api(s.server.url, 'POST', `/api/rooms/${roomId}/leave`, {}, bob.accessToken);
    expect(left.status).toBe(204);
    await a.until(() => eventsOf(a, roomId, 'LEAVE').length === 1);
    expect(eventsOf(a, roomId, 'LEAVE')).toEqual([
      { type: 'LEAVE', id: expect.any(String), roomId, seq: 1, sender: ref(bob), text: `${bob.username} left`, createdAt: expect.any(String) },
    ]);
    expect(framesOf(a, roomId, 'LEAVE').map((f) => f.headers.seq)).toEqual(['1']);

    b.subscribe(topicOf(roomId), { 'client-request-code': 'sub-after-leave' });
    b.send(action(roomId, 'send'), { text: 'still here?' }, { 'client-request-code': 'send-after-leave' });
    await b.until(() => b.errors.length === 2);
    expect(b.errors).toEqual([
      { code: 'FORBIDDEN', message: `not a member of room ${roomId}`, clientRequestCode: 'sub-after-leave' },
      { code: 'FORBIDDEN', message: 'not a member of this room', clientRequestCode: 'send-after-leave' },
    ]);
    expect(b.messages(topicOf(roomId))).toEqual([]);

    expect(await s.summary(bob, roomId)).toBeUndefined();
    const members = await api<Array<{ id: string }>>(s.server.url, 'GET', `/api/rooms/${roomId}/members`, undefined, alice.accessToken);
    expect(members.body.map((m) => m.id)).toEqual([alice.id]);
    const again = await api(s.server.url, 'POST', `/api/rooms/${roomId}/leave`, {}, bob.accessToken);
    expect(again).toEqual({ status: 403, body: { code: 'FORBIDDEN', message: `not a member of room ${roomId}` } });
  });

  it('ends a leaver\'s live subscription after its own LEAVE: nothing later of the room reaches it', async () => {
    const [alice, bob] = users();
    const roomId = await s.room(alice, 'group', [bob]);
    const a = await s.connect(alice);
    const b = await s.connect(bob);
    await a.subscribeConfirmed(topicOf(roomId));
    const subId = await b.subscribeConfirmed(topicOf(roomId), { 'client-request-code': 'sub-before-leave' });

    expect((await api(s.server.url, 'POST', `/api/rooms/${roomId}/leave`, {}, bob.accessToken)).status).toBe(204);
    await b.until(() => b.errors.length === 1);
    expect(b.errors).toEqual([
      { code: 'FORBIDDEN', message: `you left room ${roomId}; subscription ${subId} ended`, clientRequestCode: 'sub-before-leave' },
    ]);
    await a.sendConfirmed(action(roomId, 'send'), { text: 'after bob left' });
    await a.until(() => eventsOf(a, roomId, 'CHAT').length === 1);
    expect(b.logged(topicOf(roomId)).map((e) => e.type)).toEqual(['LEAVE']);
  });

  it('keeps a rejoined member\'s subscription when its replay holds the member\'s own earlier LEAVE', async () => {
    const [alice, bob] = users();
    const created = await api<{ id: string }>(s.server.url, 'POST', '/api/rooms', { kind: 'open', name: 'revolving door' }, alice.accessToken);
    const roomId = created.body.id;
    for (const step of ['join', 'leave', 'join']) {
      expect((await api(s.server.url, 'POST', `/api/rooms/${roomId}/${step}`, {}, bob.accessToken)).status).toBe(204);
    }
    const b = await s.connect(bob);
    await b.subscribeConfirmed(topicOf(roomId), { 'since-seq': '0' });
    const a = await s.connect(alice);
    await a.sendConfirmed(action(roomId, 'send'), { text: 'welcome back' });
    await b.until(() => eventsOf(b, roomId, 'CHAT').length === 1);
    expect(b.logged(topicOf(roomId)).map((e) => e.type)).toEqual(['ENTER', 'LEAVE', 'ENTER', 'CHAT']);
    expect(b.errors).toEqual([]);
  });

  it('lists open rooms, and joining one sends ENTER once; group rooms cannot be joined', async () => {
    const [alice, bob, mallory] = users();
    const openRoom = await s.room(alice, 'open');
    const groupRoom = await s.room(alice, 'group', [mallory]);
    const open = await api<Array<{ id: string; name: string; kind: string }>>(s.server.url, 'GET', '/api/rooms/open', undefined, bob.accessToken);
    const listed = open.body.filter((r) => r.id === openRoom || r.id === groupRoom);
    expect(listed.map((r) => [r.id, r.kind, r.name.startsWith('open-')])).toEqual([[openRoom, 'open', true]]);

    const a = await s.connect(alice);
    await a.subscribeConfirmed(topicOf(openRoom));
    const b = await s.connect(bob);
    b.subscribe(topicOf(openRoom), { 'client-request-code': 'before-join' });
    await b.until(() => b.errors.length === 1);
    expect(b.errors).toEqual([{ code: 'FORBIDDEN', message: `not a member of room ${openRoom}`, clientRequestCode: 'before-join' }]);

    for (let i = 0; i < 2; i++) expect((await api(s.server.url, 'POST', `/api/rooms/${openRoom}/join`, {}, bob.accessToken)).status).toBe(204);
    await b.subscribeConfirmed(topicOf(openRoom));
    await b.sendConfirmed(action(openRoom, 'send'), { text: 'hello all' });
    await a.until(() => eventsOf(a, openRoom, 'CHAT').length === 1);
    const enter = { type: 'ENTER', id: expect.any(String), roomId: openRoom, seq: 1, sender: ref(bob), text: `${bob.username} joined`, createdAt: expect.any(String) };
    expect(eventsOf(a, openRoom, 'ENTER', 'CHAT')).toEqual([
      enter,
      { type: 'CHAT', id: expect.any(String), roomId: openRoom, seq: 2, sender: ref(bob), text: 'hello all', createdAt: expect.any(String) },
    ]);
    const history = await api<Event[]>(s.server.url, 'GET', `/api/rooms/${openRoom}/messages`, undefined, bob.accessToken);
    expect(history.body.map((e) => [e.type, e.seq])).toEqual([
      ['ENTER', 1],
      ['CHAT', 2],
    ]);

    const refused = await api(s.server.url, 'POST', `/api/rooms/${groupRoom}/join`, {}, bob.accessToken);
    expect(refused).toEqual({ status: 403, body: { code: 'FORBIDDEN', message: 'only open rooms can be joined' } });
  });

  it('tells each invited member INVITED on /user/queue/notifications, once, and nobody else', async () => {
    const [alice, bob, mallory] = users();
    const [a, b, m] = await Promise.all([s.connect(alice), s.connect(bob), s.connect(mallory)]);
    for (const c of [a, b, m]) await c.subscribeConfirmed('/user/queue/notifications');
    const first = await s.room(alice, 'group', [bob]);
    const second = await s.room(bob, 'group', [alice, mallory]);
    const third = await s.room(mallory, 'group', [bob]);
    // Each user's notifications arrive in order: once the last one expected is there, a stray earlier one would be too.
    await b.until(() => b.events('/user/queue/notifications').some((e) => e.roomId === third));
    await a.until(() => a.events('/user/queue/notifications').some((e) => e.roomId === second));
    await m.until(() => m.events('/user/queue/notifications').some((e) => e.roomId === second));
    expect(b.events('/user/queue/notifications')).toEqual([
      { type: 'INVITED', roomId: first },
      { type: 'INVITED', roomId: third },
    ]);
    expect(a.events('/user/queue/notifications')).toEqual([{ type: 'INVITED', roomId: second }]);
    expect(m.events('/user/queue/notifications')).toEqual([{ type: 'INVITED', roomId: second }]);
  });

  it('replaces whatever origin a relay client claims (sender-session, sender-seq, seq) with its own', async () => {
    const [alice, bob] = users();
    const a = await s.connect(alice);
    const b = await s.connect(bob);
    const topic = `/topic/spoof-${randomBytes(4).toString('hex')}`;
    await b.subscribeConfirmed(topic);
    const forged = { 'sender-session': b.connectedHeaders.session!, 'sender-seq': '999', seq: '7' };
    await a.sendConfirmed(topic, 'first', forged);
    await a.sendConfirmed(topic, 'second', forged);
    await b.until(() => b.messages(topic).length === 2);
    expect(b.messages(topic).map((m) => [m.body, m.headers['sender-session'], m.headers['sender-seq'], m.headers.seq])).toEqual([
      ['first', a.connectedHeaders.session, '1', undefined],
      ['second', a.connectedHeaders.session, '2', undefined],
    ]);
  });
});

describe.each(VARIANTS)('sessions under tight limits (short token TTL and grace, low rate limit) on $name', (variant) => {
  const secret = randomBytes(32).toString('hex');
  const GRACE_S = 1;
  const RATE = 10;
  const s = suite(
    variant,
    () => ({ JWT_SECRET: secret, ACCESS_TOKEN_TTL_S: '2', TOKEN_GRACE_S: String(GRACE_S), RATE_LIMIT_PER_S: String(RATE) }),
    'carol',
    'dave',
  );
  /** Tokens the gateway accepts but that outlive the tests, for whatever must not expire meanwhile (signup's last 2 s). */
  const longLived = new TokenService(secret, 3600, 3600);
  const lasting = async (u: TestUser): Promise<TestUser> => ({ ...u, accessToken: (await longLived.issuePair(ref(u))).accessToken });
  const users = () => Promise.all(s.users.map(lasting)) as Promise<[TestUser, TestUser]>;
  const freshToken = async (u: TestUser) =>
    (await api<{ accessToken: string }>(s.server.url, 'POST', '/api/auth/refresh', { refreshToken: u.refreshToken })).body.accessToken;
  /** ERROR frames, and whether the socket closed. */
  const watchEnd = (c: TestClient) => {
    const end = { errors: [] as IFrame[], closed: false };
    c.client.onStompError = (f) => void end.errors.push(f);
    c.client.onWebSocketClose = () => void (end.closed = true);
    return end;
  };

  it('tells a session its token expired on /user/queue/errors, then ends it with ERROR after the grace', async () => {
    const [carol] = await users();
    const c = await s.connect({ ...carol, accessToken: await freshToken(carol) });
    const end = watchEnd(c);
    await c.until(() => c.errors.length === 1);
    expect(c.errors).toEqual([{ code: 'TOKEN_EXPIRED', message: 'access token expired; send /app/auth.refresh' }]);
    expect(end).toEqual({ errors: [], closed: false });
    await waitUntil(() => end.closed);
    expect(end.errors.map((f) => [f.headers.message, f.body])).toEqual([['unauthorized', 'access token expired']]);
    expect(c.errors).toHaveLength(1);
  });

  it('accepts /app/auth.refresh with the user\'s new token, refuses another user\'s or a junk one with request codes, and goes on', async () => {
    const [carol, dave] = await users();
    const roomId = await s.room(carol, 'group', [dave]);
    const c = await s.connect({ ...carol, accessToken: await freshToken(carol) });
    const end = watchEnd(c);
    await c.subscribeConfirmed(topicOf(roomId));
    await c.until(() => c.errors.length === 1);
    expect(c.errors).toEqual([{ code: 'TOKEN_EXPIRED', message: 'access token expired; send /app/auth.refresh' }]);

    c.send('/app/auth.refresh', '', { Authorization: `Bearer ${dave.accessToken}`, 'client-request-code': 'not-mine' });
    c.send('/app/auth.refresh', '', { Authorization: 'Bearer junk', 'client-request-code': 'junk' });
    await c.sendConfirmed('/app/auth.refresh', '', { Authorization: `Bearer ${carol.accessToken}` });
    expect(c.errors.slice(1)).toEqual([
      { code: 'FORBIDDEN', message: 'token belongs to another user', clientRequestCode: 'not-mine' },
      { code: 'UNAUTHORIZED', message: 'invalid access token', clientRequestCode: 'junk' },
    ]);

    // That the refreshed session outlives the grace is timed in test/connections.test.ts, on fake timers.
    await c.sendConfirmed(action(roomId, 'send'), { text: 'still here' });
    await c.until(() => eventsOf(c, roomId, 'CHAT').length === 1);
    expect(eventsOf(c, roomId, 'CHAT').map((e) => e.text)).toEqual(['still here']);
    expect(end).toEqual({ errors: [], closed: false });
    expect(c.errors).toHaveLength(3);
  });

  it('answers frames over RATE_LIMIT_PER_S with RATE_LIMITED (with their request codes), and the session goes on', async () => {
    const [carol, dave] = await users();
    const roomId = await s.room(carol, 'group', [dave]);
    const [c, d] = await Promise.all([s.connect(carol), s.connect(dave)]);
    const end = watchEnd(c);
    await d.subscribeConfirmed(topicOf(roomId));
    // Every frame of the flood is either taken (its message stored and delivered) or refused with its own request
    // code; however the flood falls across rate windows (at most two), at most 2 x RATE are taken.
    const flood = 25;
    const audited = vi.spyOn(AuditLog.prototype, 'record');
    for (let i = 0; i < flood; i++) c.send(action(roomId, 'send'), { text: `f${i}` }, { 'client-request-code': `f${i}` });
    // The session goes on: a send retried (same client-msg-id) until a window has room is confirmed, and fences the flood.
    await vi.waitFor(() => c.sendConfirmed(action(roomId, 'send'), { text: 'after the flood' }, { 'client-msg-id': 'after' }), {
      timeout: 10_000,
      interval: 200,
    });
    await d.until(() => eventsOf(d, roomId, 'CHAT').some((e) => e.text === 'after the flood'));
    const taken = eventsOf(d, roomId, 'CHAT').map((e) => e.text as string).filter((t) => t !== 'after the flood');
    const refused = c.errors.filter((e) => e.clientRequestCode?.startsWith('f'));
    expect(refused.every((e) => e.code === 'RATE_LIMITED' && e.message === `more than ${RATE} frames per second`)).toBe(true);
    const refusedCodes = refused.map((e) => e.clientRequestCode!);
    expect([...taken, ...refusedCodes].sort()).toEqual(Array.from({ length: flood }, (_, i) => `f${i}`).sort());
    expect(refused.length).toBeGreaterThanOrEqual(flood - 2 * RATE);
    // One security log line per refused frame, not one where it is refused and another where it is reported.
    const rateLines = audited.mock.calls.filter(([event]) => event === 'rate_limited').length;
    audited.mockRestore();
    expect(rateLines).toBe(c.errors.filter((e) => e.code === 'RATE_LIMITED').length);
    // What was taken arrives in the order it was sent.
    expect(taken).toEqual([...taken].sort((x, y) => Number(x.slice(1)) - Number(y.slice(1))));
    expect(end).toEqual({ errors: [], closed: false });
  });
});
