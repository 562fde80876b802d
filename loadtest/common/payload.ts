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
  // Scanned by hand: this runs once per delivery in the generator.
  const a = at + PREFIX.length;
  const b = body.indexOf('|', a);
  const c = b < 0 ? -1 : body.indexOf('|', b + 1);
  if (c < 0) return null;
  let end = c + 1;
  while (end < body.length && body.charCodeAt(end) >= 0x30 && body.charCodeAt(end) <= 0x39) end++;
  const sentAt = +body.slice(a, b);
  const sender = +body.slice(b + 1, c);
  const n = +body.slice(c + 1, end);
  return Number.isFinite(sentAt) && Number.isInteger(sender) && Number.isInteger(n) && end > c + 1 ? { sentAt, sender, n } : null;
}
