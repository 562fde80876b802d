import { roomKey } from '../app/rooms.ts';
import type { Broker } from '../broker/broker.ts';
import { roomEventMessage } from '../broker/messages.ts';
import type { Logger } from '../logger.ts';
import type { StoredEvent } from '../store/event-log.ts';
import type { EventKey, OutboxStore } from '../store/outbox-store.ts';
import type { SweepLock } from './sweep-lock.ts';

export interface OutboxOptions {
  /** How often a gateway tries to take the sweep. */
  sweepMs: number;
  /** An event stored this long ago and still unpublished counts as lost on its way to the broker. */
  ageMs: number;
  /** How long confirms gather before they are marked in one statement. */
  flushMs: number;
  /** Most events one sweep round publishes. */
  batch: number;
  /** Milliseconds since the epoch; gateways' clocks must roughly agree (NTP). */
  clock?: () => number;
  log: Logger;
}

/**
 * A stored room event is as good as sent. `publish` publishes an event right after it is stored and never fails:
 * a publish the broker did not confirm (broker down, confirm timed out) is left to the sweep, as is an event whose
 * gateway died between store and publish. Confirms are marked published in batches (`OutboxStore`).
 *
 * The sweep: every `sweepMs` the gateway that takes the SweepLock publishes again, from the store, the events stored
 * more than `ageMs` ago and still unpublished, marks what the broker confirmed, and lets the lock go. A republished
 * copy carries the event's stored identity (sender session and seq), so receivers that already have the event (their
 * room feed read it from the store) drop it in the outbound interceptor.
 */
export class Outbox {
  readonly stats = { republished: 0 };
  private confirmed: EventKey[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> | undefined;
  private closed = false;
  private readonly clock: () => number;

  constructor(
    private readonly broker: Broker,
    private readonly store: OutboxStore,
    private readonly lock: SweepLock,
    private readonly o: OutboxOptions,
  ) {
    this.clock = o.clock ?? Date.now;
  }

  /** Publishes a stored event. @returns whether the broker confirmed it; when not, the sweep publishes it later. */
  async publish(stored: StoredEvent): Promise<boolean> {
    try {
      await this.send(stored);
    } catch (err) {
      // Debug: during an outage every send fails, and the broker already logs the outage once.
      this.o.log.debug({ err, roomId: stored.event.roomId, seq: stored.event.seq }, 'publish failed; the outbox sweep publishes it later');
      return false;
    }
    this.confirmed.push(keyOf(stored));
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => void this.flush(), this.o.flushMs);
      this.flushTimer.unref();
    }
    return true;
  }

  /** Marks every confirm gathered so far, in one statement. A failed mark only means the sweep publishes again. */
  async flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const keys = this.confirmed;
    this.confirmed = [];
    await this.store.markPublished(keys).catch((err: unknown) => this.o.log.warn({ err, events: keys.length }, 'marking events published failed'));
  }

  /** Sweeps now, then every `sweepMs` until close(); after a full batch, at once again (a backlog after a long outage). */
  start(): void {
    const round = (delayMs: number): void => {
      if (this.closed) return;
      this.sweepTimer = setTimeout(() => {
        this.sweep().then(
          (published) => round(published === this.o.batch ? 0 : this.o.sweepMs),
          (err: unknown) => {
            this.o.log.warn({ err }, 'outbox sweep failed');
            round(this.o.sweepMs);
          },
        );
      }, delayMs);
      this.sweepTimer.unref();
    };
    round(0);
  }

  /** One round. @returns how many events it published again (0 when another gateway holds the sweep or the broker is down). */
  sweep(): Promise<number> {
    this.sweeping ??= this.sweepOnce().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  /** Stops sweeping and marks what was confirmed. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.sweepTimer);
    await this.sweeping?.catch(() => {});
    await this.flush();
  }

  private async sweepOnce(): Promise<number> {
    if (this.broker.health() === 'down') return 0;
    const lease = await this.lock.tryAcquire();
    if (!lease) return 0;
    try {
      const due = await this.store.unpublished(new Date(this.clock() - this.o.ageMs), this.o.batch);
      // All at once, in seq order within each room: one channel keeps the order of its publishes.
      const results = await Promise.allSettled(due.map((stored) => this.send(stored)));
      const published = due.filter((_, i) => results[i]!.status === 'fulfilled');
      await this.store.markPublished(published.map(keyOf));
      this.stats.republished += published.length;
      if (published.length < due.length) this.o.log.warn({ failed: due.length - published.length }, 'outbox sweep: publishes failed; next round retries');
      return published.length;
    } finally {
      await lease.release();
    }
  }

  private send(stored: StoredEvent): Promise<void> {
    const origin = { session: stored.senderSession, seq: stored.senderSeq };
    return this.broker.publish('chat', roomKey(stored.event.roomId), roomEventMessage(stored.event, origin));
  }
}

const keyOf = (stored: StoredEvent): EventKey => ({ roomId: stored.event.roomId, seq: stored.event.seq });
