import type { RoomEvent } from '../contract/events.ts';
import type { BrokerMessage } from './broker.ts';

/** The identity every delivered MESSAGE carries: the connection that originated it and its seq there. */
export interface Origin {
  session: string;
  seq: number;
}

/** A JSON body with the MESSAGE headers a client expects: content type and the origin's identity. */
export function jsonMessage(body: unknown, origin: Origin, extraHeaders: Record<string, string> = {}): BrokerMessage {
  return {
    headers: {
      'content-type': 'application/json',
      'sender-session': origin.session,
      'sender-seq': String(origin.seq),
      ...extraHeaders,
    },
    body: Buffer.from(JSON.stringify(body)),
  };
}

/** How an event travels on the broker: its type repeated in `event-type`, the event as the body. */
export const eventMessage = (event: { type: string; [field: string]: unknown }, origin: Origin, extraHeaders: Record<string, string> = {}): BrokerMessage =>
  jsonMessage(event, origin, { 'event-type': event.type, ...extraHeaders });

/** Room events that change history also carry their room seq as a header, so gateways can order them without parsing the body. */
export const roomEventMessage = (event: RoomEvent, origin: Origin): BrokerMessage =>
  eventMessage(event, origin, { seq: String(event.seq) });

/** The (sender session, sender seq) a broker message carries, or null for one without (not from a gateway). */
export function originOf(message: BrokerMessage): Origin | null {
  const session = message.headers['sender-session'];
  const seq = Number(message.headers['sender-seq']);
  return session && Number.isSafeInteger(seq) ? { session, seq } : null;
}
