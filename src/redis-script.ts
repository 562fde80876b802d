import type { Redis } from 'ioredis';

/** A Lua script bound to one connection: each call is one round trip. */
export type RedisScript = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/** ioredis sends the script with EVAL the first time on each connection, EVALSHA after. */
export function defineScript(redis: Redis, name: string, lua: string): RedisScript {
  redis.defineCommand(name, { lua });
  const script = (redis as unknown as Record<string, RedisScript>)[name]!;
  return script.bind(redis);
}
