import { Redis } from 'ioredis';

/** The machine's Redis, as the suites that are about it reach it. */
export const REDIS = { host: '127.0.0.1', port: 6379 };

/** Keys under `prefix` (a test run's own namespace). */
export async function redisKeys(prefix: string): Promise<string[]> {
  const admin = new Redis(REDIS);
  try {
    return await admin.keys(`${prefix}*`);
  } finally {
    admin.disconnect();
  }
}

/** Delete every key under `prefix`. */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const admin = new Redis(REDIS);
  try {
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  } finally {
    admin.disconnect();
  }
}

/** Records the name of every command `redis` sends from now on (to count round trips). */
export function recordCommands(redis: Redis): string[] {
  const sent: string[] = [];
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (command, ...rest) => {
    sent.push(command.name);
    return send(command, ...rest);
  };
  return sent;
}
