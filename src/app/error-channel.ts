import type { AuditEvent, AuditLog } from '../audit.ts';
import { jsonMessage } from '../broker/messages.ts';
import type { ChatError, ErrorCode } from '../contract/errors.ts';
import type { Logger } from '../logger.ts';
import type { Frame } from '../stomp/frame.ts';
import type { StompSession, Subscription } from '../stomp/session.ts';
import type { GatewayOrigin } from './origin.ts';

/**
 * Errors a client may cause on purpose, recorded in the security log. Limit refusals (RATE_LIMITED among them) are
 * recorded where they are refused and counted, so they are not recorded again here.
 */
const AUDITED: Partial<Record<ErrorCode, AuditEvent>> = {
  FORBIDDEN: 'forbidden',
  UNAUTHORIZED: 'token_refused',
};

/**
 * `/user/queue/errors`: where a session learns of a ChatError that did not end it, with the failed frame's
 * `client-request-code` and `receipt`, so a client can tie the error to what caused it.
 */
export class ErrorChannel {
  private readonly subs = new Map<StompSession, Subscription>();

  constructor(
    private readonly gateway: GatewayOrigin,
    private readonly audit: AuditLog,
    private readonly log: Logger,
  ) {}

  /** Send the session's errors to `sub`; returns the cleanup for UNSUBSCRIBE or disconnect. */
  attach(session: StompSession, sub: Subscription): () => void {
    this.subs.set(session, sub);
    return () => {
      if (this.subs.get(session) === sub) this.subs.delete(session);
    };
  }

  report(session: StompSession, error: ChatError, frame: Frame): void {
    const audited = AUDITED[error.code];
    if (audited) this.audit.record(audited, { session: session.id, user: session.userId, reason: error.message, destination: frame.headers.destination });
    const sub = this.subs.get(session);
    if (!sub) {
      this.log.debug({ code: error.code, message: error.message }, 'error for a session without /user/queue/errors');
      return;
    }
    const body: Record<string, string> = { code: error.code, message: error.message };
    const requestCode = frame.headers['client-request-code'];
    if (requestCode !== undefined) body.clientRequestCode = requestCode;
    if (frame.headers.receipt !== undefined) body.receiptId = frame.headers.receipt;
    session.sendMessage(sub, jsonMessage(body, this.gateway.next(), { 'error-code': error.code }));
  }
}
