import type { AuditLog } from '../audit.ts';
import type { Principal, TokenService } from '../auth/tokens.ts';
import { ChatError } from '../contract/errors.ts';
import type { DeliveryHistory } from '../delivery/history.ts';
import type { Logger } from '../logger.ts';
import type { PresenceTracker } from '../presence/tracker.ts';
import type { Frame } from '../stomp/frame.ts';
import type { StompSession } from '../stomp/session.ts';
import type { Takeover } from '../takeover/takeover.ts';
import type { ErrorChannel } from './error-channel.ts';

export interface ConnectionsOptions {
  resumeTtlS: number;
  tokenGraceS: number;
  /** How often live sessions' delivery histories (and takeover claims) are kept alive; a third of the resume TTL by default. */
  renewEveryMs?: number;
}

/** What an accepted session set up, undone when it ends. */
export interface SessionState {
  /** What to undo on UNSUBSCRIBE or disconnect, by subscription id. */
  cleanups: Map<string, () => Promise<void> | void>;
  expiryTimer?: NodeJS.Timeout;
  unwatchTakeover(): void;
}

/**
 * Accepted connections: authenticates CONNECT (access token, `session-resume`), registers the session (presence,
 * takeover of a resumed history), keeps a live session's delivery history from expiring, watches
 * its token's expiry, and undoes all of it when the session ends, however it ends.
 */
export class Connections {
  private readonly states = new Map<StompSession, SessionState>();
  private readonly renewTimer: NodeJS.Timeout;

  constructor(
    private readonly tokens: TokenService,
    private readonly history: DeliveryHistory,
    private readonly presence: PresenceTracker,
    private readonly takeover: Takeover,
    private readonly errors: ErrorChannel,
    private readonly audit: AuditLog,
    private readonly options: ConnectionsOptions,
    private readonly log: Logger,
  ) {
    this.renewTimer = setInterval(() => this.renewAll(), options.renewEveryMs ?? (options.resumeTtlS * 1000) / 3).unref();
  }

  get count(): number {
    return this.states.size;
  }

  async connect(session: StompSession, frame: Frame): Promise<Record<string, string>> {
    let principal: Principal;
    try {
      principal = await this.tokens.verifyAccess(tokenOf(frame.headers));
    } catch (err) {
      this.audit.record('token_refused', { session: session.id, reason: err instanceof Error ? err.message : String(err) });
      throw err;
    }
    session.identify(principal.userId, principal.username); // counts toward MAX_CONNECTIONS_PER_USER
    const resume = frame.headers['session-resume'];
    if (resume) {
      const historyId = await this.tokens.verifyResume(resume, principal.userId);
      if (!historyId) {
        this.audit.record('token_refused', { session: session.id, user: principal.userId, reason: 'invalid session-resume token' });
        throw new ChatError('UNAUTHORIZED', 'invalid session-resume token');
      }
      session.historyId = historyId;
    }
    const ttlMs = this.options.resumeTtlS * 1000;
    const unwatchTakeover = this.takeover.watch(session.id, () => {
      session.fail('session taken over', 'another connection resumed this session', {}, 'taken_over');
    });
    let resumeToken: string;
    try {
      [resumeToken] = await Promise.all([
        this.tokens.issueResume(session.historyId, principal.userId, this.options.resumeTtlS),
        this.history.retain(session.historyId, ttlMs),
        this.takeover.claim(session.historyId, session.id),
      ]);
      await this.presence.connected(principal.userId, session.id);
    } catch (err) {
      unwatchTakeover();
      this.takeover.release(session.historyId, session.id).catch(() => {});
      throw err;
    }
    // Only now, when nothing can refuse the session any more: closed() undoes this, and comes only for an accepted one.
    const state: SessionState = { cleanups: new Map(), unwatchTakeover };
    this.states.set(session, state);
    this.watchExpiry(session, state, principal.expiresAt);
    return { 'session-resume': resumeToken, 'user-name': principal.username };
  }

  /** The state of an accepted session; UNAUTHORIZED for one that is not (yet, or any more). */
  stateOf(session: StompSession): SessionState {
    const state = this.states.get(session);
    if (!state) throw new ChatError('UNAUTHORIZED', 'session is not connected');
    return state;
  }

  /** `/app/auth.refresh`: a new access token for the same user pushes the session's expiry back. */
  async refresh(session: StompSession, frame: Frame): Promise<void> {
    const principal = await this.tokens.verifyAccess(tokenOf(frame.headers));
    if (principal.userId !== session.userId) throw new ChatError('FORBIDDEN', 'token belongs to another user');
    this.watchExpiry(session, this.stateOf(session), principal.expiresAt);
  }

  /** Undo what connect() set up; a no-op for a session that was never accepted. */
  closed(session: StompSession): void {
    const state = this.states.get(session);
    if (!state) return;
    this.states.delete(session);
    clearTimeout(state.expiryTimer);
    state.unwatchTakeover();
    this.presence.disconnected(session.userId, session.id);
    for (const cleanup of state.cleanups.values()) {
      Promise.resolve(cleanup()).catch((err: unknown) => this.log.warn({ err }, 'cleanup after disconnect failed'));
    }
    this.takeover.release(session.historyId, session.id).catch((err: unknown) => this.log.warn({ err }, 'could not release takeover claim'));
    // Keep the delivery history for a client that comes back with session-resume.
    this.history.retain(session.historyId, this.options.resumeTtlS * 1000).catch((err: unknown) => {
      this.log.warn({ err }, 'could not retain delivery history');
    });
  }

  close(): void {
    clearInterval(this.renewTimer);
  }

  /** A live session's history must never expire under it: retain runs at connect and close, and every renewal while it lives. */
  private renewAll(): void {
    const ttlMs = this.options.resumeTtlS * 1000;
    for (const session of this.states.keys()) {
      Promise.all([this.history.retain(session.historyId, ttlMs), this.takeover.renew(session.historyId, session.id)]).catch(
        (err: unknown) => this.log.warn({ err }, 'could not renew a live session'),
      );
    }
  }

  /** At expiry, warn with TOKEN_EXPIRED; without a refresh within the grace period, end the session. */
  private watchExpiry(session: StompSession, state: SessionState, expiresAt: number): void {
    clearTimeout(state.expiryTimer);
    const grace = this.options.tokenGraceS * 1000;
    state.expiryTimer = setTimeout(() => {
      const expired: Frame = { command: 'SEND', headers: {}, body: Buffer.alloc(0) };
      this.errors.report(session, new ChatError('TOKEN_EXPIRED', 'access token expired; send /app/auth.refresh'), expired);
      state.expiryTimer = setTimeout(() => {
        session.fail('unauthorized', 'access token expired', {}, 'token_expired');
      }, grace);
      state.expiryTimer.unref();
    }, Math.max(0, expiresAt - Date.now()));
    state.expiryTimer.unref();
  }
}

/** The access token from CONNECT: `Authorization: Bearer`, `access-token`, or `passcode` (any login). */
function tokenOf(headers: Record<string, string>): string {
  const auth = headers.authorization ?? headers.Authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  const token = headers['access-token'] ?? headers.passcode;
  if (!token) throw new ChatError('UNAUTHORIZED', 'no access token (Authorization, access-token or passcode)');
  return token;
}
