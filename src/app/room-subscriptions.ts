import type { BrokerMessage } from '../broker/broker.ts';
import { eventMessage } from '../broker/messages.ts';
import { ChatError } from '../contract/errors.ts';
import type { MessageEvent } from '../contract/events.ts';
import { copyFor } from '../delivery/copy.ts';
import type { Fanout, FanoutTarget } from '../delivery/fanout.ts';
import type { OutboundCopy, OutboundInterceptor } from '../delivery/interceptor.ts';
import { RoomFeed } from '../delivery/room-feed.ts';
import type { Logger } from '../logger.ts';
import type { MessageStore } from '../store/messages.ts';
import type { RoomStore } from '../store/rooms.ts';
import type { StompSession, Subscription } from '../stomp/session.ts';
import type { GatewayOrigin } from './origin.ts';
import { roomKey, type RoomService } from './rooms.ts';

export interface RoomSubscriptionsOptions {
  replayLimit: number;
  gapWaitMs: number;
  /** End a subscription from the server side and tell the client why (the dispatcher owns the subscriptions). */
  end(session: StompSession, sub: Subscription, reason: ChatError): void;
}

/** The largest `since-seq` a room can have reached (seqs are 32-bit integers in the store). */
const MAX_SEQ = 2 ** 31 - 1;

/**
 * `/topic/rooms.{roomId}` subscriptions: membership checked, a RoomFeed per subscriber (room order, gap fill,
 * `since-seq` replay), bound on the broker through the fanout. One subscription per room per session: a second
 * one would only be starved by the first (both share the session's delivery history), so it is refused.
 */
export class RoomSubscriptions {
  private readonly feeds = new Set<RoomFeed>();
  /** Room ids each session is subscribed to. */
  private readonly subscribed = new Map<StompSession, Set<string>>();

  constructor(
    private readonly rooms: RoomService,
    private readonly roomStore: RoomStore,
    private readonly messages: MessageStore,
    private readonly fanout: Fanout,
    private readonly interceptor: OutboundInterceptor,
    private readonly gateway: GatewayOrigin,
    private readonly options: RoomSubscriptionsOptions,
    private readonly log: Logger,
  ) {}

  /** Every feed reads what it missed from the store (the broker link came back). */
  catchUpAll(): void {
    for (const feed of this.feeds) feed.catchUp();
  }

  /** Subscribe; returns the cleanup to run on UNSUBSCRIBE or disconnect. */
  async subscribe(session: StompSession, sub: Subscription, roomId: string): Promise<() => Promise<void>> {
    const since = parseSinceSeq(sub.headers['since-seq']);
    let rooms = this.subscribed.get(session);
    if (rooms?.has(roomId)) throw new ChatError('CONFLICT', `this session is already subscribed to room ${roomId}`);
    if (!rooms) this.subscribed.set(session, (rooms = new Set()));
    rooms.add(roomId);
    const forget = (): void => {
      rooms.delete(roomId);
      if (rooms.size === 0 && this.subscribed.get(session) === rooms) this.subscribed.delete(session);
    };
    try {
      const stop = await this.start(session, sub, roomId, since);
      return async () => {
        forget();
        await stop();
      };
    } catch (err) {
      forget();
      throw err;
    }
  }

  private async start(session: StompSession, sub: Subscription, roomId: string, since: number | undefined): Promise<() => Promise<void>> {
    // Read before the membership check: a LEAVE after this read is newer; one before it fails the check.
    const seqAtSubscribe = await this.roomStore.lastSeq(roomId);
    await this.rooms.requireMember(roomId, session.userId);
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
            queueMicrotask(() =>
              this.options.end(session, sub, new ChatError('FORBIDDEN', `you left room ${roomId}; subscription ${sub.id} ended`)),
            );
          }
          return ok;
        },
      };
    };
    // Bind first, then read where the room stands: nothing published in between can fall through.
    let feed: RoomFeed | undefined;
    const target: FanoutTarget = { offer: (m) => feed?.offer(m) ?? [], failed: () => feed?.failed() };
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
      feed.stop();
      this.feeds.delete(feed);
      await this.fanout.remove('chat', roomKey(roomId), target);
    };
  }
}

function parseSinceSeq(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const since = /^[0-9]{1,10}$/.test(header) ? Number(header) : NaN;
  if (!(since <= MAX_SEQ)) throw new ChatError('BAD_REQUEST', `since-seq must be an integer from 0 to ${MAX_SEQ}`);
  return since;
}
