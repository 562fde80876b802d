import { randomBytes } from 'node:crypto';
import { createTempPostgres } from '../../scripts/temp-postgres.ts';
import { REDIS } from './redis.ts';

export const RABBITMQ_URL = 'amqp://guest:guest@127.0.0.1:5672';
export const REDIS_URL = `redis://${REDIS.host}:${REDIS.port}`;

/** Where a contract suite runs: the gateway's configuration, and what to remove after the suite. */
export interface Variant {
  name: string;
  /** Whether gateways started with `env` share state (database, broker, Redis), so two of them make a cluster. */
  shared: boolean;
  setUp(): Promise<{ env: Record<string, string>; tearDown(): Promise<void> }>;
}

/**
 * The two ways users run the gateway: the embedded default (in-process broker and history, PGlite), and RabbitMQ +
 * Redis + PostgreSQL together (a fresh database per suite). The contract suites run once on each.
 */
export const VARIANTS: Variant[] = [
  { name: 'embedded default', shared: false, setUp: async () => ({ env: {}, tearDown: async () => {} }) },
  {
    name: 'RabbitMQ + Redis + PostgreSQL',
    shared: true,
    setUp: async () => {
      const pg = await createTempPostgres();
      return {
        // One JWT secret, so that gateways started for one suite accept each other's tokens.
        env: { DATABASE_URL: pg.url, BROKER_URL: RABBITMQ_URL, REDIS_URL, JWT_SECRET: randomBytes(32).toString('hex') },
        tearDown: pg.drop,
      };
    },
  },
];
