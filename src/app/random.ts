import type { Fanout, FanoutTarget } from '../delivery/fanout.ts';
import type { Logger } from '../logger.ts';
import type { Matcher } from '../random/matcher.ts';
import type { StompSession } from '../stomp/session.ts';
import type { RoomStore } from '../store/rooms.ts';
import { userKey, type RoomService } from './rooms.ts';

export interface RandomChatOptions {
  /** RANDOM_MATCH_TIMEOUT_S in milliseconds: how long a join waits for a stranger. */
  timeoutMs: number;
  log: Logger;
}

/** Past a wait's deadline before expiring it: timers may fire a little early against the wall clock the deadline uses. */
const EXPIRE_SLACK_MS = 50;

/**
 * Random stranger chat on one gateway: puts users in the wait queue every gateway shares (a Matcher), makes each
 * pair a fresh `random` room with both as members and tells both `MATCHED {roomId}` on their notifications; tells
 * `MATCH_TIMEOUT` when a wait ends unpaired. A user leaves the queue on `/app/random.leave`, when their last
 * session on this gateway ends, or when their long poll's request goes away.
 */
export class RandomChat {
  /** Users who joined through this gateway, with their live sessions here: the last one ending takes them out. */
  readonly #sessions = new Map<string, Set<StompSession>>();
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly matcher: Matcher,
    private readonly rooms: RoomService,
    private readonly roomStore: RoomStore,
    private readonly fanout: Fanout,
    private readonly opts: RandomChatOptions,
  ) {}

  /** `/app/random.join`: the answer comes as MATCHED (or MATCH_TIMEOUT) on the user's notifications. */
  async joinSession(session: StompSession): Promise<void> {
    const sessions = this.#sessions.get(session.userId) ?? new Set();
    sessions.add(session);
    this.#sessions.set(session.userId, sessions);
    await this.#join(session.userId);
  }

  /** `/app/random.leave`. */
  async leaveSession(session: StompSession): Promise<void> {
    this.#sessions.delete(session.userId);
    await this.matcher.leave(session.userId);
  }

  /** A session ended: the user's last one here that joined takes them out of the queue. */
  closed(session: StompSession): void {
    const sessions = this.#sessions.get(session.userId);
    if (!sessions?.delete(session) || sessions.size > 0) return;
    this.#sessions.delete(session.userId);
    this.matcher.leave(session.userId).catch((err: unknown) => this.opts.log.warn({ err }, 'random: could not leave the queue'));
  }

  /**
   * `POST /api/random/match`: waits for a stranger. @returns the room, or null at the timeout (or when `signal`
   * aborts: the user leaves the queue).
   */
  async match(userId: string, signal: AbortSignal): Promise<string | null> {
    let answer!: (roomId: string | null) => void;
    const answered = new Promise<string | null>((resolve) => (answer = resolve));
    // Listens before joining: the MATCHED a stranger's gateway publishes cannot come before it is heard.
    const target: FanoutTarget = {
      offer(message) {
        const event = JSON.parse(message.body.toString()) as { type?: string; roomId?: string };
        if (event.type === 'MATCHED' && event.roomId) answer(event.roomId);
        else if (event.type === 'MATCH_TIMEOUT') answer(null);
        return [];
      },
    };
    const onAbort = (): void => {
      answer(null);
      this.matcher.leave(userId).catch((err: unknown) => this.opts.log.warn({ err }, 'random: could not leave the queue'));
    };
    await this.fanout.add('chat', userKey(userId), target);
    try {
      signal.addEventListener('abort', onAbort, { once: true });
      // The expiry answers too, so a MATCH_TIMEOUT the broker could not carry does not leave the poll hanging.
      const roomId = await this.#join(userId, () => answer(null));
      if (roomId) return roomId;
      return await answered;
    } finally {
      signal.removeEventListener('abort', onAbort);
      await this.fanout.remove('chat', userKey(userId), target);
    }
  }

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  /** Queues the user, or pairs them now; `onExpired` runs if this wait ends unpaired. @returns the room when paired at once. */
  async #join(userId: string, onExpired?: () => void): Promise<string | null> {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      void this.#expire(userId).then((expired) => expired && onExpired?.());
    }, this.opts.timeoutMs + EXPIRE_SLACK_MS);
    this.#timers.add(timer);
    const stranger = await this.matcher.join(userId, Date.now() + this.opts.timeoutMs);
    if (stranger === null) return null;
    const room = await this.roomStore.createRandom(stranger, userId);
    await Promise.all([stranger, userId].map((id) => this.rooms.notifyUser(id, { type: 'MATCHED', roomId: room.id })));
    return room.id;
  }

  /** Only a wait that ended unpaired (not one that was paired or left) is told MATCH_TIMEOUT. */
  async #expire(userId: string): Promise<boolean> {
    try {
      if (!(await this.matcher.expire(userId))) return false;
    } catch (err) {
      this.opts.log.warn({ err, userId }, 'random: could not expire a wait (the next join drops it as stale)');
      return false;
    }
    await this.rooms.notifyUser(userId, { type: 'MATCH_TIMEOUT' }).catch((err: unknown) => {
      this.opts.log.warn({ err, userId }, 'random: could not send MATCH_TIMEOUT');
    });
    return true;
  }
}
