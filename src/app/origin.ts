import { randomUUID } from 'node:crypto';
import type { Origin } from '../broker/messages.ts';

/** The sender identity of events a gateway originates itself (REST actions, notices): a session id of its own. */
export class GatewayOrigin {
  readonly session = `gateway-${randomUUID()}`;
  private seq = 0;

  next(): Origin {
    return { session: this.session, seq: ++this.seq };
  }
}
