import { roomAction, roomTopic, USER_ERRORS } from '../../src/contract/destinations.ts';
import { ATTACKS, type AttackKind, type AttackLimits, type Outcome } from './attacks.ts';
import { inBatches } from './batches.ts';
import { rssBytes } from './proc.ts';
import { printTable } from './report.ts';
import { createGroupRoom, createUsers, roomEvents, runPrefix, type LoadUser } from './rest.ts';
import { StompLink } from './stomp-link.ts';
import type { Target } from './targets.ts';

/**
 * The soak: misbehaving sessions of every kind in attacks.ts (2,000 by default, shuffled, a bounded number at a
 * time) against one gateway while honest clients chat. It reports how each kind was refused or cut, whether the
 * honest clients got every message of their rooms exactly once and in order, the largest backlog the gateway's
 * /metrics showed, and the gateway's RSS before, during and after the attack.
 */

export interface SoakLimits extends AttackLimits {
  /** Outbound bytes one session may have pending (MAX_PENDING_BYTES). */
  maxPendingBytes: number;
  /** Inbound frames one session may have queued (2 x RATE_LIMIT_PER_S). */
  maxQueuedFrames: number;
}

export interface SoakOptions {
  target: Extract<Target, { kind: 'gateway' }>;
  /** The settings of the gateway under attack (its configuration). */
  limits: SoakLimits;
  sessions: number;
  /** Misbehaving sessions at a time (the `waits` kinds come on top, all at once). */
  concurrency: number;
  /** Honest clients, in rooms of `roomSize`; each sends a message every `sendEveryMs` during the attack. */
  honest: number;
  roomSize: number;
  sendEveryMs: number;
  /** Only these kinds (default: all). */
  kinds?: string[];
  /** No new misbehaving session starts after this long; those left are counted as not run. */
  attackBoundMs: number;
  answerMs: number;
  idleMs: number;
  /** Shuffles the mix. */
  seed: number;
}

export const SOAK_DEFAULTS = {
  sessions: 2000,
  concurrency: 100,
  honest: 20,
  roomSize: 5,
  sendEveryMs: 500,
  attackBoundMs: 150_000,
  answerMs: 10_000,
  idleMs: 30_000,
  seed: 20261129,
} as const;

export interface KindResult {
  kind: string;
  sessions: number;
  outcomes: Partial<Record<Outcome, number>>;
  /** Sessions where the gateway did not do what the hardening issue demands, and the first few reasons. */
  unmet: number;
  unmetSamples: string[];
}

export interface SoakResult {
  target: string;
  kinds: KindResult[];
  /** Sessions that never started within the attack bound. */
  notRun: number;
  attackS: number;
  honest: { clients: number; sent: number; confirmed: number; expected: number; received: number; problems: string[] };
  /** The largest values /metrics showed during the attack. */
  peaks: { queuedFramesMax: number; pendingBytesMax: number; queuedFrames: number; pendingBytes: number; sessions: number };
  /** chat_sessions before the attack and once every misbehaving session had gone. */
  sessionsBefore: number;
  sessionsAfter: number;
  /** Gateway RSS from /proc (only with its pid), and a sample every few seconds of the attack. */
  rss?: { beforeBytes: number; peakBytes: number; afterBytes: number; timeline: Array<[number, number]> };
}

/** A chat client that behaves: sends numbered messages with receipts and records every event of its room. */
class HonestClient {
  readonly received: Array<{ seq: number; id: string }> = [];
  readonly confirmed = new Set<string>();
  readonly pending = new Set<Promise<void>>();
  readonly problems: string[] = [];
  sent = 0;

  private constructor(
    readonly index: number,
    readonly roomId: string,
    private readonly link: StompLink,
  ) {
    link.onMessage = (frame) => {
      if (frame.headers.subscription === 'e') return void this.problems.push(`error event ${frame.body}`);
      const event = JSON.parse(frame.body) as { type: string; seq: number; id: string };
      if (event.type === 'CHAT') this.received.push({ seq: event.seq, id: event.id });
    };
    link.onFailure = (reason) => this.problems.push(reason);
  }

  static async open(target: SoakOptions['target'], index: number, user: LoadUser, roomId: string): Promise<HonestClient> {
    const link = await StompLink.open(target.wsUrl, { Authorization: `Bearer ${user.accessToken}` }, { heartbeatMs: 0, timeoutMs: 30_000 });
    const client = new HonestClient(index, roomId, link);
    await link.confirmed('SUBSCRIBE', { id: 'e', destination: USER_ERRORS });
    await link.confirmed('SUBSCRIBE', { id: 'r', destination: roomTopic(roomId) });
    return client;
  }

  sendNext(): void {
    const id = `h${this.index}-${++this.sent}`;
    const p = this.link
      .confirmed('SEND', { destination: roomAction(this.roomId, 'send'), 'client-msg-id': id }, JSON.stringify({ text: id }), 120_000)
      .then(
        () => void this.confirmed.add(id),
        (err: Error) => void this.problems.push(`${id}: ${err.message}`),
      )
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  close(): void {
    this.link.close();
  }
}

/** Every kind's sessions, shuffled (a seeded Fisher-Yates) so the kinds run side by side. */
function mix(kinds: AttackKind[], sessions: number, seed: number): AttackKind[] {
  const shares = kinds.reduce((n, k) => n + k.share, 0);
  const jobs = kinds.flatMap((k) => Array<AttackKind>(Math.max(1, Math.round((k.share * sessions) / shares))).fill(k));
  let state = seed >>> 0;
  const rand = (): number => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let i = jobs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [jobs[i], jobs[j]] = [jobs[j]!, jobs[i]!];
  }
  return jobs;
}

const GAUGES = ['chat_queued_frames_max', 'chat_pending_bytes_max', 'chat_queued_frames', 'chat_pending_bytes', 'chat_sessions'] as const;
type Gauges = Record<(typeof GAUGES)[number], number>;

async function readGauges(httpUrl: string): Promise<Gauges | undefined> {
  const text = await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text(), () => undefined);
  if (text === undefined) return undefined;
  const value = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return Object.fromEntries(GAUGES.map((g) => [g, value(g)])) as Gauges;
}

async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const { target } = o;
  const kinds = o.kinds ? ATTACKS.filter((k) => o.kinds!.includes(k.name)) : ATTACKS;
  if (o.kinds && kinds.length !== o.kinds.length) throw new Error(`unknown kinds in ${o.kinds.join(',')}: ${ATTACKS.map((k) => k.name).join(', ')}`);

  // Honest users in rooms of roomSize; attackers in a room of their own, so that what they do to it is theirs.
  const rooms = Math.ceil(o.honest / o.roomSize);
  const honestUsers = await createUsers(target.httpUrl, o.honest, runPrefix('soakh'));
  const attackers = await createUsers(target.httpUrl, 50, runPrefix('soaka'));
  const roomIds = await inBatches(rooms, 4, (r) => createGroupRoom(target.httpUrl, `soak ${r}`, honestUsers.filter((_, i) => i % rooms === r)));
  const attackRoom = await createGroupRoom(target.httpUrl, 'soak attackers', attackers);
  const honest = await inBatches(o.honest, 8, (i) => HonestClient.open(target, i, honestUsers[i]!, roomIds[i % rooms]!));

  const peaks = { queuedFramesMax: 0, pendingBytesMax: 0, queuedFrames: 0, pendingBytes: 0, sessions: 0 };
  const pid = target.pid;
  const rssTimeline: Array<[number, number]> = [];
  const before = await readGauges(target.httpUrl);
  const rssBefore = pid === undefined ? 0 : rssBytes(pid);
  let rssPeak = rssBefore;
  const t0 = Date.now();
  let sampling = true;
  const sampler = (async () => {
    let lastRssAt = -Infinity;
    while (sampling) {
      const g = await readGauges(target.httpUrl);
      if (g) {
        peaks.queuedFramesMax = Math.max(peaks.queuedFramesMax, g.chat_queued_frames_max);
        peaks.pendingBytesMax = Math.max(peaks.pendingBytesMax, g.chat_pending_bytes_max);
        peaks.queuedFrames = Math.max(peaks.queuedFrames, g.chat_queued_frames);
        peaks.pendingBytes = Math.max(peaks.pendingBytes, g.chat_pending_bytes);
        peaks.sessions = Math.max(peaks.sessions, g.chat_sessions);
      }
      if (pid !== undefined) {
        const rss = rssBytes(pid);
        rssPeak = Math.max(rssPeak, rss);
        if (Date.now() - lastRssAt >= 5000) {
          rssTimeline.push([Math.round((Date.now() - t0) / 1000), rss]);
          lastRssAt = Date.now();
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();

  const sender = setInterval(() => honest.forEach((c) => c.sendNext()), o.sendEveryMs);
  const results = new Map<string, KindResult>(kinds.map((k) => [k.name, { kind: k.name, sessions: 0, outcomes: {}, unmet: 0, unmetSamples: [] }]));
  const jobs = mix(kinds, o.sessions, o.seed);
  let nextAttacker = 0;
  const runOne = async (kind: AttackKind): Promise<void> => {
    const ctx = { wsUrl: target.wsUrl, token: attackers[nextAttacker++ % attackers.length]!.accessToken, roomId: attackRoom, limits: o.limits, answerMs: o.answerMs, idleMs: o.idleMs };
    const r = await kind.run(ctx).catch((err: Error) => ({ outcome: 'none' as const, unmet: [`threw ${err.message}`] }));
    const k = results.get(kind.name)!;
    k.sessions++;
    k.outcomes[r.outcome] = (k.outcomes[r.outcome] ?? 0) + 1;
    if (r.unmet.length) {
      k.unmet++;
      if (k.unmetSamples.length < 3) k.unmetSamples.push(r.unmet.join('; '));
    }
  };
  const waiting = jobs.filter((k) => k.waits);
  const pooled = jobs.filter((k) => !k.waits);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < pooled.length && Date.now() - t0 < o.attackBoundMs) await runOne(pooled[next++]!);
  };
  await Promise.all([...waiting.map(runOne), ...Array.from({ length: Math.min(o.concurrency, pooled.length) }, lane)]);
  const attackS = (Date.now() - t0) / 1000;
  clearInterval(sender);

  // Every honest send confirmed (or failed), then every client caught up with what its room stored.
  await Promise.all(honest.flatMap((c) => [...c.pending]));
  const problems: string[] = [];
  const stored = new Map<string, Array<{ seq: number; id: string }>>();
  for (const [r, roomId] of roomIds.entries()) {
    // A gateway the attack froze may not answer at all: that is a finding, not a reason to stop the report.
    const events = await roomEvents(target.httpUrl, honestUsers[r]!.accessToken, roomId).catch((err: Error) => {
      problems.push(`room ${r}: stored history unreadable: ${err.message}`);
      return [];
    });
    stored.set(roomId, events.filter((e) => e.type === 'CHAT').map((e) => ({ seq: e.seq, id: e.id })));
  }
  await waitFor(() => honest.every((c) => c.received.length >= stored.get(c.roomId)!.length), 30_000);
  await waitFor(async () => (await readGauges(target.httpUrl))?.chat_sessions === o.honest, 30_000);
  sampling = false;
  await sampler;
  const after = await readGauges(target.httpUrl);
  const rssAfter = pid === undefined ? 0 : rssBytes(pid);

  for (const c of honest) {
    const want = stored.get(c.roomId)!;
    if (JSON.stringify(c.received) !== JSON.stringify(want)) {
      const seen = new Set(c.received.map((e) => e.id));
      const missing = want.filter((e) => !seen.has(e.id)).length;
      problems.push(`client ${c.index}: ${c.received.length} events, room stored ${want.length} (${missing} missing, ${c.received.length - new Set(c.received.map((e) => e.id)).size} twice)`);
    }
    problems.push(...c.problems.slice(0, 3).map((p) => `client ${c.index}: ${p}`));
  }
  const confirmedIds = honest.flatMap((c) => [...c.confirmed]);
  const storedTexts = [...stored.values()].flat().length;
  if (storedTexts !== confirmedIds.length) problems.push(`${confirmedIds.length} sends confirmed, ${storedTexts} stored`);
  for (const c of honest) c.close();
  const kindResults = [...results.values()];
  return {
    target: target.name,
    kinds: kindResults,
    notRun: jobs.length - kindResults.reduce((n, k) => n + k.sessions, 0),
    attackS,
    honest: {
      clients: honest.length,
      sent: honest.reduce((n, c) => n + c.sent, 0),
      confirmed: confirmedIds.length,
      expected: honest.reduce((n, c) => n + stored.get(c.roomId)!.length, 0),
      received: honest.reduce((n, c) => n + c.received.length, 0),
      problems,
    },
    peaks,
    sessionsBefore: before?.chat_sessions ?? NaN,
    sessionsAfter: after?.chat_sessions ?? NaN,
    rss: pid === undefined ? undefined : { beforeBytes: rssBefore, peakBytes: rssPeak, afterBytes: rssAfter, timeline: rssTimeline },
  };
}

const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(0)} MiB`;

export function printSoak(r: SoakResult, limits: SoakLimits): void {
  const outcomes: Outcome[] = ['error-event', 'error-frame', 'closed', 'refused-upgrade', 'accepted', 'none'];
  printTable(
    `soak against ${r.target}: ${r.kinds.reduce((n, k) => n + k.sessions, 0)} misbehaving sessions in ${r.attackS.toFixed(0)} s (${r.notRun} not run)`,
    ['kind', 'sessions', ...outcomes, 'demand unmet'],
    r.kinds.map((k) => [k.kind, k.sessions, ...outcomes.map((o) => k.outcomes[o] ?? 0), k.unmet]),
  );
  for (const k of r.kinds) for (const s of k.unmetSamples.slice(0, 2)) console.log(`  ${k.kind}: ${s}`);
  const h = r.honest;
  console.log(`\nhonest: ${h.clients} clients sent ${h.sent}, ${h.confirmed} confirmed; received ${h.received} of ${h.expected} room events; ${h.problems.length ? h.problems.slice(0, 5).join(' | ') : 'every event exactly once, in order'}`);
  console.log(
    `backlog peaks (/metrics): queued frames in one session ${r.peaks.queuedFramesMax} (bound ${limits.maxQueuedFrames}), pending bytes in one session ${r.peaks.pendingBytesMax} (bound ${limits.maxPendingBytes}); all sessions ${r.peaks.queuedFrames} frames, ${r.peaks.pendingBytes} bytes; chat_sessions peak ${r.peaks.sessions}, before ${r.sessionsBefore}, after ${r.sessionsAfter}`,
  );
  if (r.rss) {
    console.log(`gateway RSS: before ${mib(r.rss.beforeBytes)}, peak during the attack ${mib(r.rss.peakBytes)}, after ${mib(r.rss.afterBytes)}`);
    console.log(`  during (s: MiB): ${r.rss.timeline.map(([s, b]) => `${s}: ${(b / 1048576).toFixed(0)}`).join(', ')}`);
  }
}
