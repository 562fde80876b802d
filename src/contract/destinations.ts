/**
 * STOMP destination names of PROTOCOL.md, parsed and built in one place for the server,
 * the web client and the load generator.
 */

export const USER_NOTIFICATIONS = '/user/queue/notifications';
export const USER_ERRORS = '/user/queue/errors';
export const SYSTEM_HEALTH = '/topic/system.health';

export const roomTopic = (roomId: string): string => `/topic/rooms.${roomId}`;
export const roomAction = (roomId: string, action: RoomAction): string => `/app/rooms.${roomId}.${action}`;

export const ROOM_ACTIONS = ['send', 'edit', 'delete', 'read', 'typing'] as const;
export type RoomAction = (typeof ROOM_ACTIONS)[number];

/** Names under /topic and /queue that plain relay clients may not use. */
const RESERVED_PREFIXES = ['rooms.', 'system.', 'users.'];

export type Destination =
  | { kind: 'room'; roomId: string }
  | { kind: 'notifications' }
  | { kind: 'errors' }
  | { kind: 'health' }
  | { kind: 'topic'; name: string }
  | { kind: 'queue'; name: string }
  | { kind: 'room-action'; roomId: string; action: RoomAction }
  | { kind: 'app'; name: 'random.join' | 'random.leave' | 'auth.refresh' };

const ROOM_ID = '[A-Za-z0-9_-]+';
/** AMQP-safe names: words of letters, digits, `_`, `-`, `:`, separated by dots; topics may use `*` and `#` words. */
const NAME = /^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$/;
const PATTERN = /^([A-Za-z0-9_:-]+|\*|#)(\.([A-Za-z0-9_:-]+|\*|#))*$/;

const roomTopicRe = new RegExp(`^/topic/rooms\\.(${ROOM_ID})$`);
const roomActionRe = new RegExp(`^/app/rooms\\.(${ROOM_ID})\\.(send|edit|delete|read|typing)$`);

/** Parse a destination; `null` when it names nothing the server knows. Wildcards are allowed only when subscribing. */
export function parseDestination(dest: string, forSubscribe: boolean): Destination | null {
  if (dest === USER_NOTIFICATIONS) return { kind: 'notifications' };
  if (dest === USER_ERRORS) return { kind: 'errors' };
  if (dest === SYSTEM_HEALTH) return { kind: 'health' };
  let m = roomTopicRe.exec(dest);
  if (m) return { kind: 'room', roomId: m[1]! };
  m = roomActionRe.exec(dest);
  if (m) return { kind: 'room-action', roomId: m[1]!, action: m[2] as RoomAction };
  if (dest === '/app/random.join' || dest === '/app/random.leave' || dest === '/app/auth.refresh') {
    return { kind: 'app', name: dest.slice(5) as 'random.join' | 'random.leave' | 'auth.refresh' };
  }
  for (const kind of ['topic', 'queue'] as const) {
    const prefix = `/${kind}/`;
    if (!dest.startsWith(prefix)) continue;
    const name = dest.slice(prefix.length);
    if (RESERVED_PREFIXES.some((p) => name.startsWith(p))) return null;
    const ok = kind === 'topic' && forSubscribe ? PATTERN.test(name) : NAME.test(name);
    return ok ? { kind, name } : null;
  }
  return null;
}

/** AMQP short strings (queue names, routing keys, binding patterns) hold at most 255 bytes. */
export const AMQP_NAME_MAX_BYTES = 255;
/** RabbitMQ reserves queue names starting with this; declaring one closes the channel. */
const AMQP_RESERVED_PREFIX = 'amq.';

/** Bounds on /topic patterns and routing keys, so that matching them stays cheap (here and in RabbitMQ). */
export interface TopicBounds {
  maxWords: number;
  maxHashes: number;
}

/** Why a relay name is refused, and the limit it is counted under. */
export interface NameRefusal {
  limit: 'topic_pattern' | 'amqp_name';
  message: string;
}

/**
 * Check a parsed `/topic` or `/queue` name before it reaches any broker: an AMQP-sized name, no `amq.` queue,
 * and a topic within `bounds`. `null` when it may go on.
 */
export function refuseRelayName(kind: 'topic' | 'queue', name: string, bounds: TopicBounds): NameRefusal | null {
  // parseDestination admits ASCII names only, so characters are bytes (and this module runs in k6 too: no Buffer).
  const bytes = name.length;
  if (bytes > AMQP_NAME_MAX_BYTES) {
    return { limit: 'amqp_name', message: `/${kind} name is ${bytes} bytes, over AMQP's ${AMQP_NAME_MAX_BYTES}` };
  }
  if (kind === 'queue') {
    if (name.startsWith(AMQP_RESERVED_PREFIX)) return { limit: 'amqp_name', message: `queue names starting with ${AMQP_RESERVED_PREFIX} are reserved` };
    return null;
  }
  const words = name.split('.');
  if (words.length > bounds.maxWords) {
    return { limit: 'topic_pattern', message: `topic has ${words.length} words, over ${bounds.maxWords}` };
  }
  const hashes = words.filter((w) => w === '#').length;
  if (hashes > bounds.maxHashes) {
    return { limit: 'topic_pattern', message: `topic pattern has ${hashes} '#' words, over ${bounds.maxHashes}` };
  }
  return null;
}
