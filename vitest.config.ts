import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Suites share the machine's RabbitMQ, Redis and PostgreSQL; files run one at a time
    // so that broker-fault tests cannot disturb their neighbours.
    fileParallelism: false,
  },
});
