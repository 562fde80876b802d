import { setTimeout as sleep } from 'node:timers/promises';
import type { ClaimOutcome, DeliveryHistory, DeliveryKey } from './history.ts';

export interface OutboundCopy {
  key: DeliveryKey;
  /** Returns false when the receiver's socket is gone. */
  write(): boolean;
  /**
   * The client asked for this copy again (a `since-seq` replay): write it even if the history has it, for the
   * history may have recorded a frame that went into a socket already dying. Still ordered, locked and recorded.
   */
  replay?: boolean;
  /** Called when the interceptor drops this copy as delivered before. */
  onDropped?(): void;
}

export interface InterceptorStats {
  written: number;
  dropped: number;
  abandoned: number;
}

export interface OutboundInterceptorOptions {
  /** Pause before asking again about a copy another consumer holds the lock of. */
  busyRetryMs?: number;
  /** Pause before trying again to record copies that were written when the history failed to. */
  settleRetryMs?: number;
}

const DEFAULT_BUSY_RETRY_MS = 20;
const DEFAULT_SETTLE_RETRY_MS = 200;

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Rejections reach the deliveries that wait on them; an unobserved one is not an error.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * One copy's place in its receiver's queue. Copies to one receiver are written in the order
 * deliver() was called, so each waits for `prev` (the copy before it to the same receiver).
 */
interface Slot {
  readonly copy: OutboundCopy;
  readonly prev: Slot | undefined;
  /** Resolves once the first claim's outcome is known and `slow` is set; never rejects. */
  readonly known: Deferred;
  /** Resolves when this copy and every earlier one to its receiver are written, dropped or abandoned; rejects if one failed. */
  readonly done: Deferred;
  /** Its `done` may take up to a lock's PX: it, or a copy before it, waits on another consumer's lock. */
  slow: boolean;
  /** Its last claim came back 'busy'. */
  busy: boolean;
  /** Not yet written, dropped, abandoned or failed. */
  open: boolean;
  finished: boolean;
}

/**
 * Stands between the broker and the sockets: every copy of a broker delivery is claimed in the
 * DeliveryHistory, written only if it was never delivered, and settled before deliver() resolves,
 * so the caller acks only what is recorded and a broker redelivery is dropped.
 */
export class OutboundInterceptor {
  readonly stats: InterceptorStats = { written: 0, dropped: 0, abandoned: 0 };
  readonly #history: DeliveryHistory;
  readonly #busyRetryMs: number;
  readonly #settleRetryMs: number;
  #closed = false;
  /** The last copy handed in for each receiver, while it is unfinished. */
  readonly #tails = new Map<string, Slot>();

  constructor(history: DeliveryHistory, opts: OutboundInterceptorOptions = {}) {
    this.#history = history;
    this.#busyRetryMs = opts.busyRetryMs ?? DEFAULT_BUSY_RETRY_MS;
    this.#settleRetryMs = opts.settleRetryMs ?? DEFAULT_SETTLE_RETRY_MS;
  }

  /** Stop retrying records (the gateway is stopping): deliveries still waiting on one reject. */
  close(): void {
    this.#closed = true;
  }

  /**
   * Settle the copies of one broker delivery: each (receiver, sender, seq) is written at most once ever,
   * and every copy not yet delivered is written. Resolves when all are written, dropped or abandoned.
   * Rejects when a history call fails, writing nothing it has not claimed; the caller must not ack, and the
   * broker's redelivery finishes the job. Later deliveries to the same receivers then reject too, to keep order.
   * Copies it wrote are the exception: it records them however long the history takes to come back (see #settle).
   */
  async deliver(copies: readonly OutboundCopy[]): Promise<void> {
    // Queue places are taken now, synchronously, so that call order is write order.
    const slots = copies.map((copy) => this.#enqueue(copy));
    try {
      let round = slots;
      let first = true;
      while (round.length > 0) {
        if (!first) round = await this.#awaitRetry(round);
        const outcomes = await this.#history.claim(round.map((s) => s.copy.key));
        const written: DeliveryKey[] = [];
        const released: DeliveryKey[] = [];
        const results = await Promise.allSettled(
          round.map((slot, i) => this.#resolve(slot, outcomes[i]!, first, written, released)),
        );
        if (written.length > 0 || released.length > 0) await this.#settle(written, released);
        const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failure) throw failure.reason;
        round = slots.filter((s) => s.open);
        first = false;
      }
    } catch (err) {
      for (const slot of slots) if (slot.open) this.#fail(slot, err);
      throw err;
    }
  }

  /**
   * Written frames are on the wire: were their record lost, a redelivery would write them again once their locks
   * expire. So a failed settle is tried again (the delivery stays unacked meanwhile) until it succeeds or the
   * interceptor is closed; the locks of abandoned copies are left to expire.
   */
  async #settle(written: DeliveryKey[], released: DeliveryKey[]): Promise<void> {
    try {
      await this.#history.settle(written, released);
    } catch (err) {
      if (written.length === 0) throw err;
      let last = err;
      while (!this.#closed) {
        await sleep(this.#settleRetryMs);
        try {
          await this.#history.settle(written, []);
          return;
        } catch (again) {
          last = again;
        }
      }
      throw last;
    }
  }

  #enqueue(copy: OutboundCopy): Slot {
    const slot: Slot = {
      copy,
      prev: this.#tails.get(copy.key.receiver),
      known: deferred(),
      done: deferred(),
      slow: false,
      busy: false,
      open: true,
      finished: false,
    };
    this.#tails.set(copy.key.receiver, slot);
    return slot;
  }

  /**
   * Act on one claim outcome. A copy holding a lock never waits on a slow predecessor: it gives the
   * lock back and retries once the predecessor is done, so no lock outlives its PX while it waits.
   */
  async #resolve(
    slot: Slot,
    outcome: ClaimOutcome,
    first: boolean,
    written: DeliveryKey[],
    released: DeliveryKey[],
  ): Promise<void> {
    const { prev, copy } = slot;
    let prevSlow = false;
    if (first) {
      if (prev) {
        await prev.known.promise;
        prevSlow = !prev.finished && prev.slow;
      }
      slot.slow = outcome === 'busy' || prevSlow;
    }
    slot.busy = outcome === 'busy';
    slot.known.resolve();
    if (outcome === 'busy') return;
    if (outcome === 'duplicate' && !copy.replay) {
      this.stats.dropped++;
      copy.onDropped?.();
      this.#close(slot);
      return;
    }
    if (prevSlow) {
      released.push(copy.key);
      return;
    }
    try {
      await prev?.done.promise;
    } catch (err) {
      released.push(copy.key);
      throw err;
    }
    let ok: boolean;
    try {
      ok = copy.write();
    } catch (err) {
      released.push(copy.key);
      throw err;
    }
    if (ok) {
      this.stats.written++;
      written.push(copy.key);
    } else {
      this.stats.abandoned++;
      released.push(copy.key);
    }
    this.#close(slot);
  }

  /**
   * Before a retry: the copies to claim again are the first open one of each receiver (a later one of the same
   * receiver in this delivery waits for a later round, or it would wait here on a copy that is itself waiting to be
   * retried); each of those waits until its predecessor is done, so a lock taken now is written at once; and a pause
   * if a lock was busy.
   */
  async #awaitRetry(open: readonly Slot[]): Promise<Slot[]> {
    const waiting = new Set(open);
    const heads = open.filter((s) => !s.prev || !waiting.has(s.prev));
    await Promise.all(heads.map((s) => s.prev?.done.promise));
    if (heads.some((s) => s.busy)) await sleep(this.#busyRetryMs);
    return heads;
  }

  /** This copy is resolved; its place is done once every earlier copy to the receiver is. */
  #close(slot: Slot): void {
    slot.open = false;
    const before = slot.prev?.done.promise ?? Promise.resolve();
    before.then(
      () => this.#finish(slot, undefined),
      (err: unknown) => this.#finish(slot, err ?? new Error('earlier delivery failed')),
    );
  }

  #fail(slot: Slot, err: unknown): void {
    slot.open = false;
    slot.known.resolve();
    this.#finish(slot, err ?? new Error('delivery failed'));
  }

  #finish(slot: Slot, err: unknown): void {
    slot.finished = true;
    if (err === undefined) slot.done.resolve();
    else slot.done.reject(err);
    const receiver = slot.copy.key.receiver;
    if (this.#tails.get(receiver) === slot) this.#tails.delete(receiver);
  }
}
