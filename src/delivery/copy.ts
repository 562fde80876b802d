import type { BrokerMessage } from '../broker/broker.ts';
import { originOf, type Origin } from '../broker/messages.ts';
import type { StompSession, Subscription } from '../stomp/session.ts';
import type { DeliveryKey } from './history.ts';
import type { OutboundCopy } from './interceptor.ts';

/**
 * The history key of a message for one subscription. The sender's stream is its session *into that
 * destination*: within one destination a sender's seqs reach the receiver in order (room feeds deliver in room
 * order), so the window never mistakes a copy it has not seen for an old one, as it could if a sender's seqs
 * across all rooms shared one window. It also gives two subscriptions that match one message a copy each.
 */
export function deliveryKey(session: StompSession, sub: Subscription, origin: Origin): DeliveryKey {
  return { receiver: session.historyId, sender: `${origin.session}>${sub.destination}`, seq: origin.seq };
}

/** Whether `key` is a copy of the message from `origin`. */
export function isCopyOf(key: DeliveryKey, origin: Origin): boolean {
  return key.seq === origin.seq && key.sender.startsWith(`${origin.session}>`);
}

/** A copy of a broker message for one subscription of one session, or null when the session is gone or the message has no origin. */
export function copyFor(session: StompSession, sub: Subscription, message: BrokerMessage): OutboundCopy | null {
  if (!session.isOpen) return null;
  const origin = originOf(message);
  if (!origin) return null;
  return {
    key: deliveryKey(session, sub, origin),
    write: () => session.sendMessage(sub, message) !== null,
  };
}
