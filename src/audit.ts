import type { Logger } from './logger.ts';

/** What the security log records: one structured line per event, with the session and user where known. */
export type AuditEvent =
  | 'login_failed'
  | 'password_change_failed'
  | 'token_refused'
  | 'forbidden'
  | 'rate_limited'
  | 'limit_refused'
  | 'session_cut';

export interface AuditFields {
  session?: string;
  user?: string;
  /** Client address (REST) as `trust proxy` resolved it. */
  ip?: string;
  reason?: string;
  [field: string]: unknown;
}

export interface AuditLogOptions {
  /** Lines written per second, all events together; the rest are counted and reported in the next line. */
  linesPerSecond: number;
  now?: () => number;
}

/**
 * The security log. Every refusal a client can cause on purpose is logged here, so one line per event would let
 * a client fill the disk: past `linesPerSecond` lines are dropped and counted, and the next line written says how
 * many were suppressed.
 */
export class AuditLog {
  private windowStart = 0;
  private written = 0;
  private suppressed = 0;
  private readonly now: () => number;

  constructor(
    private readonly log: Logger,
    private readonly options: AuditLogOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  record(event: AuditEvent, fields: AuditFields = {}): void {
    const now = this.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.written = 0;
    }
    if (this.written >= this.options.linesPerSecond) {
      this.suppressed++;
      return;
    }
    this.written++;
    const line: Record<string, unknown> = { audit: event, ...fields };
    if (this.suppressed > 0) {
      line.suppressed = this.suppressed;
      this.suppressed = 0;
    }
    this.log.warn(line, event);
  }
}
