import type { Redis } from 'ioredis';
import { defineScript, type RedisScript } from '../redis-script.ts';
import { STALE_AFTER_MS, type Matcher, type MatcherOptions } from './matcher.ts';

/**
 * KEYS[1] queue (zset: userId by arrival number), KEYS[2] deadlines (hash: userId -> deadline ms),
 * KEYS[3] arrival counter. ARGV[1] userId, ARGV[2] deadline ms, ARGV[3] now ms, ARGV[4] stale-after ms.
 * Returns the paired stranger's id, or false (the joiner waits).
 */
const JOIN = `
local now = tonumber(ARGV[3])
local function drop(u) redis.call('ZREM', KEYS[1], u); redis.call('HDEL', KEYS[2], u) end
for _, other in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local deadline = tonumber(redis.call('HGET', KEYS[2], other) or '0')
  if deadline + tonumber(ARGV[4]) < now then drop(other)
  elseif other ~= ARGV[1] and deadline > now then
    drop(other); drop(ARGV[1]); return other
  end
end
local mine = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if mine == 0 then redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), ARGV[1]) end
redis.call('HSET', KEYS[2], ARGV[1], math.max(mine, tonumber(ARGV[2])))
return false`;

/** KEYS[1] queue, KEYS[2] deadlines. ARGV[1] userId. Returns 1 when the user was waiting. */
const LEAVE = `
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])`;

/** KEYS[1] queue, KEYS[2] deadlines. ARGV[1] userId, ARGV[2] now ms. Returns 1 when it took out a user past their deadline. */
const EXPIRE = `
local deadline = redis.call('HGET', KEYS[2], ARGV[1])
if not deadline or tonumber(deadline) > tonumber(ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])`;

export interface RedisMatcherOptions extends MatcherOptions {
  redis: Redis;
  /** Every gateway of one cluster uses the same prefix (and another cluster another). */
  keyPrefix: string;
}

/** The wait queue in Redis, shared by every gateway: each operation is one script, one round trip. */
export class RedisMatcher implements Matcher {
  readonly #keys: [string, string];
  readonly #counter: string;
  readonly #clock: () => number;
  readonly #join: RedisScript;
  readonly #leave: RedisScript;
  readonly #expire: RedisScript;

  constructor(opts: RedisMatcherOptions) {
    this.#keys = [`${opts.keyPrefix}queue`, `${opts.keyPrefix}deadlines`];
    this.#counter = `${opts.keyPrefix}arrivals`;
    this.#clock = opts.clock ?? Date.now;
    this.#join = defineScript(opts.redis, 'randomJoin', JOIN);
    this.#leave = defineScript(opts.redis, 'randomLeave', LEAVE);
    this.#expire = defineScript(opts.redis, 'randomExpire', EXPIRE);
  }

  async join(userId: string, deadlineMs: number): Promise<string | null> {
    const other = await this.#join(3, ...this.#keys, this.#counter, userId, deadlineMs, this.#clock(), STALE_AFTER_MS);
    return typeof other === 'string' ? other : null;
  }

  async leave(userId: string): Promise<boolean> {
    return (await this.#leave(2, ...this.#keys, userId)) === 1;
  }

  async expire(userId: string): Promise<boolean> {
    return (await this.#expire(2, ...this.#keys, userId, this.#clock())) === 1;
  }
}
