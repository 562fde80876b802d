/**
 * The load message: `lt|<sent at, ms since the epoch>|<sender index>|<n>`. It is the chat `text` on the
 * gateway (inside the event JSON) and the whole body on a plain STOMP broker; `loadOf` finds it in either,
 * without parsing the JSON, since none of its characters need escaping there.
 */

export interface LoadStamp {
  /** When the message was due to be sent (open loop: the schedule, not the moment it left). */
  sentAt: number;
  sender: number;
  n: number;
}

const PREFIX = 'lt|';

export const loadText = (s: LoadStamp): string => `${PREFIX}${s.sentAt.toFixed(3)}|${s.sender}|${s.n}`;

export function loadOf(body: string): LoadStamp | null {
  const at = body.indexOf(PREFIX);
  if (at < 0) return null;
  let end = body.indexOf('"', at);
  if (end < 0) end = body.length;
  const parts = body.slice(at + PREFIX.length, end).split('|');
  if (parts.length !== 3) return null;
  const sentAt = Number(parts[0]);
  const sender = Number(parts[1]);
  const n = Number(parts[2]);
  return Number.isFinite(sentAt) && Number.isInteger(sender) && Number.isInteger(n) ? { sentAt, sender, n } : null;
}
