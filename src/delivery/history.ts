/**
 * DeliveryHistory remembers, per receiver, which (sender session, sender seq) pairs reached it,
 * so that a copy the broker hands out again is dropped before it reaches the socket.
 * Engines side by side: `memory-history.ts` (embedded default) and `redis-history.ts`.
 *
 * The record per (receiver, sender) is a window: the highest seq seen plus the seqs seen in
 * (highest - window, highest]. A seq inside the window is a duplicate only if it was seen, so
 * copies arriving out of order are never mistaken for duplicates; a seq at or below
 * highest - window counts as delivered (a copy that old is a stale redelivery).
 *
 * Each check-and-update is guarded by a `SET NX PX` lock on (receiver, sender, seq), held from
 * `claim` until `settle`, across the socket write, so two consumers racing with the same copy
 * write it once.
 */

export interface DeliveryKey {
  /** The receiver's history id (stable across session-resume). */
  receiver: string;
  /** The connection session that sent the message. */
  sender: string;
  seq: number;
}

/** `deliver`: lock taken and not seen, write it then settle. `duplicate`: seen, drop it. `busy`: another consumer holds the lock, try again shortly. */
export type ClaimOutcome = 'deliver' | 'duplicate' | 'busy';

export interface DeliveryHistory {
  /** Lock and check a batch in one round trip, whatever its size. */
  claim(keys: readonly DeliveryKey[]): Promise<ClaimOutcome[]>;
  /**
   * Record `written` as delivered and release their locks; release the locks of `abandoned`
   * (claimed but not written, e.g. the socket closed) without recording. One round trip.
   */
  settle(written: readonly DeliveryKey[], abandoned: readonly DeliveryKey[]): Promise<void>;
  /** Keep `receiver`'s history for `ttlMs` more (called on connect, refreshed while alive, and at disconnect for resume). */
  retain(receiver: string, ttlMs: number): Promise<void>;
  close(): Promise<void>;
}
