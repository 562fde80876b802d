import { Router, type Request, type Response } from 'express';
import type { AuditLog } from '../audit.ts';
import { RateLimited, type AuthLimits } from '../auth/auth-limits.ts';
import { hashForUnknownUser, hashPassword, verifyPassword } from '../auth/passwords.ts';
import { newRefreshId, type TokenService } from '../auth/tokens.ts';
import { ChatError } from '../contract/errors.ts';
import { ChangePasswordRequest, Credentials, LoginRequest, RefreshRequest } from '../contract/events.ts';
import type { LimitName, Metrics } from '../metrics.ts';
import type { RefreshTokenStore, RotateOutcome } from '../store/refresh-tokens.ts';
import type { User, UserStore } from '../store/users.ts';
import { clientAddress } from './api.ts';
import { principalOf, requireUser } from './authenticate.ts';

export interface AuthRoutesOptions {
  users: UserStore;
  tokens: TokenService;
  refreshTokens: RefreshTokenStore;
  limits: AuthLimits;
  metrics: Metrics;
  audit: AuditLog;
  /** REFRESH_REUSE_GRACE_S, in ms. */
  reuseGraceMs: number;
}

const REFUSED_REFRESH: Record<Exclude<RotateOutcome, 'rotated'>, string> = {
  unknown: 'unknown refresh token',
  revoked: 'refresh token of a revoked family',
  reused: 'retired refresh token reused: its family is revoked',
};

export function authRoutes(o: AuthRoutesOptions): Router {
  const router = Router();
  // Made now, with the real parameters, so that no login waits for it.
  const unknownUserHash = hashForUnknownUser();

  /** Runs a limit's check; a refusal is counted, logged, and answered 429 with Retry-After. */
  async function admit(check: Promise<void>, limit: LimitName, req: Request, res: Response, user?: string): Promise<void> {
    try {
      await check;
    } catch (err) {
      if (err instanceof RateLimited) {
        o.metrics.refused(limit);
        o.audit.record('rate_limited', { user, ip: clientAddress(req), reason: limit });
        res.set('Retry-After', String(err.retryAfterS));
      }
      throw err;
    }
  }

  /** A token pair whose refresh token the store already holds as `refreshId`. */
  async function sendPair(res: Response, user: User, refreshId: string): Promise<void> {
    res.json({ ...(await o.tokens.issuePair(user, refreshId)), user: { id: user.id, username: user.username } });
  }

  const refreshExpiry = () => new Date(Date.now() + o.tokens.refreshTtlS * 1000);

  router.post('/signup', async (req, res) => {
    const { username, password } = Credentials.parse(req.body);
    await admit(o.limits.signup(clientAddress(req)), 'signup_rate', req, res);
    const user = await o.users.create(username, await hashPassword(password));
    res.status(201).json({ id: user.id, username: user.username });
  });

  router.post('/login', async (req, res) => {
    const { username, password } = LoginRequest.parse(req.body);
    await admit(o.limits.login(username, clientAddress(req)), 'login_rate', req, res, username);
    const user = await o.users.findByUsername(username);
    // An unknown user costs one verify with the same parameters, so timing does not tell which usernames exist.
    const ok = await verifyPassword(user?.passwordHash ?? (await unknownUserHash), password);
    if (!user || !ok) {
      o.audit.record('login_failed', { user: username, ip: clientAddress(req) });
      throw new ChatError('UNAUTHORIZED', 'wrong username or password');
    }
    await o.limits.loginSucceeded(username);
    const refreshId = newRefreshId();
    await o.refreshTokens.startFamily(user.id, refreshId, refreshExpiry());
    await sendPair(res, user, refreshId);
  });

  router.post('/refresh', async (req, res) => {
    const { refreshToken } = RefreshRequest.parse(req.body);
    const ip = clientAddress(req);
    const principal = await o.tokens.verifyRefresh(refreshToken).catch((err: unknown) => {
      if (err instanceof ChatError) o.audit.record('token_refused', { ip, reason: err.message });
      throw err;
    });
    function refuse(reason: string): never {
      o.audit.record('token_refused', { user: principal.username, ip, reason });
      throw new ChatError('UNAUTHORIZED', 'refresh token refused; log in again');
    }
    const successorId = newRefreshId();
    const outcome = await o.refreshTokens.rotate(principal.refreshId, successorId, refreshExpiry(), o.reuseGraceMs);
    if (outcome !== 'rotated') refuse(REFUSED_REFRESH[outcome]);
    const user = await o.users.findById(principal.userId);
    if (!user) refuse('user no longer exists');
    await sendPair(res, user, successorId);
  });

  router.post('/password', requireUser(o.tokens, o.audit), async (req, res) => {
    const { currentPassword, newPassword } = ChangePasswordRequest.parse(req.body);
    const { userId, username } = principalOf(res);
    const ip = clientAddress(req);
    // Counted as a login attempt of the account, so a stolen access token cannot guess the password faster.
    await admit(o.limits.login(username, ip), 'login_rate', req, res, username);
    const user = await o.users.findById(userId);
    if (!user || !(await verifyPassword(user.passwordHash, currentPassword))) {
      o.audit.record('password_change_failed', { user: username, ip });
      throw new ChatError('UNAUTHORIZED', 'wrong current password');
    }
    await o.limits.loginSucceeded(username);
    const newHash = await hashPassword(newPassword);
    // Every login made with the old password ends; this client goes on with a family of its own. Revoked first:
    // a failure between the two leaves the old password with every session ended, never the new one with old
    // sessions alive.
    await o.refreshTokens.revokeAll(user.id);
    await o.users.setPasswordHash(user.id, newHash);
    const refreshId = newRefreshId();
    await o.refreshTokens.startFamily(user.id, refreshId, refreshExpiry());
    await sendPair(res, user, refreshId);
  });

  return router;
}
