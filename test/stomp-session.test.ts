import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { createLogger } from '../src/logger.ts';
import type { Frame } from '../src/stomp/frame.ts';
import { StompSession, type SessionHandler, type SessionLimits } from '../src/stomp/session.ts';

const silent = createLogger('silent');
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** A socket the test drives by hand. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  isPaused = false;
  readonly sent: string[] = [];
  pause(): void {
    this.isPaused = true;
  }
  resume(): void {
    this.isPaused = false;
  }
  send(data: string): void {
    this.sent.push(data);
  }
  close(): void {
    this.readyState = 3;
  }
}

describe('a session that closes while CONNECT is being authenticated', () => {
  it('is reported closed once the handler accepts it, so its presence is undone', async () => {
    let accept!: (headers: Record<string, string>) => void;
    const events: string[] = [];
    const handler: SessionHandler = {
      connect: () => {
        events.push('connect');
        return new Promise((resolve) => (accept = resolve));
      },
      subscribe: async () => {},
      unsubscribe: async () => {},
      send: async () => {},
      ack: async () => {},
      closed: () => void events.push('closed'),
      reportError: (_s, _e, _f: Frame) => {},
    };
    const limits = {
      maxFrameBytes: 65536,
      maxHeaders: 64,
      maxHeaderBytes: 8192,
      maxSubscriptions: 8,
      maxPendingBytes: 1 << 20,
      maxQueuedFrames: 16,
      heartbeatMs: 0,
      ratePerSecond: 100,
    };
    const socket = new FakeSocket();
    new StompSession(socket as unknown as WebSocket, handler, limits, silent);
    socket.emit('message', Buffer.from('CONNECT\naccept-version:1.2\nhost:x\n\n\0'));
    await settle();
    expect(events).toEqual(['connect']);
    socket.readyState = 3;
    socket.emit('close');
    accept({});
    await settle();
    expect(events).toEqual(['connect', 'closed']);
    expect(socket.sent).toEqual([]);
  });
});

describe('back-pressure', () => {
  it('stops reading a client whose frames queue up, and reads it again once they drain, handling every frame in order', async () => {
    const handled: string[] = [];
    const release: Array<() => void> = [];
    const handler: SessionHandler = {
      connect: async () => ({}),
      subscribe: async () => {},
      unsubscribe: async () => {},
      send: (_s, frame) => {
        handled.push(frame.body.toString());
        return new Promise<void>((resolve) => release.push(resolve));
      },
      ack: async () => {},
      closed: () => {},
      reportError: () => {},
    };
    const limits: SessionLimits = {
      maxFrameBytes: 65536,
      maxHeaders: 64,
      maxHeaderBytes: 8192,
      maxSubscriptions: 8,
      maxPendingBytes: 1 << 20,
      maxQueuedFrames: 16, // reading pauses at 4 queued
      heartbeatMs: 0,
      ratePerSecond: 1000,
    };
    const socket = new FakeSocket();
    new StompSession(socket as unknown as WebSocket, handler, limits, silent);
    socket.emit('message', Buffer.from('CONNECT\naccept-version:1.2\nhost:x\n\n\0'));
    await settle();
    const send = (n: number) => socket.emit('message', Buffer.from(`SEND\ndestination:/queue/q\n\n${n}\0`));
    for (let n = 1; n <= 3; n++) send(n);
    expect(socket.isPaused).toBe(false);
    send(4);
    expect(socket.isPaused).toBe(true);
    // A few frames already read still arrive while paused (ws says so); they are queued, not refused.
    for (let n = 5; n <= 6; n++) send(n);
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
    expect(socket.sent.filter((f) => String(f).startsWith('ERROR'))).toEqual([]);
  });
});
