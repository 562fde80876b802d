import type { BrokerMessage } from '../broker/broker.ts';
import { roomEventMessage } from '../broker/messages.ts';
import type { Logger } from '../logger.ts';
import type { StoredEvent } from '../store/messages.ts';
import type { FanoutTarget } from './fanout.ts';
import type { OutboundCopy, OutboundInterceptor } from './interceptor.ts';

export interface RoomFeedOptions {
  roomId: string;
  /** The last seq the subscriber already has: its `since-seq`, or the room's last seq when it subscribed. */
  afterSeq: number;
  /**
   * `afterSeq` is the client's own `since-seq`: it holds nothing above it, so the first read is replayed whatever
   * the history says (a resumed history may hold frames written into the old socket as it died).
   */
  clientSince: boolean;
  /** A copy of `message` for this subscriber, or null when its session is gone. */
  copy(message: BrokerMessage): OutboundCopy | null;
  interceptor: OutboundInterceptor;
  since(roomId: string, afterSeq: number, limit: number): Promise<StoredEvent[]>;
  lastSeq(roomId: string): Promise<number>;
  /** More than `replayLimit` events are missing: tell the client to page history from `fromSeq` over REST. */
  resync(fromSeq: number): void;
  replayLimit: number;
  /** How long an out-of-order event waits for the ones before it to arrive live before they are read from the store. */
  gapWaitMs: number;
  log: Logger;
}

/**
 * One subscriber's view of a room: its events in seq order, gap-free. Events that overtook an earlier one
 * (published by another gateway, or after a publish that failed) are held until the gap closes, or read from
 * the store after `gapWaitMs`. Replay on subscribe (`since-seq`) uses the same path, so there is no gap and no
 * duplicate between replay and live. Events without a seq (READ, TYPING, PRESENCE) pass straight through.
 * The feed only orders: whether a copy was delivered before is the outbound interceptor's call alone.
 */
export class RoomFeed implements FanoutTarget {
  /** The next seq this subscriber should see. */
  private next: number;
  /** The highest seq actually written to the socket; a failed delivery restarts from here. */
  private written: number;
  private readonly held = new Map<number, BrokerMessage>();
  private filling = false;
  /** A fill was asked for while one ran: run another once it ends, for it may have read the store too early. */
  private refill = false;
  private gapTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The next read from the store is the subscription's first: a replay when `clientSince`. */
  private firstRead: boolean;

  constructor(private readonly o: RoomFeedOptions) {
    this.next = o.afterSeq + 1;
    this.written = o.afterSeq;
    this.firstRead = o.clientSince;
  }

  /** Replay what the subscriber missed, then release what arrived live meanwhile. */
  start(): Promise<void> {
    return this.fill();
  }

  /**
   * Read from the store whatever may have been missed: after the broker link comes back, events published
   * while this gateway could not be routed to may exist only there.
   */
  catchUp(): void {
    this.fill().catch((err: unknown) => this.o.log.warn({ err, roomId: this.o.roomId }, 'catch-up failed'));
  }

  stop(): void {
    this.stopped = true;
    this.clearGapTimer();
    this.held.clear();
  }

  offer(message: BrokerMessage): OutboundCopy[] {
    const seq = seqOf(message);
    // Before the subscription began: the client has it (since-seq) or pages it over REST. A late copy of such an
    // event (the outbox sweep republishing it) may be missing from a new receiver's history, so only the feed knows.
    if (seq !== null && seq <= this.o.afterSeq) return [];
    // Without a seq there is no order to keep; below `next` it is a copy of one already handed out, and the
    // interceptor, which alone judges duplicates, drops it (or writes it, should the history not have it).
    if (seq === null || seq < this.next) return this.copies([message]);
    if (this.filling || seq > this.next) {
      this.held.set(seq, message);
      this.armGapTimer();
      return [];
    }
    return this.copies(this.takeRun(message));
  }

  failed(): void {
    // Restart from what surely reached the socket; the history drops whatever of the rest was delivered after all.
    this.next = this.written + 1;
    this.held.clear();
    this.armGapTimer();
  }

  /** `first` (which is `next`) and every held event that follows it without a gap. */
  private takeRun(first: BrokerMessage): BrokerMessage[] {
    const run = [first];
    this.next++;
    for (let m = this.held.get(this.next); m; m = this.held.get(this.next)) {
      this.held.delete(this.next);
      run.push(m);
      this.next++;
    }
    for (const seq of this.held.keys()) if (seq < this.next) this.held.delete(seq);
    if (this.held.size === 0) this.clearGapTimer();
    return run;
  }

  private copies(messages: BrokerMessage[], replay = false): OutboundCopy[] {
    const out: OutboundCopy[] = [];
    for (const m of messages) {
      const copy = this.o.copy(m);
      if (!copy) continue;
      const seq = seqOf(m);
      out.push(
        seq === null
          ? copy
          : {
              key: copy.key,
              replay,
              write: () => {
                const ok = copy.write();
                if (ok && seq > this.written) this.written = seq;
                return ok;
              },
            },
      );
    }
    return out;
  }

  /** Cleared means unset too: armGapTimer() takes a set field for a timer still pending. */
  private clearGapTimer(): void {
    clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
  }

  private armGapTimer(): void {
    if (this.gapTimer || this.filling || this.stopped) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      this.catchUp();
    }, this.o.gapWaitMs);
    this.gapTimer.unref();
  }

  /** Read from the store everything after `next - 1` (up to the replay limit) and deliver it, then release held events. */
  private async fill(): Promise<void> {
    if (this.stopped) return;
    if (this.filling) {
      this.refill = true;
      return;
    }
    this.filling = true;
    this.refill = false;
    this.clearGapTimer();
    try {
      const limit = this.o.replayLimit;
      const replay = this.firstRead;
      this.firstRead = false;
      const stored = await this.o.since(this.o.roomId, this.next - 1, limit + 1);
      if (stored.length > limit) {
        this.o.resync(this.next);
        this.next = (await this.o.lastSeq(this.o.roomId)) + 1;
      } else if (stored.length > 0) {
        const messages = stored.map((s) => roomEventMessage(s.event, { session: s.senderSession, seq: s.senderSeq }));
        this.next = stored[stored.length - 1]!.event.seq + 1;
        await this.o.interceptor.deliver(this.copies(messages, replay));
      }
      this.filling = false;
      if (this.stopped) return;
      for (const seq of this.held.keys()) if (seq < this.next) this.held.delete(seq);
      const first = this.held.get(this.next);
      if (first) {
        this.held.delete(this.next);
        await this.o.interceptor.deliver(this.copies(this.takeRun(first)));
      }
      if (this.refill) await this.fill();
      else if (this.held.size > 0) this.armGapTimer();
    } catch (err) {
      this.filling = false;
      this.failed();
      throw err;
    }
  }
}

function seqOf(message: BrokerMessage): number | null {
  const raw = message.headers.seq;
  return raw === undefined ? null : Number(raw);
}
