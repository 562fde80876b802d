import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BrokerMessage } from '../src/broker/broker.ts';
import { roomEventMessage } from '../src/broker/messages.ts';
import type { RoomEvent } from '../src/contract/events.ts';
import type { ClaimOutcome, DeliveryHistory, DeliveryKey } from '../src/delivery/history.ts';
import type { OutboundCopy } from '../src/delivery/interceptor.ts';
import { OutboundInterceptor } from '../src/delivery/interceptor.ts';
import { MemoryHistory } from '../src/delivery/memory-history.ts';
import { RoomFeed } from '../src/delivery/room-feed.ts';
import { createLogger } from '../src/logger.ts';
import type { StoredEvent } from '../src/store/messages.ts';

const ROOM = 'room-1';

function stored(seq: number): StoredEvent {
  const event: RoomEvent = {
    type: 'CHAT',
    id: `m${seq}`,
    roomId: ROOM,
    seq,
    sender: { id: 'u', username: 'u' },
    text: `t${seq}`,
    createdAt: new Date(0).toISOString(),
  };
  return { event, senderSession: 'sender', senderSeq: seq };
}

const live = (seq: number): BrokerMessage => {
  const s = stored(seq);
  return roomEventMessage(s.event, { session: s.senderSession, seq: s.senderSeq });
};

/** A feed over a fake store holding seqs 1..`stored`, writing to an array through a real interceptor. */
function harness(opts: {
  afterSeq: number;
  storedUpTo: number;
  replayLimit?: number;
  gapWaitMs?: number;
  clientSince?: boolean;
  /** Share a delivery history with an earlier harness: the receiver resumed. */
  interceptor?: OutboundInterceptor;
  history?: DeliveryHistory;
}) {
  const written: number[] = [];
  const resyncs: number[] = [];
  const reads: number[] = [];
  const store = { upTo: opts.storedUpTo };
  const interceptor = opts.interceptor ?? new OutboundInterceptor(opts.history ?? new MemoryHistory({ window: 1024 }));
  const copy = (m: BrokerMessage): OutboundCopy => ({
    key: { receiver: 'r', sender: m.headers['sender-session']!, seq: Number(m.headers['sender-seq']) },
    write: () => {
      written.push(Number(m.headers.seq));
      return true;
    },
  });
  const feed = new RoomFeed({
    roomId: ROOM,
    afterSeq: opts.afterSeq,
    clientSince: opts.clientSince ?? false,
    copy,
    interceptor,
    since: async (_room, after, limit) => {
      reads.push(after);
      const out: StoredEvent[] = [];
      for (let s = after + 1; s <= store.upTo && out.length < limit; s++) out.push(stored(s));
      return out;
    },
    lastSeq: async () => store.upTo,
    resync: (fromSeq) => resyncs.push(fromSeq),
    replayLimit: opts.replayLimit ?? 100,
    gapWaitMs: opts.gapWaitMs ?? GAP_WAIT_MS,
    log: createLogger('silent'),
  });
  /** Offer a live event as the fan-out does: what the feed releases goes to the interceptor. */
  const offer = (seq: number) => interceptor.deliver(feed.offer(live(seq)));
  return { feed, offer, written, resyncs, reads, store, interceptor };
}

const GAP_WAIT_MS = 20;
/** Run every timer due within the gap wait, and the reads and deliveries they start: after it, nothing more is pending. */
const pastGapWait = () => vi.advanceTimersByTimeAsync(GAP_WAIT_MS * 10);

/** A history whose claims fail while `failing` is set, as Redis does during an outage. */
class FlakyHistory extends MemoryHistory {
  failing = false;
  override claim(keys: readonly DeliveryKey[]): Promise<ClaimOutcome[]> {
    return this.failing ? Promise.reject(new Error('history unavailable')) : super.claim(keys);
  }
}

describe('RoomFeed', () => {
  // The gap timer runs on fake timers: a test moves time past it and then knows nothing more is pending.
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('replays what was missed, then goes on live with no gap and no duplicate', async () => {
    const h = harness({ afterSeq: 2, storedUpTo: 5 });
    const start = h.feed.start();
    await h.offer(5); // arrives live while the replay is reading: held, then dropped as already replayed
    await h.offer(6);
    await start;
    await h.offer(7);
    await pastGapWait();
    expect(h.written).toEqual([3, 4, 5, 6, 7]);
  });

  it('replays everything above the client\'s since-seq even where the resumed history has it, and only then', async () => {
    const before = harness({ afterSeq: 0, storedUpTo: 5 });
    await before.feed.start(); // 1..5 written to a socket that, as it turns out, was dying
    expect(before.written).toEqual([1, 2, 3, 4, 5]);
    const resumed = harness({ afterSeq: 2, storedUpTo: 5, clientSince: true, interceptor: before.interceptor });
    await resumed.feed.start();
    expect(resumed.written).toEqual([3, 4, 5]);
    // Live copies of what was replayed are still dropped by the history.
    await resumed.offer(4);
    await resumed.offer(6);
    expect(resumed.written).toEqual([3, 4, 5, 6]);
    // Without since-seq from the client, a first read is an ordinary one: the history decides.
    const plain = harness({ afterSeq: 2, storedUpTo: 5, interceptor: before.interceptor });
    await plain.feed.start();
    expect(plain.written).toEqual([]);
  });

  it('holds an event that overtook an earlier one and releases both in order', async () => {
    const h = harness({ afterSeq: 0, storedUpTo: 0 });
    await h.feed.start();
    await h.offer(1);
    await h.offer(3);
    expect(h.written).toEqual([1]);
    await h.offer(2);
    await pastGapWait();
    expect(h.written).toEqual([1, 2, 3]);
    expect(h.reads).toEqual([0]); // the gap closed live: no read from the store
  });

  it('reads a gap from the store when the missing event never arrives live, every time (the gap timer re-arms)', async () => {
    const h = harness({ afterSeq: 0, storedUpTo: 0 });
    await h.feed.start();
    await h.offer(1);
    await h.offer(3);
    await h.offer(2); // closes the first gap live, clearing the gap timer
    h.store.upTo = 5;
    await h.offer(5); // 4 never comes live
    expect(h.written).toEqual([1, 2, 3]);
    await pastGapWait();
    expect(h.written).toEqual([1, 2, 3, 4, 5]);
    h.store.upTo = 8;
    await h.offer(8); // 6 and 7 never come live either
    expect(h.written).toEqual([1, 2, 3, 4, 5]);
    await pastGapWait();
    expect(h.written).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('passes a stale copy to the interceptor, which drops it as delivered', async () => {
    const h = harness({ afterSeq: 0, storedUpTo: 0 });
    await h.feed.start();
    await h.offer(1);
    await h.offer(2);
    await h.offer(1);
    expect(h.written).toEqual([1, 2]);
    expect(h.interceptor.stats).toEqual({ written: 2, dropped: 1, abandoned: 0 });
  });

  it('drops a late copy of an event from before the subscription began (an outbox sweep republishing an old event)', async () => {
    const h = harness({ afterSeq: 3, storedUpTo: 3 });
    await h.feed.start();
    await h.offer(2); // this receiver's history never had it: only the feed knows it is not this subscription's
    await h.offer(4);
    expect(h.written).toEqual([4]);
    expect(h.interceptor.stats).toEqual({ written: 1, dropped: 0, abandoned: 0 });
  });

  it('answers RESYNC past the replay limit and continues live from the room’s last seq', async () => {
    const h = harness({ afterSeq: 0, storedUpTo: 10, replayLimit: 4 });
    await h.feed.start();
    expect(h.resyncs).toEqual([1]);
    expect(h.written).toEqual([]);
    await h.offer(11);
    expect(h.written).toEqual([11]);
  });

  it('catches up from the store on request, and again if asked while a read is running', async () => {
    const h = harness({ afterSeq: 0, storedUpTo: 2 });
    await h.feed.start();
    expect(h.written).toEqual([1, 2]);
    h.store.upTo = 3;
    h.feed.catchUp();
    h.store.upTo = 4; // may be missed by the first read: the second one gets it
    h.feed.catchUp();
    await pastGapWait();
    expect(h.written).toEqual([1, 2, 3, 4]);
    expect(h.reads).toEqual([0, 2, 3]);
  });

  it('after a failed delivery starts again from what surely reached the socket', async () => {
    const history = new FlakyHistory({ window: 1024 });
    const h = harness({ afterSeq: 0, storedUpTo: 0, history });
    await h.feed.start();
    await h.offer(1);
    history.failing = true;
    h.store.upTo = 3;
    // The fan-out calls failed() when a delivery rejects; 2 never reached the socket.
    await h.offer(2).catch(() => h.feed.failed());
    history.failing = false;
    await h.offer(3);
    expect(h.written).toEqual([1]); // 3 waits for 2
    await pastGapWait();
    expect(h.written).toEqual([1, 2, 3]);
    expect(h.reads).toEqual([0, 1]);
  });
});
