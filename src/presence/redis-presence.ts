import type { Redis } from 'ioredis';
import { assertIds, checkOptions, type Presence, type PresenceOptions } from './presence.ts';
import { defineScript, type RedisScript } from '../redis-script.ts';

export interface RedisPresenceOptions extends PresenceOptions {
  /** Owned by the caller: close() leaves the connection open. */
  redis: Redis;
  keyPrefix?: string;
}

/*
 * Storage: per user, a sorted set `<prefix>u:<userId>` of session ids scored by expiry time (ms); the user is
 * online while some score is > now. Beside it, one index of every entry, `<prefix>sessions`, members
 * `<userId length>:<userId>:<sessionId>` scored the same, so that reap() finds expired entries of every user
 * without scanning. Both are always written together, in one script. The keys themselves expire after twice the
 * longest an entry can live unwritten, so nothing stays behind once every gateway is gone.
 * reap() computes user keys inside its script: this is for a standalone Redis (or one hash slot), not Redis Cluster.
 */

/** KEYS: user key, index. ARGV: now, expiresAt, keyTtlMs, sessionId, index member. Returns 1 when the user came online. */
const CONNECT_LUA = `
local live = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return live == 0 and 1 or 0
`;

/**
 * KEYS: index, then one user key per session. ARGV: now, expiresAt, keyTtlMs, then sessionId and index member per
 * session. Writes every entry (back if it was reaped); returns the users that had no live entry before.
 */
const REFRESH_LUA = `
local now, expiresAt, ttl = ARGV[1], ARGV[2], ARGV[3]
local back = {}
for i = 2, #KEYS do
  if redis.call('ZCOUNT', KEYS[i], '(' .. now, '+inf') == 0 then back[#back + 1] = KEYS[i] end
  redis.call('ZADD', KEYS[i], expiresAt, ARGV[2 * i])
  redis.call('ZADD', KEYS[1], expiresAt, ARGV[2 * i + 1])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
redis.call('PEXPIRE', KEYS[1], ttl)
return back
`;

/** KEYS: index, then one user key per session. ARGV: until, then sessionId and index member per session. */
const LINGER_LUA = `
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', ARGV[1], ARGV[2 * i - 2])
  redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[2 * i - 1])
end
return 0
`;

/**
 * KEYS: index. ARGV: now, limit, user key prefix. Removes up to `limit` expired entries; returns how many, then
 * the users whose last entry went (each once: only the removal that empties a user's set reports them).
 */
const REAP_LUA = `
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = { #expired }
for _, member in ipairs(expired) do
  local n, rest = string.match(member, '^(%d+):(.*)$')
  n = tonumber(n)
  local key = ARGV[3] .. string.sub(rest, 1, n)
  redis.call('ZREM', KEYS[1], member)
  if redis.call('ZREM', key, string.sub(rest, n + 2)) == 1 and redis.call('EXISTS', key) == 0 then
    out[#out + 1] = string.sub(rest, 1, n)
  end
end
return out
`;

/** KEYS: user keys. ARGV: now. One letter per user: '1' online, '0' not. */
const ONLINE_LUA = `
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('ZCOUNT', KEYS[i], '(' .. ARGV[1], '+inf') > 0 and '1' or '0'
end
return table.concat(out)
`;

/** Sessions per refresh or linger script, and entries per reap script: bounds how long one script holds Redis. */
const BATCH = 500;

/** Presence shared by every gateway through Redis. Each operation is one EVALSHA (refresh, linger and reap per BATCH). */
export class RedisPresence implements Presence {
  readonly #opts: Required<PresenceOptions>;
  readonly #prefix: string;
  readonly #keyTtlMs: number;
  /** The sessions connected through this gateway and not disconnected: sessionId -> userId. */
  readonly #connected = new Map<string, string>();
  readonly #connect: RedisScript;
  readonly #refresh: RedisScript;
  readonly #linger: RedisScript;
  readonly #reap: RedisScript;
  readonly #online: RedisScript;
  #closed = false;

  constructor(opts: RedisPresenceOptions) {
    this.#opts = checkOptions(opts);
    this.#prefix = opts.keyPrefix ?? 'presence:';
    this.#keyTtlMs = 2 * Math.max(this.#opts.ttlMs, this.#opts.graceMs);
    this.#connect = defineScript(opts.redis, 'presenceConnect', CONNECT_LUA);
    this.#refresh = defineScript(opts.redis, 'presenceRefresh', REFRESH_LUA);
    this.#linger = defineScript(opts.redis, 'presenceLinger', LINGER_LUA);
    this.#reap = defineScript(opts.redis, 'presenceReap', REAP_LUA);
    this.#online = defineScript(opts.redis, 'presenceOnline', ONLINE_LUA);
  }

  async connect(userId: string, sessionId: string): Promise<boolean> {
    this.#assertOpen();
    assertIds(userId, sessionId);
    const now = this.#opts.clock();
    // Recorded before the script is sent: a refresh sent after it includes the session, never one sent before.
    this.#connected.set(sessionId, userId);
    const came = await this.#connect(
      2,
      this.#userKey(userId),
      this.#indexKey(),
      now,
      now + this.#opts.ttlMs,
      this.#keyTtlMs,
      sessionId,
      indexMember(userId, sessionId),
    );
    return came === 1;
  }

  async disconnect(userId: string, sessionId: string): Promise<void> {
    this.#assertOpen();
    assertIds(userId, sessionId);
    if (this.#connected.get(sessionId) === userId) this.#connected.delete(sessionId);
    await this.#lingerAll([[sessionId, userId]]);
  }

  async online(userIds: readonly string[]): Promise<Set<string>> {
    this.#assertOpen();
    if (userIds.length === 0) return new Set();
    const flags = String(await this.#online(userIds.length, ...userIds.map((id) => this.#userKey(id)), this.#opts.clock()));
    return new Set(userIds.filter((_, i) => flags[i] === '1'));
  }

  async refresh(): Promise<string[]> {
    this.#assertOpen();
    const back: string[] = [];
    const userKeyLength = this.#userKey('').length;
    for (const batch of batches([...this.#connected])) {
      const now = this.#opts.clock();
      const keys = [this.#indexKey(), ...batch.map(([, userId]) => this.#userKey(userId))];
      const args = batch.flatMap(([sessionId, userId]) => [sessionId, indexMember(userId, sessionId)]);
      const reply = (await this.#refresh(keys.length, ...keys, now, now + this.#opts.ttlMs, this.#keyTtlMs, ...args)) as string[];
      back.push(...reply.map((key) => key.slice(userKeyLength)));
    }
    return back;
  }

  async reap(): Promise<string[]> {
    this.#assertOpen();
    const offline: string[] = [];
    for (;;) {
      const [count, ...users] = (await this.#reap(1, this.#indexKey(), this.#opts.clock(), BATCH, this.#userKey(''))) as [number, ...string[]];
      offline.push(...users);
      if (count < BATCH) return offline;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const sessions = [...this.#connected];
    this.#connected.clear();
    await this.#lingerAll(sessions);
  }

  async #lingerAll(sessions: ReadonlyArray<readonly [sessionId: string, userId: string]>): Promise<void> {
    for (const batch of batches(sessions)) {
      const keys = [this.#indexKey(), ...batch.map(([, userId]) => this.#userKey(userId))];
      const args = batch.flatMap(([sessionId, userId]) => [sessionId, indexMember(userId, sessionId)]);
      await this.#linger(keys.length, ...keys, this.#opts.clock() + this.#opts.graceMs, ...args);
    }
  }

  #userKey(userId: string): string {
    return `${this.#prefix}u:${userId}`;
  }

  #indexKey(): string {
    return `${this.#prefix}sessions`;
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('RedisPresence is closed');
  }
}

/** The user id's length makes the member unambiguous whatever ':' the ids contain. */
function indexMember(userId: string, sessionId: string): string {
  return `${userId.length}:${userId}:${sessionId}`;
}

function* batches<T>(items: readonly T[]): Generator<T[]> {
  for (let i = 0; i < items.length; i += BATCH) yield items.slice(i, i + BATCH);
}
