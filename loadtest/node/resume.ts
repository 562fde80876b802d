import { roomAction, roomTopic, USER_ERRORS } from '../../src/contract/destinations.ts';
import type { RoomEvent } from '../../src/contract/events.ts';
import { loadOf, loadText } from '../common/payload.ts';
import { printTable } from './report.ts';
import { createGroupRoom, createUsers, runPrefix, type LoadUser } from './rest.ts';
import { StompLink } from './stomp-link.ts';
import type { Target } from './targets.ts';

export interface ResumeOptions {
  target: Extract<Target, { kind: 'gateway' }>;
  /** Messages sent while the client is away. */
  missed: number;
  iterations: number;
  /**
   * The client asks `since-seq` this many events before the last one it saw (default 0: exactly its last),
   * as a client unsure of what it kept would. Those come again: PROTOCOL.md replays every event with
   * seq > since-seq, and the client's since-seq is the authority on what it holds.
   */
  overlap?: number;
  /**
   * How long after the drop the missed messages start. 0: at once, while the server may still think the
   * socket is alive (as after a lost network, where it learns only from missing heart-beats); 500: after the
   * server has seen the close.
   */
  dropWaitMs?: number;
}

export interface ResumeResult {
  target: string;
  missed: number;
  overlap: number;
  dropWaitMs: number;
  iterations: number;
  /** From opening the new socket until the last missed message arrived, ms (over the iterations where it did). */
  caughtUpMs: { p50: number; p90: number; p99: number; max: number };
  /** Iterations that got exactly the events after their since-seq, in seq order, nothing twice, nothing else. */
  exact: number;
  failures: string[];
}

const LINK = { heartbeatMs: 0, timeoutMs: 30_000 };
const WAIT_MS = 30_000;

/**
 * A client in a room drops without a goodbye; another member sends K messages (stored: the last RECEIPT is in);
 * the client reconnects with `session-resume` and subscribes with `since-seq`. Measured: the time until it has
 * all K; checked: it got exactly those K, in order, none twice.
 */
export async function runResume(o: ResumeOptions): Promise<ResumeResult> {
  const overlap = o.overlap ?? 0;
  const dropWaitMs = o.dropWaitMs ?? 0;
  const [reader, writer] = await createUsers(o.target.httpUrl, 2, runPrefix('res'));
  const roomId = await createGroupRoom(o.target.httpUrl, 'resume', [writer!, reader!]);
  const sender = await open(o.target, writer!, {});
  const times: number[] = [];
  const failures: string[] = [];
  let exact = 0;
  let resumeToken: string | undefined;
  let lastSeq = 0;
  let n = 0;
  try {
    // Prime the room so that since-seq can reach back `overlap` events from the start.
    await sendBatch(sender, roomId, overlap + 1, () => ++n);
    for (let i = 0; i < o.iterations; i++) {
      // Connected and caught up: subscribe live, then see one message arrive to know the last seq.
      const live = await open(o.target, reader!, resumeToken ? { 'session-resume': resumeToken } : {});
      resumeToken = live.connected['session-resume'];
      const seen = collect(live);
      await live.confirmed('SUBSCRIBE', { id: 'r', destination: roomTopic(roomId), 'since-seq': String(lastSeq) });
      await sendBatch(sender, roomId, 1, () => ++n);
      await until(() => seen.events.length > 0 && seen.events[seen.events.length - 1]!.text.endsWith(`|${n}`));
      lastSeq = seen.events[seen.events.length - 1]!.seq;
      live.drop();
      await new Promise((r) => setTimeout(r, dropWaitMs));

      const firstMissed = n + 1;
      await sendBatch(sender, roomId, o.missed, () => ++n);

      const t0 = performance.now();
      const back = await open(o.target, reader!, { 'session-resume': resumeToken! });
      resumeToken = back.connected['session-resume'];
      const got = collect(back);
      await back.confirmed('SUBSCRIBE', { id: 'r', destination: roomTopic(roomId), 'since-seq': String(lastSeq - overlap) });
      const caughtUp = await until(() => got.events.some((e) => e.text.endsWith(`|${n}`)), WAIT_MS).then(
        () => true,
        () => false,
      );
      const t1 = got.lastAt;
      // Anything that would come twice comes within the next moments; look a little longer before judging.
      await new Promise((r) => setTimeout(r, 50));
      const problem = checkExact(got.events, lastSeq - overlap, firstMissed - overlap, o.missed + overlap, got.other);
      if (caughtUp) times.push(t1 - t0);
      if (caughtUp && !problem) exact++;
      else failures.push(`iteration ${i}: ${caughtUp ? problem : `caught up with ${got.events.length} of ${o.missed} in ${WAIT_MS} ms`}`);
      lastSeq = got.events.length ? got.events[got.events.length - 1]!.seq : lastSeq;
      back.close();
    }
  } finally {
    sender.close();
  }
  times.sort((a, b) => a - b);
  const at = (p: number): number => (times.length ? times[Math.min(times.length - 1, Math.ceil(p * times.length) - 1)]! : 0);
  return {
    target: o.target.name,
    missed: o.missed,
    overlap,
    dropWaitMs,
    iterations: o.iterations,
    caughtUpMs: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: times.length ? times[times.length - 1]! : 0 },
    exact,
    failures: failures.slice(0, 10),
  };
}

interface Seen {
  events: Array<{ seq: number; text: string }>;
  /** Frames that were not this room's chat events (RESYNC, errors, ...), described. */
  other: string[];
  lastAt: number;
}

function collect(link: StompLink): Seen {
  const seen: Seen = { events: [], other: [], lastAt: 0 };
  link.onMessage = (frame) => {
    seen.lastAt = performance.now();
    const event = JSON.parse(frame.body) as RoomEvent | { type: string; code?: string };
    if (frame.headers.subscription === 'r' && event.type === 'CHAT' && 'seq' in event) {
      seen.events.push({ seq: event.seq, text: (event as { text: string }).text });
    } else seen.other.push(frame.body.slice(0, 200));
  };
  return seen;
}

/**
 * Exactly `count` events after `sinceSeq`, seqs rising by one, carrying messages `firstN`.. in order (one
 * writer numbers its messages consecutively); else what was wrong.
 */
function checkExact(events: Seen['events'], sinceSeq: number, firstN: number, count: number, other: string[]): string | null {
  if (other.length) return `unexpected frames: ${other.slice(0, 2).join(' | ')}`;
  if (events.length !== count) {
    const ns = new Set(events.map((e) => loadOf(e.text)?.n));
    const absent = Array.from({ length: count }, (_, k) => firstN + k).filter((n) => !ns.has(n));
    return `got ${events.length} events, expected ${count}; missing messages ${absent.slice(0, 20).join(',')}; first seq ${events[0]?.seq} after ${sinceSeq}`;
  }
  for (let k = 0; k < count; k++) {
    const e = events[k]!;
    const stamp = loadOf(e.text);
    if (e.seq !== sinceSeq + 1 + k) return `event ${k} has seq ${e.seq}, expected ${sinceSeq + 1 + k}`;
    if (stamp?.n !== firstN + k) return `event ${k} is message ${stamp?.n}, expected ${firstN + k}`;
  }
  return null;
}

async function open(target: ResumeOptions['target'], user: LoadUser, headers: Record<string, string>): Promise<StompLink> {
  const link = await StompLink.open(target.wsUrl, { Authorization: `Bearer ${user.accessToken}`, ...headers }, LINK);
  link.subscribe('e', USER_ERRORS);
  return link;
}

/** Send `count` messages back to back and wait until the last is stored (frames are handled in order). */
async function sendBatch(link: StompLink, roomId: string, count: number, nextN: () => number): Promise<void> {
  const dest = roomAction(roomId, 'send');
  for (let k = 1; k < count; k++) link.send(dest, JSON.stringify({ text: loadText({ sentAt: Date.now(), sender: 0, n: nextN() }) }));
  await link.confirmed('SEND', { destination: dest }, JSON.stringify({ text: loadText({ sentAt: Date.now(), sender: 0, n: nextN() }) }));
}

function until(predicate: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = (): void => {
      if (predicate()) return resolve();
      if (Date.now() > deadline) return reject(new Error('timed out'));
      setTimeout(check, 1);
    };
    check();
  });
}

export function printResume(results: ResumeResult[]): void {
  printTable(
    'resume after a drop (session-resume + since-seq)',
    ['target', 'missed', 'overlap', 'drop wait ms', 'iterations', 'exact', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'],
    results.map((r) => [r.target, r.missed, r.overlap, r.dropWaitMs, r.iterations, r.exact, r.caughtUpMs.p50, r.caughtUpMs.p90, r.caughtUpMs.p99, r.caughtUpMs.max]),
  );
  for (const r of results) for (const f of r.failures.slice(0, 3)) console.log(`  ${r.target}: ${f}`);
}
