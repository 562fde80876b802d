import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { AuditLog } from '../src/audit.ts';
import { createLogger } from '../src/logger.ts';
import { Metrics } from '../src/metrics.ts';
import { SERVER_COMMANDS, type Frame } from '../src/stomp/frame.ts';
import { FrameParser } from '../src/stomp/parser.ts';
import { StompSession, type SessionHandler, type SessionLimits } from '../src/stomp/session.ts';
import { UserSessions } from '../src/stomp/user-sessions.ts';
import { ManualClock } from './support/manual-clock.ts';

const silent = createLogger('silent');
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** A socket the test drives by hand; like a real one, what is sent stays buffered until the test drains it. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  isPaused = false;
  readonly sent: Array<{ data: string | Buffer; binary: boolean }> = [];
  pause(): void {
    this.isPaused = true;
  }
  resume(): void {
    this.isPaused = false;
  }
  send(data: string | Buffer, options: { binary?: boolean } = {}): void {
    this.sent.push({ data, binary: options.binary ?? false });
  }
  close(): void {
    this.readyState = 3;
  }
  /** Every frame sent, heart-beats left out. */
  frames(): Frame[] {
    const parser = new FrameParser({ maxFrameBytes: 1 << 20, maxHeaders: 64, maxHeaderBytes: 8192 }, SERVER_COMMANDS);
    return this.sent.flatMap((s) => parser.push(s.data));
  }
  errors(): string[] {
    return this.frames()
      .filter((f) => f.command === 'ERROR')
      .map((f) => f.headers.message!);
  }
  heartBeats(): number {
    return this.sent.filter((s) => String(s.data) === '\n').length;
  }
}

const LIMITS: SessionLimits = {
  maxFrameBytes: 65536,
  maxRelayFrameBytes: 1 << 20,
  maxHeaders: 64,
  maxHeaderBytes: 8192,
  maxSubscriptions: 8,
  maxPendingBytes: 1 << 20,
  maxQueuedFrames: 16,
  maxQueuedBytes: 1 << 20,
  maxTransactions: 4,
  maxTransactionFrames: 16,
  maxTransactionBytes: 1 << 16,
  connectTimeoutMs: 5000,
  maxConnectionsPerUser: 8,
  heartbeatMs: 0,
  heartbeatMinMs: 1000,
  heartbeatMaxMs: 60_000,
  ratePerSecond: 100,
};

/** A session on a FakeSocket and a ManualClock, with a handler that records what reaches it. */
function start(limits: Partial<SessionLimits> = {}, handler: Partial<SessionHandler> = {}, users = new UserSessions()) {
  const socket = new FakeSocket();
  const clock = new ManualClock();
  const metrics = new Metrics('test');
  const calls: string[] = [];
  const sent: Frame[] = [];
  const reported: Array<{ code: string; receipt?: string; requestCode?: string }> = [];
  const full: SessionHandler = {
    connect: async () => {
      calls.push('connect');
      return {};
    },
    subscribe: async () => {},
    unsubscribe: async () => {},
    send: async (_s, frame) => void sent.push(frame),
    ack: async () => {},
    closed: () => void calls.push('closed'),
    reportError: (_s, error, frame) =>
      void reported.push({ code: error.code, receipt: frame.headers.receipt, requestCode: frame.headers['client-request-code'] }),
    ...handler,
  };
  const session = new StompSession(socket as unknown as WebSocket, full, { ...LIMITS, ...limits }, {
    log: silent,
    metrics,
    audit: new AuditLog(silent, { linesPerSecond: 1000 }),
    clock,
    users,
  });
  const push = (data: string | Buffer) => socket.emit('message', typeof data === 'string' ? Buffer.from(data) : data);
  return { socket, clock, metrics, session, calls, sent, reported, push };
}

/** A counter's value for the given labels (0 when never counted). */
async function counted(metrics: Metrics, counter: 'refusals' | 'sessionsEnded', labels: Record<string, string>): Promise<number> {
  const { values } = await metrics[counter].get();
  return values.find((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))?.value ?? 0;
}

const CONNECT = 'CONNECT\naccept-version:1.2\nhost:x\n\n\0';

describe('a session that closes while CONNECT is being authenticated', () => {
  it('is reported closed once the handler accepts it, so its presence is undone', async () => {
    let accept!: (headers: Record<string, string>) => void;
    const { socket, calls, push } = start({}, {
      connect: () => {
        calls.push('connect');
        return new Promise((resolve) => (accept = resolve));
      },
    });
    push(CONNECT);
    await settle();
    expect(calls).toEqual(['connect']);
    socket.readyState = 3;
    socket.emit('close');
    accept({});
    await settle();
    expect(calls).toEqual(['connect', 'closed']);
    expect(socket.sent).toEqual([]);
  });
});

describe('CONNECT', () => {
  for (const value of ['-1,0', 'abc', '10,', '1,2,3', '1000']) {
    it(`refuses heart-beat:${value} before the handler accepts anything`, async () => {
      const { socket, metrics, calls, push } = start({ heartbeatMs: 10_000 });
      push(`CONNECT\naccept-version:1.2\nhost:x\nheart-beat:${value}\n\n\0`);
      await settle();
      expect(calls).toEqual([]);
      expect(socket.errors()).toEqual(['invalid heart-beat header']);
      expect(socket.readyState).toBe(3);
      expect(await counted(metrics, 'refusals', { limit: 'heartbeat' })).toBe(1);
    });
  }

  it('ends a socket that has not had CONNECT accepted within CONNECT_TIMEOUT_MS', async () => {
    const { socket, clock, metrics, calls } = start({ connectTimeoutMs: 5000 });
    clock.advance(4999);
    expect(socket.sent).toEqual([]);
    clock.advance(1);
    expect(socket.errors()).toEqual(['CONNECT timeout']);
    expect(socket.readyState).toBe(3);
    expect(calls).toEqual([]);
    expect(await counted(metrics, 'refusals', { limit: 'connect_timeout' })).toBe(1);
    expect(await counted(metrics, 'sessionsEnded', { reason: 'connect_timeout' })).toBe(1);
  });

  it('undoes a CONNECT the handler accepts after the deadline has ended the session', async () => {
    let accept!: (headers: Record<string, string>) => void;
    const { socket, clock, calls, push } = start({ connectTimeoutMs: 5000 }, {
      connect: () => {
        calls.push('connect');
        return new Promise((resolve) => (accept = resolve));
      },
    });
    push(CONNECT);
    await settle();
    clock.advance(5000);
    expect(socket.errors()).toEqual(['CONNECT timeout']);
    accept({});
    await settle();
    expect(calls).toEqual(['connect', 'closed']);
    expect(socket.frames().map((f) => f.command)).toEqual(['ERROR']);
  });

  it('keeps a session whose CONNECT was accepted in time', async () => {
    const { socket, clock, push } = start({ connectTimeoutMs: 5000 });
    push(CONNECT);
    await settle();
    clock.advance(60_000);
    expect(socket.frames().map((f) => f.command)).toEqual(['CONNECTED']);
    expect(socket.readyState).toBe(1);
  });
});

describe('sessions per user', () => {
  it('refuses a CONNECT past MAX_CONNECTIONS_PER_USER once the handler names the user, and frees the slot when a session ends', async () => {
    const users = new UserSessions();
    const identifying: Partial<SessionHandler> = {
      connect: async (session) => {
        session.identify('u1', 'alice');
        return {};
      },
    };
    const connectOne = async () => {
      const s = start({ maxConnectionsPerUser: 2 }, identifying, users);
      s.push(CONNECT);
      await settle();
      return s;
    };
    const [first, second, third] = [await connectOne(), await connectOne(), await connectOne()];
    expect([first, second].map((s) => s.socket.frames().map((f) => f.command))).toEqual([['CONNECTED'], ['CONNECTED']]);
    expect(third.socket.errors()).toEqual(['too many sessions for one user (max 2)']);
    expect(third.socket.readyState).toBe(3);
    expect(third.calls).toEqual([]); // never connected: nothing to undo
    expect(await counted(third.metrics, 'refusals', { limit: 'connections_per_user' })).toBe(1);
    expect(users.count('u1')).toBe(2);
    first.socket.emit('close');
    expect(users.count('u1')).toBe(1);
    const fourth = await connectOne();
    expect(fourth.socket.frames().map((f) => f.command)).toEqual(['CONNECTED']);
  });
});

describe('heart-beats', () => {
  it('honours a client asking for one every second: offered down to HEARTBEAT_MIN_MS, each its own message', async () => {
    const { socket, clock, push } = start({ heartbeatMs: 10_000, heartbeatMinMs: 1000 });
    push('CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,1000\n\n\0');
    await settle();
    expect(socket.frames()[0]!.headers['heart-beat']).toBe('1000,10000');
    for (let second = 1; second <= 10; second++) {
      const before = socket.heartBeats();
      clock.advance(1000);
      expect(socket.heartBeats()).toBeGreaterThan(before);
    }
    expect(socket.sent.slice(1).every((s) => s.data === '\n')).toBe(true);
    expect(socket.readyState).toBe(1); // the client sends none (0): nothing is expected of it
  });

  it('closes a silent peer within twice the agreed interval, and keeps one that beats', async () => {
    const silentPeer = start({ heartbeatMs: 1000 });
    silentPeer.push('CONNECT\naccept-version:1.2\nhost:x\nheart-beat:2000,0\n\n\0');
    await settle();
    expect(silentPeer.socket.frames()[0]!.headers['heart-beat']).toBe('1000,1000');
    silentPeer.clock.advance(2000);
    expect(silentPeer.socket.readyState).toBe(1);
    silentPeer.clock.advance(2000);
    expect(silentPeer.socket.errors()).toEqual(['heart-beat timeout']);
    expect(silentPeer.socket.readyState).toBe(3);
    expect(silentPeer.calls).toEqual(['connect', 'closed']);
    expect(await counted(silentPeer.metrics, 'sessionsEnded', { reason: 'heartbeat_timeout' })).toBe(1);

    const beating = start({ heartbeatMs: 1000 });
    beating.push('CONNECT\naccept-version:1.2\nhost:x\nheart-beat:2000,0\n\n\0');
    await settle();
    for (let i = 0; i < 20; i++) {
      beating.clock.advance(2000);
      beating.push('\n');
    }
    expect(beating.socket.errors()).toEqual([]);
  });

  it('clamps an interval beyond HEARTBEAT_MAX_MS instead of arming an overflowing timer', async () => {
    const { socket, clock, push } = start({ heartbeatMs: 10_000, heartbeatMaxMs: 60_000 });
    push('CONNECT\naccept-version:1.2\nhost:x\nheart-beat:99999999999,0\n\n\0');
    await settle();
    clock.advance(60_000);
    expect(socket.readyState).toBe(1);
    clock.advance(60_000);
    expect(socket.errors()).toEqual(['heart-beat timeout']);
  });
});

const send = (tx: string, receipt: string, body = 'x') =>
  `SEND\ndestination:/queue/q\ntransaction:${tx}\nreceipt:${receipt}\ncontent-length:${Buffer.byteLength(body)}\n\n${body}\0`;

describe('transactions', () => {
  it('refuses a BEGIN beyond MAX_TRANSACTIONS with BAD_REQUEST, and the open ones still commit', async () => {
    const { socket, metrics, sent, reported, push } = start({ maxTransactions: 2 });
    push(CONNECT);
    push('BEGIN\ntransaction:t1\n\n\0BEGIN\ntransaction:t2\n\n\0BEGIN\ntransaction:t3\nreceipt:b3\n\n\0');
    push(send('t1', 's1') + 'COMMIT\ntransaction:t1\nreceipt:c1\n\n\0');
    await settle();
    expect(reported).toEqual([{ code: 'BAD_REQUEST', receipt: 'b3', requestCode: undefined }]);
    expect(sent).toHaveLength(1);
    expect(socket.frames().map((f) => f.headers['receipt-id']).filter(Boolean)).toEqual(['s1', 'c1']);
    expect(await counted(metrics, 'refusals', { limit: 'transactions' })).toBe(1);
  });

  it('aborts a transaction that would exceed MAX_TRANSACTION_FRAMES and answers TOO_LARGE', async () => {
    const { metrics, sent, reported, push } = start({ maxTransactionFrames: 3 });
    push(CONNECT);
    push('BEGIN\ntransaction:t\n\n\0' + [1, 2, 3, 4].map((n) => send('t', `s${n}`)).join(''));
    push('COMMIT\ntransaction:t\nreceipt:c\n\n\0');
    await settle();
    expect(reported.map((r) => [r.code, r.receipt])).toEqual([
      ['TOO_LARGE', 's4'],
      ['BAD_REQUEST', 'c'],
    ]);
    expect(sent).toEqual([]);
    expect(await counted(metrics, 'refusals', { limit: 'transaction_frames' })).toBe(1);
  });

  it('aborts a transaction that would exceed MAX_TRANSACTION_BYTES and answers TOO_LARGE', async () => {
    const { metrics, sent, reported, push } = start({ maxTransactionBytes: 1000 });
    push(CONNECT);
    push('BEGIN\ntransaction:t\n\n\0' + [1, 2, 3].map((n) => send('t', `s${n}`, 'b'.repeat(400))).join(''));
    push('COMMIT\ntransaction:t\nreceipt:c\n\n\0');
    await settle();
    expect(reported.map((r) => [r.code, r.receipt])).toEqual([
      ['TOO_LARGE', 's3'],
      ['BAD_REQUEST', 'c'],
    ]);
    expect(sent).toEqual([]);
    expect(await counted(metrics, 'refusals', { limit: 'transaction_bytes' })).toBe(1);
  });

  it('keeps buffered and queued frames in memory of their own, not in the WebSocket message that carried them', async () => {
    let release!: () => void;
    const { sent, push } = start({}, {
      send: (_s, frame) => {
        sent.push(frame);
        return frame.body.toString() === 'first' ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve();
      },
    });
    push(CONNECT);
    await settle();
    // Heart-beat EOLs make the message big enough for a Buffer of its own, as a real WebSocket message has.
    const message = Buffer.from(
      '\n'.repeat(8192) +
        'SEND\ndestination:/queue/q\n\nfirst\0SEND\ndestination:/queue/q\n\nqueued\0' +
        'BEGIN\ntransaction:t\n\n\0' +
        send('t', 'r', 'in a transaction') +
        'COMMIT\ntransaction:t\n\n\0',
    );
    push(message);
    await settle();
    release();
    await settle();
    expect(sent.map((f) => f.body.toString())).toEqual(['first', 'queued', 'in a transaction']);
    expect(sent[1]!.body.buffer).not.toBe(message.buffer);
    expect(sent[2]!.body.buffer).not.toBe(message.buffer);
  });
});

describe('rate limit', () => {
  it('answers every frame over the rate with its own RATE_LIMITED error, also within one WebSocket message', async () => {
    const { metrics, sent, reported, push } = start({ ratePerSecond: 2 });
    push(CONNECT);
    await settle();
    push([1, 2, 3, 4, 5].map((n) => `SEND\ndestination:/queue/q\nreceipt:r${n}\nclient-request-code:c${n}\n\n${n}\0`).join(''));
    await settle();
    expect(sent.map((f) => f.body.toString())).toEqual(['1', '2']);
    expect(reported).toEqual([3, 4, 5].map((n) => ({ code: 'RATE_LIMITED', receipt: `r${n}`, requestCode: `c${n}` })));
    expect(await counted(metrics, 'refusals', { limit: 'rate' })).toBe(3);
  });
});

describe('slow consumer', () => {
  it('counts every outbound write toward MAX_PENDING_BYTES, receipts included', async () => {
    const { socket, metrics, push } = start({ maxPendingBytes: 1000 });
    // A client that never reads: what the server writes stays buffered.
    socket.send = function (this: FakeSocket, data: string | Buffer, options: { binary?: boolean } = {}) {
      this.sent.push({ data, binary: options.binary ?? false });
      this.bufferedAmount += data.length;
    };
    push(CONNECT);
    await settle();
    push(`SEND\ndestination:/queue/q\nreceipt:${'r'.repeat(2000)}\n\nx\0`);
    await settle();
    expect(socket.errors()).toEqual(['slow consumer: more than 1000 bytes pending']);
    expect(socket.readyState).toBe(3);
    expect(await counted(metrics, 'refusals', { limit: 'pending_bytes' })).toBe(1);
    expect(await counted(metrics, 'sessionsEnded', { reason: 'pending_bytes' })).toBe(1);
  });
});

describe('back-pressure', () => {
  it('stops reading a client whose frames queue up, and reads it again once they drain, handling every frame in order', async () => {
    const handled: string[] = [];
    const release: Array<() => void> = [];
    const { socket, push } = start({ maxQueuedFrames: 16 /* reading pauses at 4 queued */, ratePerSecond: 1000 }, {
      send: (_s, frame) => {
        handled.push(frame.body.toString());
        return new Promise<void>((resolve) => release.push(resolve));
      },
    });
    push(CONNECT);
    await settle();
    const sendOne = (n: number) => push(`SEND\ndestination:/queue/q\n\n${n}\0`);
    for (let n = 1; n <= 3; n++) sendOne(n);
    expect(socket.isPaused).toBe(false);
    sendOne(4);
    expect(socket.isPaused).toBe(true);
    // A few frames already read still arrive while paused (ws says so); they are queued, not refused.
    for (let n = 5; n <= 6; n++) sendOne(n);
    for (let i = 0; i < 4; i++) {
      await settle();
      release.shift()!();
    }
    await settle();
    expect(socket.isPaused).toBe(false); // 2 left queued: at or below half the pause mark
    while (release.length > 0 || handled.length < 6) {
      await settle();
      release.shift()?.();
    }
    expect(handled).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(socket.errors()).toEqual([]);
  });

  it('also stops reading once the queued frames hold maxQueuedBytes, so large frames cannot pile up', async () => {
    const release: Array<() => void> = [];
    const { socket, push } = start({ maxQueuedFrames: 400, maxQueuedBytes: 3000 }, {
      send: () => new Promise<void>((resolve) => release.push(resolve)),
    });
    push(CONNECT);
    await settle();
    const sendOne = () => push(`SEND\ndestination:/queue/q\n\n${'x'.repeat(1000)}\0`);
    sendOne();
    sendOne();
    expect(socket.isPaused).toBe(false);
    sendOne(); // three frames of 1000 body bytes and their headers: over 3000
    expect(socket.isPaused).toBe(true);
    while (release.length > 0 || socket.isPaused) {
      await settle();
      release.shift()?.();
    }
    expect(socket.isPaused).toBe(false);
  });
});

describe('subscriptions', () => {
  it('refuses one over MAX_SUBSCRIPTIONS with BAD_REQUEST and its request code, counted, and the session goes on', async () => {
    const { socket, metrics, reported, push } = start({ maxSubscriptions: 2 });
    push(CONNECT);
    await settle();
    for (const id of ['a', 'b', 'c']) push(`SUBSCRIBE\nid:${id}\ndestination:/topic/t${id}\nclient-request-code:${id}\n\n\0`);
    await settle();
    expect(reported).toEqual([{ code: 'BAD_REQUEST', receipt: undefined, requestCode: 'c' }]);
    expect(await counted(metrics, 'refusals', { limit: 'subscriptions' })).toBe(1);
    expect(socket.readyState).toBe(1);
  });
});
