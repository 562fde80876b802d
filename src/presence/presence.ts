/**
 * Presence: which users have a live STOMP session on some gateway. Engines side by side:
 * `memory-presence.ts` (embedded default, one gateway) and `redis-presence.ts` (shared by every gateway).
 *
 * Every session is an entry with an expiry time. An engine keeps the sessions connected through it (its
 * gateway's) and `refresh()` pushes their expiry `ttlMs` ahead; a gateway that dies without cleaning up stops
 * refreshing, so its users drop out after at most `ttlMs`. A user is online while any entry of theirs has not
 * expired.
 *
 * Flapping: a session that disconnects is not removed at once but lingers `graceMs` (and `close()` lingers all
 * of the gateway's sessions), so a client that reconnects within the grace, to any gateway, never looks
 * offline and causes no offline/online pair of events. Only `reap()` removes entries, and it reports each user
 * whose last entry it removed exactly once across all gateways: that is the offline transition.
 */
export interface Presence {
  /**
   * Records a session of `userId` connected through this engine's gateway and keeps it fresh from now on.
   * @returns true when the user had no live entry before (they came online).
   */
  connect(userId: string, sessionId: string): Promise<boolean>;
  /** The session ended: it stops being refreshed and lingers `graceMs`, then `reap()` removes it. */
  disconnect(userId: string, sessionId: string): Promise<void>;
  /** The users among `userIds` with a live entry, in one round trip whatever their number. */
  online(userIds: readonly string[]): Promise<Set<string>>;
  /**
   * Pushes the expiry of this gateway's connected sessions `ttlMs` ahead (and writes back any that had been
   * reaped, e.g. after a long stall).
   * @returns the users that had no live entry before (back online).
   */
  refresh(): Promise<string[]>;
  /** Removes every expired entry, of any gateway. @returns the users whose last entry it removed (gone offline). */
  reap(): Promise<string[]>;
  /** Lingers this gateway's connected sessions `graceMs`, as if each disconnected; the engine is unusable after. */
  close(): Promise<void>;
}

export interface PresenceOptions {
  /** How long an entry lives past its last refresh: a dead gateway's users are offline after at most this. */
  ttlMs: number;
  /** How long a disconnected session still counts, so a quick reconnect is no flap. */
  graceMs: number;
  /** Milliseconds since the epoch; every gateway's clock must roughly agree (NTP). */
  clock?: () => number;
}

/** Both engines accept the same options and ids. */
export function checkOptions(opts: PresenceOptions): Required<PresenceOptions> {
  if (!Number.isSafeInteger(opts.ttlMs) || opts.ttlMs <= 0) throw new TypeError(`ttlMs must be a positive integer, got ${opts.ttlMs}`);
  if (!Number.isSafeInteger(opts.graceMs) || opts.graceMs < 0) throw new TypeError(`graceMs must be a non-negative integer, got ${opts.graceMs}`);
  return { ttlMs: opts.ttlMs, graceMs: opts.graceMs, clock: opts.clock ?? Date.now };
}

export function assertIds(...ids: readonly string[]): void {
  if (ids.some((id) => id === '')) throw new TypeError('user and session ids must be non-empty');
}
