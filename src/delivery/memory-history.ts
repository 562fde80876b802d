import type { ClaimOutcome, DeliveryHistory, DeliveryKey } from './history.ts';
import { assertKeys, assertPositiveInteger } from './validate.ts';

export interface MemoryHistoryOptions {
  /** Seqs per (receiver, sender) remembered below the highest one. */
  window: number;
  /** How long a claim's lock lives if it is never settled (as PX does in the Redis engine). */
  lockTtlMs?: number;
  /** The clock locks and retain() TTLs run on (tests move it by hand). */
  now?: () => number;
}

const DEFAULT_LOCK_TTL_MS = 30_000;
/** Expiry is checked on every access; the sweep only gives back the memory of what nobody asks about any more. */
const SWEEP_INTERVAL_MS = 30_000;

/** The highest seq seen, and a ring bitmap (indexed by seq mod size) of the seqs seen in (top - size, top]. */
class SeqWindow {
  #top: number;
  readonly #bits: Uint8Array;

  constructor(
    private readonly size: number,
    seq: number,
  ) {
    this.#bits = new Uint8Array(Math.ceil(size / 8));
    this.#top = seq;
    this.#flip(seq, true);
  }

  has(seq: number): boolean {
    if (seq > this.#top) return false;
    if (seq <= this.#top - this.size) return true;
    const i = this.#index(seq);
    return (this.#bits[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  add(seq: number): void {
    if (seq > this.#top) {
      // Slots between the old top and the new one now stand for seqs not seen yet.
      if (seq - this.#top >= this.size) this.#bits.fill(0);
      else for (let s = this.#top + 1; s < seq; s++) this.#flip(s, false);
      this.#top = seq;
      this.#flip(seq, true);
    } else if (seq > this.#top - this.size) {
      this.#flip(seq, true);
    }
  }

  #index(seq: number): number {
    return ((seq % this.size) + this.size) % this.size;
  }

  #flip(seq: number, on: boolean): void {
    const i = this.#index(seq);
    if (on) this.#bits[i >> 3]! |= 1 << (i & 7);
    else this.#bits[i >> 3]! &= ~(1 << (i & 7));
  }
}

interface ReceiverHistory {
  windows: Map<string, SeqWindow>;
  /** Infinity until retain() is called, as a Redis key without a TTL. */
  expiresAt: number;
}

/** In-process DeliveryHistory: one gateway, no Redis. Same semantics as RedisHistory, locks and expiry included. */
export class MemoryHistory implements DeliveryHistory {
  readonly #window: number;
  readonly #lockTtlMs: number;
  readonly #now: () => number;
  readonly #receivers = new Map<string, ReceiverHistory>();
  /** Lock key -> expiry time. */
  readonly #locks = new Map<string, number>();
  readonly #sweeper: NodeJS.Timeout;
  #closed = false;

  constructor(opts: MemoryHistoryOptions) {
    assertPositiveInteger('window', opts.window);
    this.#window = opts.window;
    this.#lockTtlMs = opts.lockTtlMs ?? DEFAULT_LOCK_TTL_MS;
    assertPositiveInteger('lockTtlMs', this.#lockTtlMs);
    this.#now = opts.now ?? Date.now;
    this.#sweeper = setInterval(() => this.#sweep(this.#now()), SWEEP_INTERVAL_MS).unref();
  }

  async claim(keys: readonly DeliveryKey[]): Promise<ClaimOutcome[]> {
    this.#assertOpen();
    assertKeys(keys);
    const now = this.#now();
    return keys.map((key) => {
      const lock = lockKey(key);
      if ((this.#locks.get(lock) ?? 0) > now) return 'busy';
      if (this.#receiver(key.receiver, now)?.windows.get(key.sender)?.has(key.seq)) return 'duplicate';
      this.#locks.set(lock, now + this.#lockTtlMs);
      return 'deliver';
    });
  }

  async settle(written: readonly DeliveryKey[], abandoned: readonly DeliveryKey[]): Promise<void> {
    this.#assertOpen();
    assertKeys(written);
    assertKeys(abandoned);
    const now = this.#now();
    for (const key of written) {
      let receiver = this.#receiver(key.receiver, now);
      if (!receiver) {
        receiver = { windows: new Map(), expiresAt: Infinity };
        this.#receivers.set(key.receiver, receiver);
      }
      const window = receiver.windows.get(key.sender);
      if (window) window.add(key.seq);
      else receiver.windows.set(key.sender, new SeqWindow(this.#window, key.seq));
    }
    // One owner per process, so a lock still live is ours to release.
    for (const key of [...written, ...abandoned]) this.#locks.delete(lockKey(key));
  }

  async retain(receiver: string, ttlMs: number): Promise<void> {
    this.#assertOpen();
    const now = this.#now();
    const history = this.#receiver(receiver, now) ?? { windows: new Map(), expiresAt: Infinity };
    history.expiresAt = now + ttlMs;
    this.#receivers.set(receiver, history);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#receivers.clear();
    this.#locks.clear();
  }

  #receiver(receiver: string, now: number): ReceiverHistory | undefined {
    const history = this.#receivers.get(receiver);
    if (history && history.expiresAt <= now) {
      this.#receivers.delete(receiver);
      return undefined;
    }
    return history;
  }

  #sweep(now: number): void {
    for (const [id, history] of this.#receivers) if (history.expiresAt <= now) this.#receivers.delete(id);
    for (const [lock, expiresAt] of this.#locks) if (expiresAt <= now) this.#locks.delete(lock);
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('MemoryHistory is closed');
  }
}

function lockKey(key: DeliveryKey): string {
  return JSON.stringify([key.receiver, key.sender, key.seq]);
}
