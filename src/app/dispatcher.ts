import type { Broker, BrokerHealth, BrokerMessage } from '../broker/broker.ts';
import { eventMessage, jsonMessage } from '../broker/messages.ts';
import { parseDestination, type Destination } from '../contract/destinations.ts';
import { ChatError } from '../contract/errors.ts';
import { DeleteBody, EditBody, ReadBody, SendBody, TypingBody, type MessageEvent } from '../contract/events.ts';
import type { TokenService } from '../auth/tokens.ts';
import { copyFor } from '../delivery/copy.ts';
import { directTarget, type Fanout } from '../delivery/fanout.ts';
import type { DeliveryHistory } from '../delivery/history.ts';
import type { OutboundCopy, OutboundInterceptor } from '../delivery/interceptor.ts';
import { RoomFeed } from '../delivery/room-feed.ts';
import type { Logger } from '../logger.ts';
import type { PresenceTracker } from '../presence/tracker.ts';
import type { MessageStore } from '../store/messages.ts';
import type { RoomStore } from '../store/rooms.ts';
import type { Frame } from '../stomp/frame.ts';
import type { SessionHandler, StompSession, Subscription } from '../stomp/session.ts';
import type { z } from 'zod';
import type { GatewayOrigin } from './origin.ts';
import type { Relay } from './relay.ts';
import { roomKey, userKey, type RoomService } from './rooms.ts';

export interface DispatcherOptions {
  resumeTtlS: number;
  replayLimit: number;
  tokenGraceS: number;
  gapWaitMs: number;
}

interface SessionState {
  /** What to undo on UNSUBSCRIBE or disconnect, by subscription id. */
  cleanups: Map<string, () => Promise<void> | void>;
  errors?: Subscription;
  expiryTimer?: NodeJS.Timeout;
}

/**
 * The application side of every STOMP session: authenticates CONNECT, authorizes and wires each SUBSCRIBE
 * (room feeds, notifications, relay topics and queues, health), and routes each SEND to its handler.
 */
export class Dispatcher implements SessionHandler {
  private readonly states = new Map<StompSession, SessionState>();
  private readonly healthSubs = new Map<StompSession, Subscription>();
  private readonly feeds = new Set<RoomFeed>();

  constructor(
    private readonly tokens: TokenService,
    private readonly rooms: RoomService,
    private readonly roomStore: RoomStore,
    private readonly messages: MessageStore,
    private readonly fanout: Fanout,
    private readonly relay: Relay,
    private readonly interceptor: OutboundInterceptor,
    private readonly history: DeliveryHistory,
    private readonly broker: Broker,
    private readonly gateway: GatewayOrigin,
    private readonly presence: PresenceTracker,
    private readonly options: DispatcherOptions,
    private readonly log: Logger,
  ) {
    broker.onHealth((health) => {
      for (const [session, sub] of this.healthSubs) this.sendHealth(session, sub, health);
      if (health === 'up') for (const feed of this.feeds) feed.catchUp();
    });
  }

  get sessionCount(): number {
    return this.states.size;
  }

  async connect(session: StompSession, frame: Frame): Promise<Record<string, string>> {
    const principal = await this.tokens.verifyAccess(tokenOf(frame.headers));
    session.identify(principal.userId, principal.username); // counts toward MAX_CONNECTIONS_PER_USER
    const resume = frame.headers['session-resume'];
    if (resume) {
      const historyId = await this.tokens.verifyResume(resume, principal.userId);
      if (!historyId) throw new ChatError('UNAUTHORIZED', 'invalid session-resume token');
      session.historyId = historyId;
    }
    const ttlMs = this.options.resumeTtlS * 1000;
    const [resumeToken] = await Promise.all([
      this.tokens.issueResume(session.historyId, principal.userId, this.options.resumeTtlS),
      this.history.retain(session.historyId, ttlMs),
    ]);
    await this.presence.connected(principal.userId, session.id);
    // Only now, when nothing can refuse the session any more: closed() undoes this, and comes only for an accepted one.
    const state: SessionState = { cleanups: new Map() };
    this.states.set(session, state);
    this.watchExpiry(session, state, principal.expiresAt);
    return { 'session-resume': resumeToken, 'user-name': principal.username };
  }

  async subscribe(session: StompSession, sub: Subscription): Promise<void> {
    const state = this.stateOf(session);
    const dest = parseDestination(sub.destination, true);
    if (!dest) throw new ChatError('FORBIDDEN', `cannot subscribe to ${sub.destination}`);
    switch (dest.kind) {
      case 'room':
        state.cleanups.set(sub.id, await this.subscribeRoom(session, sub, dest.roomId));
        return;
      case 'notifications': {
        const target = directTarget((m) => copyFor(session, sub, m));
        await this.fanout.add('chat', userKey(session.userId), target);
        state.cleanups.set(sub.id, () => this.fanout.remove('chat', userKey(session.userId), target));
        return;
      }
      case 'errors':
        state.errors = sub;
        state.cleanups.set(sub.id, () => void (state.errors = undefined));
        return;
      case 'health':
        this.healthSubs.set(session, sub);
        state.cleanups.set(sub.id, () => void this.healthSubs.delete(session));
        this.sendHealth(session, sub, this.broker.health());
        return;
      case 'topic':
        state.cleanups.set(sub.id, await this.relay.subscribeTopic(session, sub, dest.name));
        return;
      case 'queue':
        state.cleanups.set(sub.id, await this.relay.subscribeQueue(session, sub, dest.name));
        return;
      default:
        throw new ChatError('BAD_REQUEST', `${sub.destination} is not a destination to subscribe to`);
    }
  }

  async unsubscribe(session: StompSession, sub: Subscription): Promise<void> {
    const state = this.stateOf(session);
    const cleanup = state.cleanups.get(sub.id);
    state.cleanups.delete(sub.id);
    await cleanup?.();
  }

  async send(session: StompSession, frame: Frame): Promise<void> {
    const dest = parseDestination(frame.headers.destination!, false);
    if (!dest) throw new ChatError('FORBIDDEN', `cannot send to ${frame.headers.destination}`);
    switch (dest.kind) {
      case 'room-action':
        return this.roomAction(session, frame, dest);
      case 'topic':
      case 'queue':
        return this.relay.send(session, frame, dest.kind, dest.name);
      case 'app':
        if (dest.name === 'auth.refresh') return this.refresh(session, frame);
        throw new ChatError('NOT_FOUND', `${frame.headers.destination} is not available on this server yet`);
      default:
        throw new ChatError('BAD_REQUEST', `${frame.headers.destination} is not a destination to send to`);
    }
  }

  ack(session: StompSession, frame: Frame, positive: boolean): Promise<void> {
    return this.relay.ack(session, frame, positive);
  }

  closed(session: StompSession): void {
    const state = this.states.get(session);
    if (!state) return;
    this.states.delete(session);
    this.healthSubs.delete(session);
    clearTimeout(state.expiryTimer);
    this.presence.disconnected(session.userId, session.id);
    for (const cleanup of state.cleanups.values()) {
      Promise.resolve(cleanup()).catch((err: unknown) => this.log.warn({ err }, 'cleanup after disconnect failed'));
    }
    // Keep the delivery history for a client that comes back with session-resume.
    this.history.retain(session.historyId, this.options.resumeTtlS * 1000).catch((err: unknown) => {
      this.log.warn({ err }, 'could not retain delivery history');
    });
  }

  reportError(session: StompSession, error: ChatError, frame: Frame): void {
    const sub = this.states.get(session)?.errors;
    if (!sub) {
      this.log.debug({ code: error.code, message: error.message }, 'error for a session without /user/queue/errors');
      return;
    }
    const body: Record<string, string> = { code: error.code, message: error.message };
    const requestCode = frame.headers['client-request-code'];
    if (requestCode !== undefined) body.clientRequestCode = requestCode;
    if (frame.headers.receipt !== undefined) body.receiptId = frame.headers.receipt;
    const message = jsonMessage(body, this.gateway.next(), { 'error-code': error.code });
    session.sendMessage(sub, message);
  }

  private async subscribeRoom(session: StompSession, sub: Subscription, roomId: string): Promise<() => Promise<void>> {
    // Read before the membership check: a LEAVE after this read is newer; one before it fails the check.
    const seqAtSubscribe = await this.roomStore.lastSeq(roomId);
    await this.rooms.requireMember(roomId, session.userId);
    const sinceHeader = sub.headers['since-seq'];
    const since = sinceHeader === undefined ? undefined : Number(sinceHeader);
    if (since !== undefined && (!Number.isInteger(since) || since < 0)) {
      throw new ChatError('BAD_REQUEST', 'since-seq must be a non-negative integer');
    }
    // Once the subscriber's own LEAVE (a new one, not one replayed from before it rejoined) is written, nothing
    // more of the room reaches this subscription.
    let left = false;
    const copy = (m: BrokerMessage): OutboundCopy | null => {
      const c = copyFor(session, sub, m);
      if (!c) return null;
      const ownLeave =
        m.headers['event-type'] === 'LEAVE' &&
        Number(m.headers.seq) > seqAtSubscribe &&
        (JSON.parse(m.body.toString()) as MessageEvent).sender.id === session.userId;
      return {
        key: c.key,
        write: () => {
          if (left) return false;
          const ok = c.write();
          if (ok && ownLeave) {
            left = true;
            queueMicrotask(() => this.endSubscription(session, sub, new ChatError('FORBIDDEN', `you left room ${roomId}; subscription ${sub.id} ended`)));
          }
          return ok;
        },
      };
    };
    // Bind first, then read where the room stands: nothing published in between can fall through.
    let feed: RoomFeed | undefined;
    const target = { offer: (m: Parameters<RoomFeed['offer']>[0]) => feed?.offer(m) ?? [], failed: () => feed?.failed() };
    await this.fanout.add('chat', roomKey(roomId), target);
    try {
      feed = new RoomFeed({
        roomId,
        afterSeq: since ?? (await this.roomStore.lastSeq(roomId)),
        clientSince: since !== undefined,
        copy,
        interceptor: this.interceptor,
        since: (id, after, limit) => this.messages.since(id, after, limit),
        lastSeq: (id) => this.roomStore.lastSeq(id),
        resync: (fromSeq) => {
          session.sendMessage(sub, eventMessage({ type: 'RESYNC', roomId, fromSeq }, this.gateway.next()));
        },
        replayLimit: this.options.replayLimit,
        gapWaitMs: this.options.gapWaitMs,
        log: this.log,
      });
      await feed.start();
    } catch (err) {
      feed?.stop();
      await this.fanout.remove('chat', roomKey(roomId), target);
      throw err;
    }
    this.feeds.add(feed);
    return async () => {
      feed!.stop();
      this.feeds.delete(feed!);
      await this.fanout.remove('chat', roomKey(roomId), target);
    };
  }

  /** End a subscription from the server side, telling the client why (with the SUBSCRIBE's client-request-code). */
  private endSubscription(session: StompSession, sub: Subscription, reason: ChatError): void {
    const state = this.states.get(session);
    const cleanup = state?.cleanups.get(sub.id);
    if (!state || !cleanup) return;
    state.cleanups.delete(sub.id);
    session.subscriptions.delete(sub.id);
    Promise.resolve(cleanup()).catch((err: unknown) => this.log.warn({ err }, 'ending a subscription failed'));
    const { receipt: _answeredAlready, ...headers } = sub.headers;
    this.reportError(session, reason, { command: 'SUBSCRIBE', headers, body: Buffer.alloc(0) });
  }

  private async roomAction(session: StompSession, frame: Frame, dest: Extract<Destination, { kind: 'room-action' }>): Promise<void> {
    const actor = { userId: session.userId, username: session.username };
    const origin = { session: session.id, seq: session.nextSenderSeq() };
    const { roomId } = dest;
    switch (dest.action) {
      case 'send': {
        const body = parseBody(SendBody, frame);
        await this.rooms.send(actor, roomId, body, origin, frame.headers['client-msg-id']);
        return;
      }
      case 'edit': {
        const body = parseBody(EditBody, frame);
        await this.rooms.edit(actor, roomId, body.messageId, body.text, origin);
        return;
      }
      case 'delete':
        await this.rooms.delete(actor, roomId, parseBody(DeleteBody, frame).messageId, origin);
        return;
      case 'read':
        await this.rooms.read(actor, roomId, parseBody(ReadBody, frame).seq, origin);
        return;
      case 'typing':
        return this.rooms.typing(actor, roomId, parseBody(TypingBody, frame).typing, origin);
    }
  }

  private async refresh(session: StompSession, frame: Frame): Promise<void> {
    const principal = await this.tokens.verifyAccess(tokenOf(frame.headers));
    if (principal.userId !== session.userId) throw new ChatError('FORBIDDEN', 'token belongs to another user');
    this.watchExpiry(session, this.stateOf(session), principal.expiresAt);
  }

  /** At expiry, warn with TOKEN_EXPIRED; without a refresh within the grace period, end the session. */
  private watchExpiry(session: StompSession, state: SessionState, expiresAt: number): void {
    clearTimeout(state.expiryTimer);
    const grace = this.options.tokenGraceS * 1000;
    state.expiryTimer = setTimeout(() => {
      const expired: Frame = { command: 'SEND', headers: {}, body: Buffer.alloc(0) };
      this.reportError(session, new ChatError('TOKEN_EXPIRED', 'access token expired; send /app/auth.refresh'), expired);
      state.expiryTimer = setTimeout(() => session.fail('unauthorized', 'access token expired'), grace);
      state.expiryTimer.unref();
    }, Math.max(0, expiresAt - Date.now()));
    state.expiryTimer.unref();
  }

  private sendHealth(session: StompSession, sub: Subscription, health: BrokerHealth): void {
    session.sendMessage(sub, eventMessage({ type: 'HEALTH', broker: health, at: new Date().toISOString() }, this.gateway.next()));
  }

  private stateOf(session: StompSession): SessionState {
    const state = this.states.get(session);
    if (!state) throw new ChatError('UNAUTHORIZED', 'session is not connected');
    return state;
  }
}

/** The access token from CONNECT: `Authorization: Bearer`, `access-token`, or `passcode` (any login). */
function tokenOf(headers: Record<string, string>): string {
  const auth = headers.authorization ?? headers.Authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  const token = headers['access-token'] ?? headers.passcode;
  if (!token) throw new ChatError('UNAUTHORIZED', 'no access token (Authorization, access-token or passcode)');
  return token;
}

function parseBody<T extends z.ZodType>(schema: T, frame: Frame): z.infer<T> {
  let json: unknown;
  try {
    json = frame.body.length ? JSON.parse(frame.body.toString('utf8')) : {};
  } catch {
    throw new ChatError('BAD_REQUEST', 'body is not valid JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new ChatError('BAD_REQUEST', parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  }
  return parsed.data;
}
