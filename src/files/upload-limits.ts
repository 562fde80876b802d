import { take, type LimiterFactory } from '../auth/auth-limits.ts';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';

/** Uploads per user per minute, counted when an upload starts (before its body is read). */
export class UploadLimits {
  private readonly perUser: RateLimiterAbstract;

  constructor(make: LimiterFactory, perMinute: number) {
    this.perUser = make({ keyPrefix: 'chat:uploads_user', points: perMinute, durationS: 60 });
  }

  /** @throws RateLimited */
  start(userId: string): Promise<void> {
    return take(this.perUser, userId);
  }
}
