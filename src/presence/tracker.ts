import type { Logger } from '../logger.ts';
import type { Presence } from './presence.ts';

export interface PresenceTrackerOptions {
  /** Tells the user's rooms that they came online or went offline. */
  announce(userId: string, online: boolean): Promise<void>;
  /** How often this gateway refreshes its sessions' entries and reaps expired ones (well under the engine's ttlMs). */
  refreshMs: number;
  /** The engine's graceMs: a disconnected session is reaped, and its user announced offline, right after it. */
  graceMs: number;
  log: Logger;
}

/** Past a linger's end before reaping it: covers timer and clock granularity, and gathers nearby disconnects into one reap. */
const REAP_SLACK_MS = 50;

/**
 * Drives a Presence engine for one gateway: registers its sessions as they connect and disconnect, refreshes
 * their entries every `refreshMs`, reaps expired entries (its own lingering sessions right after their grace,
 * every gateway's on each refresh), and announces each transition: online when a user's first session connects
 * (or their entries come back after a stall), offline when the reap removes their last entry.
 */
export class PresenceTracker {
  readonly #timer: NodeJS.Timeout;
  /** When this gateway's lingering sessions expire, oldest first. */
  readonly #lingerEnds: number[] = [];
  #reapTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly presence: Presence,
    private readonly opts: PresenceTrackerOptions,
  ) {
    this.#timer = setInterval(() => void this.#tick(), opts.refreshMs).unref();
  }

  /** Resolves once the session counts everywhere; the announcement goes out after. Never rejects: presence is not worth a refused CONNECT. */
  async connected(userId: string, sessionId: string): Promise<void> {
    try {
      if (await this.presence.connect(userId, sessionId)) this.#announce(userId, true);
    } catch (err) {
      this.opts.log.warn({ err, userId }, 'presence: could not record a session (the next refresh will)');
    }
  }

  disconnected(userId: string, sessionId: string): void {
    if (this.#closed) return;
    this.presence.disconnect(userId, sessionId).catch((err: unknown) => {
      this.opts.log.warn({ err, userId }, 'presence: could not end a session (it expires unrefreshed)');
    });
    this.#lingerEnds.push(Date.now() + this.opts.graceMs);
    this.#armReap();
  }

  online(userIds: readonly string[]): Promise<Set<string>> {
    return this.presence.online(userIds);
  }

  /** Stops the timers and lingers this gateway's sessions: another gateway reaps and announces whoever does not come back. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#reapTimer);
    await this.presence.close();
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    try {
      for (const userId of await this.presence.refresh()) this.#announce(userId, true);
    } catch (err) {
      this.opts.log.warn({ err }, 'presence: refresh failed');
    }
    await this.#reap();
  }

  /** One reap timer at a time, due at the oldest lingering session's end. */
  #armReap(): void {
    const due = this.#lingerEnds[0];
    if (this.#reapTimer || due === undefined || this.#closed) return;
    this.#reapTimer = setTimeout(async () => {
      const now = Date.now();
      while (this.#lingerEnds[0] !== undefined && this.#lingerEnds[0] <= now) this.#lingerEnds.shift();
      await this.#reap();
      this.#reapTimer = undefined;
      this.#armReap();
    }, Math.max(0, due - Date.now()) + REAP_SLACK_MS);
    this.#reapTimer.unref();
  }

  async #reap(): Promise<void> {
    if (this.#closed) return;
    try {
      for (const userId of await this.presence.reap()) this.#announce(userId, false);
    } catch (err) {
      this.opts.log.warn({ err }, 'presence: reap failed');
    }
  }

  #announce(userId: string, online: boolean): void {
    if (this.#closed) return;
    this.opts.announce(userId, online).catch((err: unknown) => {
      this.opts.log.warn({ err, userId, online }, 'presence: could not announce');
    });
  }
}
