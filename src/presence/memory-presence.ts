import { assertIds, checkOptions, type Presence, type PresenceOptions } from './presence.ts';

/** In-process Presence: one gateway, no Redis. Same semantics as RedisPresence, expiry and grace included. */
export class MemoryPresence implements Presence {
  readonly #opts: Required<PresenceOptions>;
  /** userId -> sessionId -> expiry time. */
  readonly #entries = new Map<string, Map<string, number>>();
  /** The sessions connected through this engine and not disconnected: sessionId -> userId. */
  readonly #connected = new Map<string, string>();
  #closed = false;

  constructor(opts: PresenceOptions) {
    this.#opts = checkOptions(opts);
  }

  async connect(userId: string, sessionId: string): Promise<boolean> {
    this.#assertOpen();
    assertIds(userId, sessionId);
    const now = this.#opts.clock();
    const cameOnline = !this.#isLive(userId, now);
    this.#connected.set(sessionId, userId);
    this.#set(userId, sessionId, now + this.#opts.ttlMs);
    return cameOnline;
  }

  async disconnect(userId: string, sessionId: string): Promise<void> {
    this.#assertOpen();
    assertIds(userId, sessionId);
    this.#linger([[sessionId, userId]]);
  }

  async online(userIds: readonly string[]): Promise<Set<string>> {
    this.#assertOpen();
    const now = this.#opts.clock();
    return new Set(userIds.filter((id) => this.#isLive(id, now)));
  }

  async refresh(): Promise<string[]> {
    this.#assertOpen();
    const now = this.#opts.clock();
    const back: string[] = [];
    for (const [sessionId, userId] of this.#connected) {
      if (!this.#isLive(userId, now)) back.push(userId);
      this.#set(userId, sessionId, now + this.#opts.ttlMs);
    }
    return back;
  }

  async reap(): Promise<string[]> {
    this.#assertOpen();
    const now = this.#opts.clock();
    const offline: string[] = [];
    for (const [userId, sessions] of this.#entries) {
      for (const [sessionId, expiresAt] of sessions) if (expiresAt <= now) sessions.delete(sessionId);
      if (sessions.size === 0) {
        this.#entries.delete(userId);
        offline.push(userId);
      }
    }
    return offline;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#linger([...this.#connected]);
    this.#closed = true;
  }

  /** Stop refreshing the sessions and let each existing entry expire `graceMs` from now. */
  #linger(sessions: ReadonlyArray<readonly [sessionId: string, userId: string]>): void {
    const until = this.#opts.clock() + this.#opts.graceMs;
    for (const [sessionId, userId] of sessions) {
      if (this.#connected.get(sessionId) === userId) this.#connected.delete(sessionId);
      const entries = this.#entries.get(userId);
      if (entries?.has(sessionId)) entries.set(sessionId, until);
    }
  }

  #set(userId: string, sessionId: string, expiresAt: number): void {
    let sessions = this.#entries.get(userId);
    if (!sessions) {
      sessions = new Map();
      this.#entries.set(userId, sessions);
    }
    sessions.set(sessionId, expiresAt);
  }

  #isLive(userId: string, now: number): boolean {
    for (const expiresAt of this.#entries.get(userId)?.values() ?? []) if (expiresAt > now) return true;
    return false;
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('MemoryPresence is closed');
  }
}
