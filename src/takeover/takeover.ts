/**
 * Takeover: at most one live connection holds a delivery history (a `session-resume` identity) at a time, on any
 * gateway. A connection that claims a history someone else holds takes it over, and the previous holder is told
 * (on its own gateway) so that it can end with ERROR: two tabs resuming one token would otherwise share one
 * history, and one of them would silently get nothing.
 * Engines side by side: `memory-takeover.ts` (one process) and `redis-takeover.ts` (every gateway).
 */
export interface Takeover {
  /** Hold `historyId` as `holder` (a connection id); resolves once a previous holder, if any, has been told. */
  claim(historyId: string, holder: string): Promise<void>;
  /** Keep a claim alive (claims expire, so that a dead gateway's holders do not stay forever); a no-op if `holder` lost it. */
  renew(historyId: string, holder: string): Promise<void>;
  /** Give `historyId` up, if `holder` still holds it. */
  release(historyId: string, holder: string): Promise<void>;
  /** Call `onTakenOver` when a claim by another connection takes over a history `holder` holds; returns an unwatch function. */
  watch(holder: string, onTakenOver: () => void): () => void;
  close(): Promise<void>;
}
