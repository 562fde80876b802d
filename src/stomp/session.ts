import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { AuditLog } from '../audit.ts';
import { parseDestination } from '../contract/destinations.ts';
import { ChatError } from '../contract/errors.ts';
import type { Logger } from '../logger.ts';
import type { LimitName, Metrics } from '../metrics.ts';
import { systemClock, type Clock } from './clock.ts';
import { encodeFrame, encodeMessage, isTextMessage, StompProtocolError, type Frame, type StompVersion } from './frame.ts';
import { FrameParser } from './parser.ts';
import type { UserSessions } from './user-sessions.ts';

export type AckMode = 'auto' | 'client' | 'client-individual';

export interface Subscription {
  id: string;
  destination: string;
  ack: AckMode;
  headers: Record<string, string>;
}

export interface SessionLimits {
  /** Any frame but a SEND to a relay destination. */
  maxFrameBytes: number;
  /** A SEND to `/topic/...` or `/queue/...`, as RabbitMQ Web-STOMP clients send them. */
  maxRelayFrameBytes: number;
  maxHeaders: number;
  maxHeaderBytes: number;
  maxSubscriptions: number;
  /** Outbound bytes (every write: MESSAGE, RECEIPT, ERROR, heart-beats) buffered before the session is ended. */
  maxPendingBytes: number;
  /** Frames queued for handling before the session is ended as a flood. */
  maxQueuedFrames: number;
  /** Bytes of frames queued for handling at which reading pauses, as it does at a quarter of maxQueuedFrames. */
  maxQueuedBytes: number;
  /** Transactions open at once. */
  maxTransactions: number;
  /** Frames one transaction may hold until COMMIT. */
  maxTransactionFrames: number;
  /** Bytes (bodies and headers) one transaction may hold until COMMIT. */
  maxTransactionBytes: number;
  /** A socket that has not had CONNECT accepted by then is ended. */
  connectTimeoutMs: number;
  /** Sessions one user may have open on this gateway (counted from identify()). */
  maxConnectionsPerUser: number;
  /** The heart-beat interval the server asks of clients; 0 disables heart-beats. */
  heartbeatMs: number;
  /** Agreed heart-beat intervals are clamped into [heartbeatMinMs, heartbeatMaxMs]. */
  heartbeatMinMs: number;
  heartbeatMaxMs: number;
  ratePerSecond: number;
}

/** What a session reports to and reads from its gateway. */
export interface SessionContext {
  log: Logger;
  metrics: Metrics;
  audit: AuditLog;
  /** Time for heart-beats, the CONNECT deadline and the rate window; the system clock when absent. */
  clock?: Clock;
  /** The gateway's sessions per user; identify() counts this session there. */
  users: UserSessions;
}

/** A transaction's frames, waiting for COMMIT, and what they weigh. */
interface Transaction {
  frames: Frame[];
  bytes: number;
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
/** The frames a `transaction` header holds back until COMMIT. */
const TRANSACTIONAL = new Set(['SEND', 'ACK', 'NACK']);
const HEART_BEAT = /^\s*(\d+)\s*,\s*(\d+)\s*$/;

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
  private readonly transactions = new Map<string, Transaction>();
  private senderSeq = 0;
  private messageSeq = 0;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private queuedBytes = 0;
  private readPaused = false;
  /** Queued frames at which reading pauses; well below maxQueuedFrames, which only a single huge burst reaches. */
  private readonly pauseAt: number;
  private closed = false;
  private readonly log: Logger;
  private readonly clock: Clock;
  private lastReceived: number;
  private lastSent: number;
  private stopHeartbeats: (() => void) | undefined;
  private cancelConnectDeadline: (() => void) | undefined;
  private rateWindowStart: number;
  private rateCount = 0;
  /** The user this session counts for in `context.users`, once identify() counted it. */
  private countedFor: string | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly handler: SessionHandler,
    private readonly limits: SessionLimits,
    private readonly context: SessionContext,
  ) {
    this.log = context.log;
    this.clock = context.clock ?? systemClock;
    this.lastReceived = this.lastSent = this.rateWindowStart = this.clock.now();
    this.parser = new FrameParser({
      ...limits,
      // Relay destinations carry what RabbitMQ Web-STOMP clients send; everything else keeps the chat frame limit.
      maxFrameBytesFor: (command, headers) => {
        const dest = command === 'SEND' && headers.destination !== undefined ? parseDestination(headers.destination, false) : null;
        return dest?.kind === 'topic' || dest?.kind === 'queue' ? limits.maxRelayFrameBytes : limits.maxFrameBytes;
      },
    });
    this.pauseAt = Math.max(1, Math.floor(limits.maxQueuedFrames / 4));
    // Unauthenticated sockets cost a file descriptor each: one that does not CONNECT in time is ended.
    this.cancelConnectDeadline = this.clock.after(limits.connectTimeoutMs, () =>
      this.refuse('connect_timeout', 'CONNECT timeout', `no CONNECT accepted within ${limits.connectTimeoutMs} ms`),
    );
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => this.onData(data));
    ws.on('close', () => this.teardown());
    ws.on('error', (err) => {
      this.log.debug({ err, session: this.id }, 'socket error');
      // ws refused a message over MAX_WS_MESSAGE_BYTES unread and closes with 1009: no ERROR frame can follow.
      if ((err as { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' && !this.closed) {
        this.context.metrics.refused('ws_message_bytes');
        this.context.metrics.sessionsEnded.inc({ reason: 'ws_message_bytes' });
        this.context.audit.record('limit_refused', { session: this.id, user: this.userId || undefined, limit: 'ws_message_bytes' });
      }
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
   * The handler's connect names the authenticated user here, before it sets anything up: the session then counts
   * toward the user's sessions, and one over MAX_CONNECTIONS_PER_USER is refused (ERROR, closed) by the throw.
   */
  identify(userId: string, username: string): void {
    const max = this.limits.maxConnectionsPerUser;
    if (this.context.users.count(userId) >= max) {
      throw new StompProtocolError(`too many sessions for one user (max ${max})`, 'connections_per_user');
    }
    this.userId = userId;
    this.username = username;
    if (this.closed || this.countedFor !== undefined) return;
    this.context.users.add(userId);
    this.countedFor = userId;
  }

  /**
   * Write a MESSAGE for a subscription; returns its message-id, or null when the session is gone. A consumer
   * too slow to drain its socket is ended rather than buffered without bound. Pass the same message object to
   * every subscriber: its shared part is encoded once. A body that is not UTF-8 goes as a binary WebSocket message.
   */
  sendMessage(sub: Subscription, message: { headers: Record<string, string>; body: Buffer }): string | null {
    // A socket that is closing takes no more frames: report it, so the copy is not recorded as delivered.
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return null;
    const messageId = `${this.id}-${++this.messageSeq}`;
    // The message may name its real destination (a wildcard subscription's match); subscription, message-id
    // and ack are always ours, whatever headers the sender put in.
    const own: Record<string, string> = { destination: sub.destination, subscription: sub.id, 'message-id': messageId };
    if (sub.ack !== 'auto') own.ack = messageId;
    this.ws.send(encodeMessage(own, message, this.version), { binary: !isTextMessage(message) });
    this.wrote();
    return this.closed ? null : messageId;
  }

  /**
   * Send an ERROR frame and close the socket: for protocol violations and for ending the session on purpose.
   * `reason` is what `chat_sessions_ended_total` counts it under.
   */
  fail(message: string, details = '', extraHeaders: Record<string, string> = {}, reason = 'ended'): void {
    if (this.closed) return;
    this.context.metrics.sessionsEnded.inc({ reason });
    if (reason !== 'shutdown') this.context.audit.record('session_cut', { session: this.id, user: this.userId || undefined, reason });
    // Closed first: the ERROR below is the last write and is not weighed against the pending bound again.
    this.teardown();
    this.write({
      command: 'ERROR',
      headers: { message, 'content-type': 'text/plain', ...extraHeaders },
      body: Buffer.from(details || message),
    });
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
    this.wrote();
  }

  /** After every write: a client that does not read what it asks for (receipts, errors, messages) is ended. */
  private wrote(): void {
    this.lastSent = this.clock.now();
    if (!this.closed && this.ws.bufferedAmount > this.limits.maxPendingBytes) {
      this.refuse('pending_bytes', `slow consumer: more than ${this.limits.maxPendingBytes} bytes pending`);
    }
  }

  /** Counts a limit's refusal (and logs it); with a message, the session cannot go on: ERROR, closed. */
  private refuse(limit: LimitName, message?: string, details = ''): void {
    this.context.metrics.refused(limit);
    this.context.audit.record(limit === 'rate' ? 'rate_limited' : 'limit_refused', { session: this.id, user: this.userId || undefined, limit });
    if (message !== undefined) this.fail(message, details, {}, limit);
  }

  private onData(data: Buffer | ArrayBuffer | Buffer[]): void {
    if (this.closed) return;
    this.lastReceived = this.clock.now();
    const chunk = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    let frames: Frame[];
    try {
      frames = this.parser.push(chunk);
    } catch (err) {
      if (err instanceof StompProtocolError) return this.protocolError(err);
      throw err;
    }
    for (const frame of frames) {
      const admitted = this.admit(frame);
      if (admitted === 'ended') return;
      if (admitted === 'refused') continue;
      // A frame that waits (behind another, or for its COMMIT) gets memory of its own: its body would otherwise
      // keep the whole WebSocket message alive for as long as it waits.
      const kept = this.queued > 0 || isTransactional(frame) ? detached(frame) : frame;
      const bytes = frameBytes(kept);
      this.queued++;
      this.queuedBytes += bytes;
      this.queue = this.queue.then(() => this.handle(kept)).finally(() => this.dequeued(bytes));
    }
    // Back-pressure: a client sending faster than its frames are handled stops being read (TCP slows it down)
    // rather than queueing without bound or being cut off at maxQueuedFrames.
    if (!this.readPaused && (this.queued >= this.pauseAt || this.queuedBytes >= this.limits.maxQueuedBytes)) {
      this.readPaused = true;
      this.ws.pause();
    }
  }

  private dequeued(bytes: number): void {
    this.queued--;
    this.queuedBytes -= bytes;
    if (this.readPaused && this.queued <= this.pauseAt / 2 && this.queuedBytes <= this.limits.maxQueuedBytes / 2) {
      this.readPaused = false;
      this.lastReceived = this.clock.now(); // nothing was read while paused, heart-beats included
      this.ws.resume();
    }
  }

  /**
   * Flood control before queueing: a frame over the rate is refused at once, each with its own RATE_LIMITED
   * error; a backlog that keeps growing ends the session.
   */
  private admit(frame: Frame): 'queued' | 'refused' | 'ended' {
    if (this.queued >= this.limits.maxQueuedFrames) {
      this.refuse('queued_frames', `too many frames in flight (max ${this.limits.maxQueuedFrames})`);
      return 'ended';
    }
    if (!this.connected || frame.command === 'DISCONNECT') return 'queued';
    const now = this.clock.now();
    if (now - this.rateWindowStart >= 1000) {
      this.rateWindowStart = now;
      this.rateCount = 0;
    }
    if (++this.rateCount > this.limits.ratePerSecond) {
      this.refuse('rate');
      this.handler.reportError(this, new ChatError('RATE_LIMITED', `more than ${this.limits.ratePerSecond} frames per second`), frame);
      return this.closed ? 'ended' : 'refused';
    }
    return 'queued';
  }

  /** ERROR and close; a broken limit is counted under its name. */
  private protocolError(err: StompProtocolError): void {
    if (err.limit) this.refuse(err.limit, err.message);
    else this.fail(err.message, '', {}, 'protocol');
  }

  private async handle(frame: Frame): Promise<void> {
    if (this.closed) return;
    if (frame.command === 'CONNECT' || frame.command === 'STOMP') return this.answering(frame, () => this.onConnect(frame));
    if (!this.connected) return this.fail('not connected', `${frame.command} before CONNECT`, {}, 'protocol');
    if (isTransactional(frame)) return this.answering(frame, () => this.bufferInTransaction(frame));
    return this.carryOut(frame);
  }

  /** Take `frame` into effect and answer its RECEIPT; what it throws is answered as `frame`'s. */
  private carryOut(frame: Frame): Promise<void> {
    return this.answering(frame, async () => {
      await this.dispatch(frame);
      this.receipt(frame);
    });
  }

  /** Run `work` for `frame`: a protocol error ends the session; any other goes to the client tied to `frame`. */
  private async answering(frame: Frame, work: () => void | Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      if (err instanceof StompProtocolError) return this.protocolError(err);
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
          this.refuse('subscriptions');
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
        if (this.transactions.size >= this.limits.maxTransactions) {
          this.refuse('transactions');
          throw new ChatError('BAD_REQUEST', `too many open transactions (max ${this.limits.maxTransactions})`);
        }
        this.transactions.set(tx, { frames: [], bytes: 0 });
        return;
      }
      case 'COMMIT':
        // Each buffered frame takes effect in order as if sent now: its RECEIPT goes out once it has, as RabbitMQ's
        // STOMP does; one that fails gets its own error event and the rest still go. ABORT answers none.
        for (const f of this.takeTransaction(frame).frames) {
          if (this.closed) return;
          await this.carryOut(f);
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

  /**
   * SEND, ACK and NACK inside a transaction wait for COMMIT. A frame that would take its transaction over a bound
   * aborts the whole transaction (nothing of it takes effect, its memory is freed) and is answered TOO_LARGE.
   */
  private bufferInTransaction(frame: Frame): void {
    const tx = frame.headers.transaction!;
    const t = this.transactions.get(tx);
    if (!t) throw new ChatError('BAD_REQUEST', `no transaction ${tx}`);
    const { maxTransactionFrames, maxTransactionBytes } = this.limits;
    const bytes = t.bytes + frameBytes(frame);
    if (t.frames.length >= maxTransactionFrames || bytes > maxTransactionBytes) {
      this.transactions.delete(tx);
      const tooMany = t.frames.length >= maxTransactionFrames;
      this.refuse(tooMany ? 'transaction_frames' : 'transaction_bytes');
      const bound = tooMany ? `${maxTransactionFrames} frames` : `${maxTransactionBytes} bytes`;
      throw new ChatError('TOO_LARGE', `transaction ${tx} aborted: it would hold more than ${bound}`);
    }
    t.frames.push(frame);
    t.bytes = bytes;
  }

  private takeTransaction(frame: Frame): Transaction {
    const tx = requireHeader(frame, 'transaction');
    const t = this.transactions.get(tx);
    if (!t) throw new ChatError('BAD_REQUEST', `no transaction ${tx}`);
    this.transactions.delete(tx);
    return t;
  }

  private receipt(frame: Frame): void {
    const id = frame.headers.receipt;
    if (id !== undefined) this.write({ command: 'RECEIPT', headers: { 'receipt-id': id }, body: Buffer.alloc(0) });
  }

  private async onConnect(frame: Frame): Promise<void> {
    if (this.connected) throw new StompProtocolError('already connected');
    // Everything that can refuse CONNECT is checked before the handler sets anything up.
    const accepted = (frame.headers['accept-version'] ?? '1.0').split(',').map((v) => v.trim());
    const version = SUPPORTED.find((v) => accepted.includes(v));
    if (!version) {
      const supported = SUPPORTED.join(',');
      return this.fail('unsupported STOMP version', `supported versions are ${supported}`, { version: supported }, 'protocol');
    }
    const heartBeat = parseHeartBeat(frame.headers['heart-beat']);
    if (!heartBeat) return this.refuse('heartbeat', 'invalid heart-beat header', 'heart-beat must be two non-negative integers: <cx>,<cy>');
    this.version = version;
    this.parser.version = version;
    let extra: Record<string, string>;
    try {
      extra = await this.handler.connect(this, frame);
    } catch (err) {
      if (err instanceof StompProtocolError) return this.protocolError(err);
      const reason = err instanceof ChatError ? err.message : 'authentication failed';
      if (!(err instanceof ChatError)) this.log.error({ err }, 'connect failed');
      return this.fail('unauthorized', reason, {}, 'unauthorized');
    }
    // The socket closed (or its CONNECT deadline passed) while the handler was accepting: undo what it set up.
    if (this.closed) return this.handler.closed(this);
    // From here on, every way the session ends goes through teardown, which undoes what the handler set up.
    this.connected = true;
    this.cancelConnectDeadline?.();
    const [cx, cy] = heartBeat;
    const { heartbeatMs: wanted, heartbeatMinMs: min, heartbeatMaxMs: max } = this.limits;
    const clamp = (ms: number): number => Math.min(Math.max(ms, min), max);
    // STOMP agrees on max(what one side can do, what the other wants). We offer to send as often as `min`, so a
    // client's wish is honoured down to it (as RabbitMQ Web-STOMP does); we want the client's every `wanted`.
    const sendEvery = wanted && cy ? clamp(cy) : 0;
    const expectEvery = wanted && cx ? clamp(Math.max(cx, wanted)) : 0;
    this.write({
      command: 'CONNECTED',
      headers: { version, 'heart-beat': wanted ? `${min},${wanted}` : '0,0', server: 'chat-gateway/0.1', session: this.id, ...extra },
      body: Buffer.alloc(0),
    });
    this.receipt(frame);
    this.startHeartbeats(sendEvery, expectEvery);
  }

  private startHeartbeats(sendEvery: number, expectEvery: number): void {
    if (this.closed || (!sendEvery && !expectEvery)) return;
    // Heart-beats go out once idle for `sendEvery - tick`; the peer's silence is checked every tick.
    const tick = Math.min(...[sendEvery / 2, expectEvery / 4].filter((n) => n > 0));
    this.stopHeartbeats = this.clock.every(tick, () => {
      const now = this.clock.now();
      // A peer silent for twice the agreed interval is closed by then, and never before 1.75 times (timers jitter).
      if (expectEvery && !this.readPaused && now - this.lastReceived > expectEvery * 2 - tick) {
        this.log.debug({ session: this.id }, 'peer missed heart-beats');
        return this.fail('heart-beat timeout', `nothing received for ${now - this.lastReceived} ms`, {}, 'heartbeat_timeout');
      }
      if (sendEvery && now - this.lastSent >= sendEvery - tick && this.ws.readyState === this.ws.OPEN) {
        this.ws.send('\n'); // its own WebSocket message, as stompjs and RabbitMQ Web-STOMP expect
        this.wrote();
      }
    });
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopHeartbeats?.();
    this.cancelConnectDeadline?.();
    this.transactions.clear();
    if (this.countedFor !== undefined) this.context.users.remove(this.countedFor);
    if (this.connected) this.handler.closed(this);
  }
}

/** A frame held beyond its handling: the same frame with a body of its own, not a view of the WebSocket message. */
function detached(frame: Frame): Frame {
  return frame.body.length === 0 ? frame : { ...frame, body: Buffer.from(frame.body) };
}

function isTransactional(frame: Frame): boolean {
  return frame.headers.transaction !== undefined && TRANSACTIONAL.has(frame.command);
}

/** What a frame weighs in memory, roughly its size on the wire. */
function frameBytes(frame: Frame): number {
  let bytes = frame.body.length;
  for (const name of Object.keys(frame.headers)) bytes += name.length + frame.headers[name]!.length + 2;
  return bytes;
}

function requireHeader(frame: Frame, name: string): string {
  const value = frame.headers[name];
  if (value === undefined || value === '') throw new ChatError('BAD_REQUEST', `${frame.command} needs a ${name} header`);
  return value;
}

/** `<cx>,<cy>` in ms; [0, 0] when absent or empty; null when it does not parse. */
function parseHeartBeat(value: string | undefined): [number, number] | null {
  if (value === undefined || value === '') return [0, 0];
  const m = HEART_BEAT.exec(value);
  return m ? [Number(m[1]), Number(m[2])] : null;
}
