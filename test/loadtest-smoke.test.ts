import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FanoutSession } from '../loadtest/node/fanout.ts';
import { startTestGateway, type TestServer } from './support/gateway.ts';

// A small run of the load generator (two worker processes, real STOMP over WebSocket) against an embedded gateway:
// every message each client sends must reach every member of its room exactly once.
describe('load generator smoke run', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestGateway();
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('delivers every fan-out message exactly once, with no errors', async () => {
    const rooms = 3;
    const members = 4;
    const target = { kind: 'gateway' as const, name: 'embedded', httpUrl: server.url, wsUrl: server.wsUrl };
    const session = await FanoutSession.open({ target, rooms, members, users: members, workers: 2 }, 'smoke');
    try {
      // 5 messages a second for 2 s: each client's phase is under one period, so it sends exactly 10.
      const r = await session.run(5, 2000, 20_000);
      const sent = rooms * members * 10;
      expect(r.errorSamples).toEqual([]);
      expect({ sent: r.sent, refused: r.refused, connectFailed: r.connectFailed }).toEqual({ sent, refused: 0, connectFailed: 0 });
      expect(r.expected).toBe(sent * members);
      expect({ received: r.received, lost: r.lost, duplicated: r.duplicated, misrouted: r.misrouted, errors: r.errors }).toEqual({
        received: sent * members,
        lost: 0,
        duplicated: 0,
        misrouted: 0,
        errors: 0,
      });
      expect(r.latencyMs.max).toBeGreaterThan(0);
    } finally {
      await session.close();
    }
  });
});
