import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { ChatError } from '../contract/errors.ts';

/**
 * Builds one counter: `points` per `durationS` per key, keys under `keyPrefix`. The gateway picks the engine
 * (RateLimiterRedis, shared by every gateway, when REDIS_URL is set; RateLimiterMemory otherwise).
 */
export type LimiterFactory = (options: { keyPrefix: string; points: number; durationS: number }) => RateLimiterAbstract;

export interface AuthLimitSettings {
  loginPerAccount: number;
  loginPerIp: number;
  loginWindowS: number;
  signupPerIp: number;
  signupWindowS: number;
}

/** A refusal by a rate limit (these below, uploads): RATE_LIMITED, and when to try again. */
export class RateLimited extends ChatError {
  constructor(readonly retryAfterS: number) {
    super('RATE_LIMITED', `too many attempts; retry in ${retryAfterS} s`);
  }
}

/**
 * How many logins and sign-ups a client may try, counted before any password is hashed or checked: logins per
 * account (username, whatever its case) and per client address, sign-ups per client address.
 */
export class AuthLimits {
  private readonly loginAccount: RateLimiterAbstract;
  private readonly loginIp: RateLimiterAbstract;
  private readonly signupIp: RateLimiterAbstract;

  constructor(make: LimiterFactory, s: AuthLimitSettings) {
    this.loginAccount = make({ keyPrefix: 'chat:login_account', points: s.loginPerAccount, durationS: s.loginWindowS });
    this.loginIp = make({ keyPrefix: 'chat:login_ip', points: s.loginPerIp, durationS: s.loginWindowS });
    this.signupIp = make({ keyPrefix: 'chat:signup_ip', points: s.signupPerIp, durationS: s.signupWindowS });
  }

  /** Counts a login attempt, or a password change's check of the current password. @throws RateLimited */
  async login(username: string, ip: string): Promise<void> {
    await take(this.loginIp, ip);
    await take(this.loginAccount, username.toLowerCase());
  }

  /** The account's count starts again, so a user who mistyped a few times is not locked out later. */
  async loginSucceeded(username: string): Promise<void> {
    await this.loginAccount.delete(username.toLowerCase());
  }

  /** Counts a sign-up. @throws RateLimited */
  signup(ip: string): Promise<void> {
    return take(this.signupIp, ip);
  }
}

export async function take(limiter: RateLimiterAbstract, key: string): Promise<void> {
  try {
    await limiter.consume(key);
  } catch (err) {
    // The limiter rejects with its state when the key is over; anything else is a store failure.
    if (err instanceof RateLimiterRes) throw new RateLimited(Math.max(1, Math.ceil(err.msBeforeNext / 1000)));
    throw err;
  }
}
