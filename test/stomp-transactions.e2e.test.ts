import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, connectAs, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import type { TestClient } from './support/stomp-client.ts';

/**
 * STOMP transactions as a client sees them, through a real gateway: room SENDs held until COMMIT, then stored,
 * delivered and answered in order; nothing of an aborted one; an unknown or repeated transaction id refused by
 * name; and a frame that fails at COMMIT answered on its own, without taking the others down with it.
 * Each test ends with a fence: a send outside any transaction, answered only after every frame before it.
 */
describe('STOMP transactions end to end', () => {
  let server: TestServer;
  let alice: TestUser;
  let carol: TestUser;
  /** Alice's room with Bob. */
  let roomId: string;
  /** Carol's room, which Alice is not in. */
  let otherRoomId: string;
  const clients: TestClient[] = [];

  const send = (roomId: string) => `/app/rooms.${roomId}.send`;
  const topic = () => `/topic/rooms.${roomId}`;

  beforeAll(async () => {
    server = await startTestGateway();
    const bob = await newUser(server.url, 'txbob');
    [alice, carol] = await Promise.all([newUser(server.url, 'txalice'), newUser(server.url, 'txcarol')]);
    const room = await api<{ id: string }>(server.url, 'POST', '/api/rooms', { kind: 'group', name: 'tx', members: [bob.username] }, alice.accessToken);
    const other = await api<{ id: string }>(server.url, 'POST', '/api/rooms', { kind: 'group', name: 'not alice', members: [bob.username] }, carol.accessToken);
    expect([room.status, other.status]).toEqual([201, 201]);
    roomId = room.body.id;
    otherRoomId = other.body.id;
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await server?.stop();
  });

  /** Alice, listening for error events and on her room. */
  async function connect(): Promise<TestClient> {
    const c = await connectAs(server, alice);
    clients.push(c);
    await c.watchErrors();
    await c.subscribeConfirmed(topic());
    return c;
  }

  /** The receipt ids that arrive, in arrival order. */
  function watchReceipts(c: TestClient, ids: string[]): string[] {
    const arrived: string[] = [];
    for (const id of ids) c.client.watchForReceipt(id, () => arrived.push(id));
    return arrived;
  }

  async function lastSeq(id: string, user: TestUser): Promise<number> {
    const rooms = await api<Array<{ id: string; lastSeq: number }>>(server.url, 'GET', '/api/rooms', undefined, user.accessToken);
    return rooms.body.find((r) => r.id === id)!.lastSeq;
  }

  /** The stored CHAT events after `after`, as [seq, text]. */
  async function stored(id: string, user: TestUser, after: number): Promise<Array<[number, string]>> {
    const history = await api<Array<{ seq: number; text: string }>>(server.url, 'GET', `/api/rooms/${id}/messages?after=${after}`, undefined, user.accessToken);
    return history.body.map((e) => [e.seq, e.text]);
  }

  /** The CHAT events Alice's subscription delivered, as [seq, text]. */
  const delivered = (c: TestClient) => c.logged(topic()).map((e) => [e.seq, e.text]);

  it('holds room SENDs until COMMIT, then stores and delivers them in order and only then answers their receipts', async () => {
    const c = await connect();
    const before = await lastSeq(roomId, alice);
    const receipts = watchReceipts(c, ['t-1', 't-2', 't-3']);
    c.client.begin('t');
    for (const n of [1, 2, 3]) c.client.publish({ destination: send(roomId), body: JSON.stringify({ text: `t${n}` }), headers: { transaction: 't', receipt: `t-${n}` } });
    // Outside the transaction: it takes effect at once, before the held ones.
    await c.sendConfirmed(send(roomId), { text: 'outside' });
    await c.until(() => delivered(c).length === 1);
    expect(receipts).toEqual([]);
    expect(await stored(roomId, alice, before)).toEqual([[before + 1, 'outside']]);

    c.client.commit('t');
    await c.sendConfirmed(send(roomId), { text: 'after' });
    // Each held SEND is answered once it is stored, in order, and all before the fence sent after COMMIT.
    expect(receipts).toEqual(['t-1', 't-2', 't-3']);
    const expected: Array<[number, string]> = ['outside', 't1', 't2', 't3', 'after'].map((text, i) => [before + 1 + i, text]);
    expect(await stored(roomId, alice, before)).toEqual(expected);
    await c.until(() => delivered(c).length === expected.length);
    expect(delivered(c)).toEqual(expected);
    expect(c.errors).toEqual([]);
  });

  it('stores, delivers and answers nothing of an aborted transaction', async () => {
    const c = await connect();
    const before = await lastSeq(roomId, alice);
    const receipts = watchReceipts(c, ['a-1', 'a-2']);
    c.client.begin('a');
    for (const n of [1, 2]) c.client.publish({ destination: send(roomId), body: JSON.stringify({ text: `a${n}` }), headers: { transaction: 'a', receipt: `a-${n}` } });
    c.client.abort('a');
    await c.sendConfirmed(send(roomId), { text: 'after' });
    expect(receipts).toEqual([]);
    expect(await stored(roomId, alice, before)).toEqual([[before + 1, 'after']]);
    await c.until(() => delivered(c).length === 1);
    expect(delivered(c)).toEqual([[before + 1, 'after']]);
    expect(c.errors).toEqual([]);
  });

  it('refuses SEND, COMMIT and ABORT naming an unknown transaction with BAD_REQUEST, and carries out none of them', async () => {
    const c = await connect();
    const before = await lastSeq(roomId, alice);
    const receipts = watchReceipts(c, ['ghost-send']);
    c.client.publish({
      destination: send(roomId),
      body: JSON.stringify({ text: 'ghost' }),
      headers: { transaction: 'ghost', receipt: 'ghost-send', 'client-request-code': 'ghost-send' },
    });
    c.client.commit('ghost');
    c.client.abort('ghost');
    // A transaction once aborted is unknown too.
    c.client.begin('gone');
    c.client.abort('gone');
    c.client.commit('gone');
    await c.sendConfirmed(send(roomId), { text: 'after' });
    expect(c.errors).toEqual([
      { code: 'BAD_REQUEST', message: 'no transaction ghost', clientRequestCode: 'ghost-send', receiptId: 'ghost-send' },
      { code: 'BAD_REQUEST', message: 'no transaction ghost' },
      { code: 'BAD_REQUEST', message: 'no transaction ghost' },
      { code: 'BAD_REQUEST', message: 'no transaction gone' },
    ]);
    expect(receipts).toEqual([]);
    expect(await stored(roomId, alice, before)).toEqual([[before + 1, 'after']]);
  });

  it('refuses a second BEGIN of an open transaction with BAD_REQUEST and leaves the open one as it was', async () => {
    const c = await connect();
    const before = await lastSeq(roomId, alice);
    c.client.begin('d');
    c.client.publish({ destination: send(roomId), body: JSON.stringify({ text: 'd1' }), headers: { transaction: 'd' } });
    c.client.begin('d');
    c.client.publish({ destination: send(roomId), body: JSON.stringify({ text: 'd2' }), headers: { transaction: 'd' } });
    // Still held: the second BEGIN neither committed nor dropped what the first one held.
    await c.sendConfirmed(send(roomId), { text: 'between' });
    expect(await stored(roomId, alice, before)).toEqual([[before + 1, 'between']]);
    c.client.commit('d');
    await c.sendConfirmed(send(roomId), { text: 'after' });
    expect(c.errors).toEqual([{ code: 'BAD_REQUEST', message: 'transaction d already begun' }]);
    expect(await stored(roomId, alice, before)).toEqual(['between', 'd1', 'd2', 'after'].map((text, i) => [before + 1 + i, text]));
  });

  it('answers a frame that fails at COMMIT with its own error event, and still carries out the frames before and after it', async () => {
    const c = await connect();
    const before = await lastSeq(roomId, alice);
    const otherBefore = await lastSeq(otherRoomId, carol);
    const receipts = watchReceipts(c, ['f-1', 'f-2', 'f-3']);
    c.client.begin('f');
    for (const [n, room] of [[1, roomId], [2, otherRoomId], [3, roomId]] as const) {
      c.client.publish({
        destination: send(room),
        body: JSON.stringify({ text: `f${n}` }),
        headers: { transaction: 'f', receipt: `f-${n}`, 'client-request-code': `f-${n}` },
      });
    }
    c.client.commit('f');
    await c.sendConfirmed(send(roomId), { text: 'after' });
    expect(c.errors).toEqual([{ code: 'FORBIDDEN', message: 'not a member of this room', clientRequestCode: 'f-2', receiptId: 'f-2' }]);
    expect(receipts).toEqual(['f-1', 'f-3']);
    expect(await stored(roomId, alice, before)).toEqual(['f1', 'f3', 'after'].map((text, i) => [before + 1 + i, text]));
    expect(await stored(otherRoomId, carol, otherBefore)).toEqual([]);
  });
});
