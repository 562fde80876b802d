import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Connections } from '../src/app/connections.ts';
import type { ErrorChannel } from '../src/app/error-channel.ts';
import { AuditLog } from '../src/audit.ts';
import { TokenService } from '../src/auth/tokens.ts';
import type { ChatError } from '../src/contract/errors.ts';
import { MemoryHistory } from '../src/delivery/memory-history.ts';
import { createLogger } from '../src/logger.ts';
import type { PresenceTracker } from '../src/presence/tracker.ts';
import type { Frame } from '../src/stomp/frame.ts';
import type { StompSession } from '../src/stomp/session.ts';
import { MemoryTakeover } from '../src/takeover/memory-takeover.ts';

const silent = createLogger('silent');
const TTL_S = 60;
const GRACE_S = 30;

/** Connections over in-process engines, with a session stub that records how it was told and ended. */
function harness() {
  const tokens = new TokenService('x'.repeat(32), TTL_S, 3600);
  const told: string[] = [];
  const errors = { report: (_s: StompSession, e: ChatError) => void told.push(e.code) } as unknown as ErrorChannel;
  const presence = { connected: async () => {}, disconnected: () => {} } as unknown as PresenceTracker;
  const connections = new Connections(
    tokens,
    new MemoryHistory({ window: 64 }),
    presence,
    new MemoryTakeover(),
    errors,
    new AuditLog(silent, { linesPerSecond: 10 }),
    { resumeTtlS: 3600, tokenGraceS: GRACE_S },
    silent,
  );
  const ended: string[] = [];
  const session = {
    id: 's1',
    historyId: 's1',
    userId: '',
    username: '',
    identify(userId: string, username: string) {
      Object.assign(this, { userId, username });
    },
    fail: (m: string) => void ended.push(m),
  } as unknown as StompSession;
  const connectFrame = (token: string): Frame => ({ command: 'CONNECT', headers: { Authorization: `Bearer ${token}` }, body: Buffer.alloc(0) });
  const refreshFrame = (token: string): Frame => ({ command: 'SEND', headers: { destination: '/app/auth.refresh', Authorization: `Bearer ${token}` }, body: Buffer.alloc(0) });
  const token = async () => (await tokens.issuePair({ id: 'u1', username: 'carol' })).accessToken;
  return { connections, session, told, ended, connectFrame, refreshFrame, token };
}

describe('Connections: token expiry on a live session', () => {
  // Expiry and grace are minutes in production; fake timers move through them.
  // Tokens expire on whole seconds: the clock starts on one, so expiry is exactly TTL_S after issue.
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(Date.UTC(2026, 0, 1));
  });
  afterEach(() => void vi.useRealTimers());

  it('warns with TOKEN_EXPIRED at expiry, and ends the session once the grace is over, not before', async () => {
    const h = harness();
    await h.connections.connect(h.session, h.connectFrame(await h.token()));
    await vi.advanceTimersByTimeAsync(TTL_S * 1000 - 1);
    expect(h.told).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.told).toEqual(['TOKEN_EXPIRED']);
    await vi.advanceTimersByTimeAsync(GRACE_S * 1000 - 1);
    expect(h.ended).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.ended).toEqual(['unauthorized']);
    h.connections.close();
  });

  it('keeps a session that refreshes within the grace, until its new token expires', async () => {
    const h = harness();
    await h.connections.connect(h.session, h.connectFrame(await h.token()));
    await vi.advanceTimersByTimeAsync(TTL_S * 1000 + 1000);
    expect(h.told).toEqual(['TOKEN_EXPIRED']);
    await h.connections.refresh(h.session, h.refreshFrame(await h.token()));
    // Well past the old grace: nothing happens.
    await vi.advanceTimersByTimeAsync(GRACE_S * 1000 * 1.5);
    expect(h.ended).toEqual([]);
    expect(h.told).toEqual(['TOKEN_EXPIRED']);
    // The new token's own expiry warns again.
    await vi.advanceTimersByTimeAsync(TTL_S * 1000);
    expect(h.told).toEqual(['TOKEN_EXPIRED', 'TOKEN_EXPIRED']);
    h.connections.close();
  });

  it('stops watching a session once it has ended', async () => {
    const h = harness();
    await h.connections.connect(h.session, h.connectFrame(await h.token()));
    h.connections.closed(h.session);
    await vi.advanceTimersByTimeAsync((TTL_S + GRACE_S) * 1000 * 2);
    expect(h.told).toEqual([]);
    expect(h.ended).toEqual([]);
    expect(h.connections.count).toBe(0);
    h.connections.close();
  });
});
