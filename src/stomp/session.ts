import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import { ChatError } from '../contract/errors.ts';
import type { Logger } from '../logger.ts';
import { encodeFrame, encodeMessage, StompProtocolError, type Frame, type StompVersion } from './frame.ts';
import { FrameParser } from './parser.ts';

export type AckMode = 'auto' | 'client' | 'client-individual';

export interface Subscription {
  id: string;
  destination: string;
  ack: AckMode;
  headers: Record<string, string>;
}

export interface SessionLimits {
  maxFrameBytes: number;
  maxHeaders: number;
  maxHeaderBytes: number;
  maxSubscriptions: number;
  maxPendingBytes: number;
  /** Frames queued for handling before the session is ended as a flood. */
  maxQueuedFrames: number;
  heartbeatMs: number;
  ratePerSecond: number;
}

/** What the application does with an authenticated session's frames. */
export interface SessionHandler {
  /** Authenticate CONNECT; returns extra CONNECTED headers. Throwing ends the session with ERROR. */
  connect(session: StompSession, frame: Frame): Promise<Record<string, string>>;
  subscribe(session: StompSession, sub: Subscription, frame: Frame): Promise<void>;
  unsubscribe(session: StompSession, sub: Subscription): Promise<void>;
  send(session: StompSession, frame: Frame): Promise<void>;
  ack(session: StompSession, frame: Frame, positive: boolean): Promise<void>;
  /** The session ended (socket closed, ERROR sent, or DISCONNECT). */
  closed(session: StompSession): void;
  /** A handler error that does not end the session: tell the client on /user/queue/errors. */
  reportError(session: StompSession, error: ChatError, frame: Frame): void;
}

const SUPPORTED: StompVersion[] = ['1.2', '1.1', '1.0'];
const CLIENT_FRAMES_NEEDING_CONNECT = new Set(['SEND', 'SUBSCRIBE', 'UNSUBSCRIBE', 'ACK', 'NACK', 'BEGIN', 'COMMIT', 'ABORT']);

/**
 * One STOMP connection: parses frames off the WebSocket, negotiates version and heart-beats, enforces limits,
 * runs transactions, and hands each frame to the SessionHandler one at a time, in arrival order, so that a
 * client's SENDs are stored in the order it sent them. A RECEIPT goes out only after the handler finished.
 */
export class StompSession {
  /** This connection's id; with `nextSenderSeq` it names every message the connection sends. */
  readonly id: string = randomUUID();
  version: StompVersion = '1.2';
  connected = false;
  /** Set by the handler on CONNECT. */
  userId = '';
  username = '';
  /** Delivery-history id: this connection's own, or the resumed session's. */
  historyId: string = this.id;

  readonly subscriptions = new Map<string, Subscription>();
  private readonly parser: FrameParser;
  private readonly transactions = new Map<string, Frame[]>();
  private senderSeq = 0;
  private messageSeq = 0;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private readPaused = false;
  /** Queued frames at which reading pauses; well below maxQueuedFrames, which only a single huge burst reaches. */
  private readonly pauseAt: number;
  private closed = false;
  private lastReceived = Date.now();
  private lastSent = Date.now();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private rateWindowStart = Date.now();
  private rateCount = 0;

  constructor(
    private readonly ws: WebSocket,
    private readonly handler: SessionHandler,
    private readonly limits: SessionLimits,
    private readonly log: Logger,
  ) {
    this.parser = new FrameParser(limits);
    this.pauseAt = Math.max(1, Math.floor(limits.maxQueuedFrames / 4));
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => this.onData(data));
    ws.on('close', () => this.teardown());
    ws.on('error', (err) => {
      this.log.debug({ err, session: this.id }, 'socket error');
      this.teardown();
    });
  }

  /** The next sender seq of this connection: a message it originates is known everywhere by (id, seq). */
  nextSenderSeq(): number {
    return ++this.senderSeq;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Frames received and waiting for their turn to be handled (bounded by maxQueuedFrames). */
  get queuedFrames(): number {
    return this.queued;
  }

  /** Outbound bytes written but not yet taken by the socket (bounded by maxPendingBytes). */
  get pendingBytes(): number {
    return this.ws.bufferedAmount;
  }

  /**
   * Write a MESSAGE for a subscription; returns its message-id, or null when the session is gone. A consumer
   * too slow to drain its socket is ended rather than buffered without bound. Pass the same message object to
   * every subscriber: its shared part is encoded once.
   */
  sendMessage(sub: Subscription, message: { headers: Record<string, string>; body: Buffer }): string | null {
    // A socket that is closing takes no more frames: report it, so the copy is not recorded as delivered.
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return null;
    const messageId = `${this.id}-${++this.messageSeq}`;
    // The message may name its real destination (a wildcard subscription's match); subscription, message-id
    // and ack are always ours, whatever headers the sender put in.
    const own: Record<string, string> = { destination: sub.destination, subscription: sub.id, 'message-id': messageId };
    if (sub.ack !== 'auto') own.ack = messageId;
    this.ws.send(encodeMessage(own, message, this.version), { binary: false });
    this.lastSent = Date.now();
    if (this.ws.bufferedAmount > this.limits.maxPendingBytes) {
      this.fail(`slow consumer: more than ${this.limits.maxPendingBytes} bytes pending`);
      return null;
    }
    return messageId;
  }

  /** Send an ERROR frame and close the socket: for protocol violations and for ending the session on purpose. */
  fail(message: string, details = '', extraHeaders: Record<string, string> = {}): void {
    if (this.closed) return;
    this.write({
      command: 'ERROR',
      headers: { message, 'content-type': 'text/plain', ...extraHeaders },
      body: Buffer.from(details || message),
    });
    this.teardown();
    this.ws.close(1002 /* protocol error */, message.slice(0, 120));
  }

  /** Close without an ERROR frame (after DISCONNECT). */
  close(): void {
    if (this.closed) return;
    this.teardown();
    this.ws.close(1000);
  }

  private write(frame: Frame): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(encodeFrame(frame, this.version), { binary: false });
    this.lastSent = Date.now();
  }

  private onData(data: Buffer | ArrayBuffer | Buffer[]): void {
    if (this.closed) return;
    this.lastReceived = Date.now();
    const chunk = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    let frames: Frame[];
    try {
      frames = this.parser.push(chunk);
    } catch (err) {
      if (err instanceof StompProtocolError) return this.fail(err.message);
      throw err;
    }
    for (const frame of frames) {
      if (!this.admit(frame)) return;
      this.queued++;
      this.queue = this.queue.then(() => this.handle(frame)).finally(() => this.dequeued());
    }
    // Back-pressure: a client sending faster than its frames are handled stops being read (TCP slows it down)
    // rather than queueing without bound or being cut off at maxQueuedFrames.
    if (!this.readPaused && this.queued >= this.pauseAt) {
      this.readPaused = true;
      this.ws.pause();
    }
  }

  private dequeued(): void {
    this.queued--;
    if (this.readPaused && this.queued <= this.pauseAt / 2) {
      this.readPaused = false;
      this.lastReceived = Date.now(); // nothing was read while paused, heart-beats included
      this.ws.resume();
    }
  }

  /** Flood control before queueing: a frame over the rate is refused at once; a backlog that keeps growing ends the session. */
  private admit(frame: Frame): boolean {
    if (this.queued >= this.limits.maxQueuedFrames) {
      this.fail(`too many frames in flight (max ${this.limits.maxQueuedFrames})`);
      return false;
    }
    if (!this.connected || frame.command === 'DISCONNECT') return true;
    const now = Date.now();
    if (now - this.rateWindowStart >= 1000) {
      this.rateWindowStart = now;
      this.rateCount = 0;
    }
    if (++this.rateCount > this.limits.ratePerSecond) {
      this.handler.reportError(this, new ChatError('RATE_LIMITED', `more than ${this.limits.ratePerSecond} frames per second`), frame);
      return false;
    }
    return true;
  }

  private async handle(frame: Frame): Promise<void> {
    if (this.closed) return;
    try {
      if (frame.command === 'CONNECT' || frame.command === 'STOMP') return await this.onConnect(frame);
      if (!this.connected) return this.fail('not connected', `${frame.command} before CONNECT`);
      if (CLIENT_FRAMES_NEEDING_CONNECT.has(frame.command) && frame.headers.transaction !== undefined) {
        if (this.bufferInTransaction(frame)) return;
      }
      await this.dispatch(frame);
      this.receipt(frame);
    } catch (err) {
      if (err instanceof StompProtocolError) return this.fail(err.message);
      if (err instanceof ChatError) return this.handler.reportError(this, err, frame);
      this.log.error({ err, session: this.id, command: frame.command }, 'frame handling failed');
      this.handler.reportError(this, new ChatError('INTERNAL', 'internal error'), frame);
    }
  }

  private async dispatch(frame: Frame): Promise<void> {
    const h = frame.headers;
    switch (frame.command) {
      case 'SEND':
        requireHeader(frame, 'destination');
        return this.handler.send(this, frame);
      case 'SUBSCRIBE': {
        requireHeader(frame, 'destination');
        // STOMP 1.0 makes the id optional; the destination then names the subscription.
        const id = h.id ?? (this.version === '1.0' ? h.destination! : requireHeader(frame, 'id'));
        if (this.subscriptions.has(id)) throw new ChatError('BAD_REQUEST', `subscription id ${id} already in use`);
        if (this.subscriptions.size >= this.limits.maxSubscriptions) {
          throw new ChatError('BAD_REQUEST', `too many subscriptions (max ${this.limits.maxSubscriptions})`);
        }
        const ack = (h.ack ?? 'auto') as AckMode;
        if (ack !== 'auto' && ack !== 'client' && ack !== 'client-individual') {
          throw new ChatError('BAD_REQUEST', `unknown ack mode ${ack}`);
        }
        const sub: Subscription = { id, destination: h.destination!, ack, headers: h };
        this.subscriptions.set(id, sub);
        try {
          await this.handler.subscribe(this, sub, frame);
        } catch (err) {
          this.subscriptions.delete(id);
          throw err;
        }
        return;
      }
      case 'UNSUBSCRIBE': {
        const id = h.id ?? (this.version === '1.0' ? h.destination : undefined);
        const sub = id === undefined ? undefined : this.subscriptions.get(id);
        if (!sub) throw new ChatError('NOT_FOUND', `no subscription ${id ?? ''}`);
        this.subscriptions.delete(sub.id);
        return this.handler.unsubscribe(this, sub);
      }
      case 'ACK':
      case 'NACK':
        return this.handler.ack(this, frame, frame.command === 'ACK');
      case 'BEGIN': {
        const tx = requireHeader(frame, 'transaction');
        if (this.transactions.has(tx)) throw new ChatError('BAD_REQUEST', `transaction ${tx} already begun`);
        this.transactions.set(tx, []);
        return;
      }
      case 'COMMIT':
        // A buffered frame's RECEIPT goes out once it has taken effect, as RabbitMQ's STOMP does; ABORT sends none.
        for (const f of this.takeTransaction(frame)) {
          await this.dispatch(f);
          this.receipt(f);
        }
        return;
      case 'ABORT':
        this.takeTransaction(frame);
        return;
      case 'DISCONNECT':
        this.receipt(frame);
        return this.close();
      default:
        throw new StompProtocolError(`unexpected ${frame.command} frame`);
    }
  }

  /** SEND, ACK and NACK inside a transaction wait for COMMIT; returns true when the frame was buffered. */
  private bufferInTransaction(frame: Frame): boolean {
    if (!['SEND', 'ACK', 'NACK'].includes(frame.command)) return false;
    const tx = frame.headers.transaction!;
    const frames = this.transactions.get(tx);
    if (!frames) throw new ChatError('BAD_REQUEST', `no transaction ${tx}`);
    frames.push(frame);
    return true;
  }

  private takeTransaction(frame: Frame): Frame[] {
    const tx = requireHeader(frame, 'transaction');
    const frames = this.transactions.get(tx);
    if (!frames) throw new ChatError('BAD_REQUEST', `no transaction ${tx}`);
    this.transactions.delete(tx);
    return frames;
  }

  private receipt(frame: Frame): void {
    const id = frame.headers.receipt;
    if (id !== undefined) this.write({ command: 'RECEIPT', headers: { 'receipt-id': id }, body: Buffer.alloc(0) });
  }

  private async onConnect(frame: Frame): Promise<void> {
    if (this.connected) throw new StompProtocolError('already connected');
    const accepted = (frame.headers['accept-version'] ?? '1.0').split(',').map((v) => v.trim());
    const version = SUPPORTED.find((v) => accepted.includes(v));
    if (!version) {
      return this.fail('unsupported STOMP version', `supported versions are ${SUPPORTED.join(',')}`, {
        version: SUPPORTED.join(','),
      });
    }
    this.version = version;
    this.parser.version = version;
    let extra: Record<string, string>;
    try {
      extra = await this.handler.connect(this, frame);
    } catch (err) {
      const reason = err instanceof ChatError ? err.message : 'authentication failed';
      if (!(err instanceof ChatError)) this.log.error({ err }, 'connect failed');
      return this.fail('unauthorized', reason);
    }
    // The socket closed while the handler was accepting: teardown did not report a session not yet connected.
    if (this.closed) return this.handler.closed(this);
    const [cx, cy] = parseHeartBeat(frame.headers['heart-beat']);
    const hb = this.limits.heartbeatMs;
    // We send every max(our offer, what they want); we expect theirs every max(their offer, what we want).
    const sendEvery = hb && cy ? Math.max(hb, cy) : 0;
    const expectEvery = hb && cx ? Math.max(hb, cx) : 0;
    this.connected = true;
    this.write({
      command: 'CONNECTED',
      headers: { version, 'heart-beat': `${hb},${hb}`, server: 'chat-gateway/0.1', session: this.id, ...extra },
      body: Buffer.alloc(0),
    });
    this.receipt(frame);
    this.startHeartbeats(sendEvery, expectEvery);
  }

  private startHeartbeats(sendEvery: number, expectEvery: number): void {
    if (!sendEvery && !expectEvery) return;
    const tick = Math.min(...[sendEvery, expectEvery].filter((n) => n > 0)) / 2;
    this.heartbeatTimer = setInterval(() => {
      const now = Date.now();
      // Allow twice the agreed interval before declaring the peer dead: timers and networks jitter.
      if (expectEvery && !this.readPaused && now - this.lastReceived > expectEvery * 2) {
        this.log.debug({ session: this.id }, 'peer missed heart-beats');
        return this.fail('heart-beat timeout');
      }
      if (sendEvery && now - this.lastSent >= sendEvery - tick && this.ws.readyState === this.ws.OPEN) {
        this.ws.send('\n');
        this.lastSent = now;
      }
    }, tick);
    this.heartbeatTimer.unref();
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeatTimer);
    if (this.connected) this.handler.closed(this);
  }
}

function requireHeader(frame: Frame, name: string): string {
  const value = frame.headers[name];
  if (value === undefined || value === '') throw new ChatError('BAD_REQUEST', `${frame.command} needs a ${name} header`);
  return value;
}

function parseHeartBeat(value: string | undefined): [number, number] {
  if (!value) return [0, 0];
  const [a, b] = value.split(',').map((n) => Number.parseInt(n, 10));
  if (!Number.isFinite(a) || !Number.isFinite(b) || a! < 0 || b! < 0) throw new StompProtocolError('invalid heart-beat header');
  return [a!, b!];
}
