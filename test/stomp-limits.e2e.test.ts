import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { SERVER_COMMANDS, type Frame } from '../src/stomp/frame.ts';
import { FrameParser } from '../src/stomp/parser.ts';
import { connectAs, newUser, startTestGateway, type TestServer } from './support/gateway.ts';

/** A raw WebSocket to the gateway that records every message it receives, as bytes and whether it was binary. */
class RawSocket {
  readonly received: Array<{ data: Buffer; isBinary: boolean }> = [];
  closeCode: number | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => this.received.push({ data, isBinary }));
    ws.on('close', (code) => (this.closeCode = code));
    ws.on('error', () => {}); // a socket the server cuts may also error; the close code is what the tests read
  }

  static open(wsUrl: string): Promise<RawSocket> {
    const ws = new WebSocket(wsUrl, ['v12.stomp']);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new RawSocket(ws)));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
  }

  frames(): Frame[] {
    const parser = new FrameParser({ maxFrameBytes: 4 << 20, maxHeaders: 64, maxHeaderBytes: 8192 }, SERVER_COMMANDS);
    return this.received.flatMap((m) => parser.push(m.data));
  }

  closed(): Promise<number> {
    return vi.waitFor(() => {
      if (this.closeCode === undefined) throw new Error('still open');
      return this.closeCode;
    }, 10_000);
  }
}

/** The status of an upgrade the gateway refuses; fails when it is accepted. */
function refusedUpgrade(wsUrl: string): Promise<number> {
  const ws = new WebSocket(wsUrl, ['v12.stomp']);
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (req, res) => {
      resolve(res.statusCode!);
      req.destroy();
    });
    ws.once('open', () => reject(new Error('upgrade accepted')));
    ws.on('error', () => {});
  });
}

async function refusals(server: TestServer, limit: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('chat_limit_refusals_total{') && l.includes(`limit="${limit}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** One gateway for all: small connection caps, the default frame limits. Each test starts with no session open. */
describe('a gateway with MAX_CONNECTIONS=3, MAX_CONNECTIONS_PER_USER=2 and the default frame limits', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestGateway({ MAX_CONNECTIONS: '3', MAX_CONNECTIONS_PER_USER: '2' });
  });
  afterAll(() => server?.stop());
  beforeEach(async () => {
    await vi.waitFor(() => expect(server.gateway.stomp.sessions.size).toBe(0));
  });

  it('refuses the next upgrade with 503, counted, still serves /healthz, and takes a client again once one leaves', async () => {
    const open = await Promise.all([1, 2, 3].map(() => RawSocket.open(server.wsUrl)));
    expect(await refusedUpgrade(server.wsUrl)).toBe(503);
    expect(await refusals(server, 'connections')).toBe(1);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    open[0]!.ws.close();
    await vi.waitFor(() => expect(server.gateway.stomp.sessions.size).toBe(2));
    const again = await RawSocket.open(server.wsUrl);
    for (const s of [...open, again]) s.ws.close();
  });

  it('refuses a CONNECT past MAX_CONNECTIONS_PER_USER with ERROR, counted, and takes it again once a session of the user ends', async () => {
    const user = await newUser(server.url, 'peruser');
    const [a, b] = [await connectAs(server, user), await connectAs(server, user)];
    await expect(connectAs(server, user)).rejects.toThrow('STOMP ERROR: too many sessions for one user (max 2)');
    expect(await refusals(server, 'connections_per_user')).toBe(1);
    await a.disconnect();
    await vi.waitFor(() => expect(server.gateway.stomp.users.count(user.id)).toBe(1));
    const c = await connectAs(server, user);
    await Promise.all([b.disconnect(), c.disconnect()]);
  });

  it('refuses a CONNECT whose heart-beat does not parse before anything is set up: no session is left behind', async () => {
    const user = await newUser(server.url, 'heartbeat');
    for (const value of ['-1,0', 'abc']) {
      const s = await RawSocket.open(server.wsUrl);
      s.ws.send(`CONNECT\naccept-version:1.2\nhost:x\nheart-beat:${value}\nAuthorization:Bearer ${user.accessToken}\n\n\0`);
      expect(await s.closed()).toBe(1002);
      expect(s.frames().map((f) => [f.command, f.headers.message])).toEqual([['ERROR', 'invalid heart-beat header']]);
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics.split('\n').find((l) => l.startsWith('chat_sessions{'))).toMatch(/ 0$/);
  });

  it('answers a frame over its limit with an ERROR naming the limit: MAX_FRAME_BYTES for /app, MAX_RELAY_FRAME_BYTES for /topic', async () => {
    const cases = [
      { destination: '/app/rooms.r.send', size: 300 * 1024, message: 'frame exceeds 65536 bytes', limit: 'frame_bytes' },
      { destination: '/topic/big', size: 1536 * 1024, message: 'frame exceeds 1048576 bytes', limit: 'frame_bytes' },
    ];
    for (const c of cases) {
      const s = await RawSocket.open(server.wsUrl);
      s.ws.send(`SEND\ndestination:${c.destination}\n\n${'x'.repeat(c.size)}\0`);
      expect(await s.closed()).toBe(1002);
      expect(s.frames().map((f) => [f.command, f.headers.message])).toEqual([['ERROR', c.message]]);
    }
    expect(await refusals(server, 'frame_bytes')).toBe(2);
  });

  it('closes a WebSocket message over MAX_WS_MESSAGE_BYTES with 1009, before reading it, counted', async () => {
    const s = await RawSocket.open(server.wsUrl);
    s.ws.send(`SEND\ndestination:/topic/big\n\n${'x'.repeat(3 * 1024 * 1024)}\0`);
    expect(await s.closed()).toBe(1009);
    expect(s.frames()).toEqual([]);
    expect(await refusals(server, 'ws_message_bytes')).toBe(1);
  });

  it('sends a MESSAGE whose body is not UTF-8 as a binary WebSocket message, byte for byte, and text as text', async () => {
    const user = await newUser(server.url, 'binary');
    const sender = await connectAs(server, user);
    const receiver = await RawSocket.open(server.wsUrl);
    const topic = `/topic/binary-${process.pid}`;
    receiver.ws.send(`CONNECT\naccept-version:1.2\nhost:x\nAuthorization:Bearer ${user.accessToken}\n\n\0SUBSCRIBE\nid:s\ndestination:${topic}\nreceipt:sub\n\n\0`);
    await vi.waitFor(() => expect(receiver.frames().map((f) => f.command)).toEqual(['CONNECTED', 'RECEIPT']));
    const binary = new Uint8Array([0xff, 0xfe, 0x00, 0x41, 0xc3, 0x28, 0x80]);
    sender.client.publish({ destination: topic, binaryBody: binary, headers: { 'content-type': 'application/octet-stream' } });
    sender.send(topic, 'héllo ✓');
    await vi.waitFor(() => expect(receiver.received).toHaveLength(4));
    const [binaryMessage, textMessage] = receiver.received.slice(2);
    expect([binaryMessage!.isBinary, textMessage!.isBinary]).toEqual([true, false]);
    const [, , first, second] = receiver.frames();
    expect(first!.body.toString('hex')).toBe(Buffer.from(binary).toString('hex'));
    expect(second!.body.toString()).toBe('héllo ✓');
    receiver.ws.close();
    await sender.disconnect();
  });
});
