import { roomAction, roomTopic } from '../../src/contract/destinations.ts';
import { encodeFrame } from '../common/stomp.ts';
import { RawSession, type Ending } from './raw-session.ts';

/**
 * The misbehaving sessions of the soak scenario: one kind per finding of the hardening issue, each with what the
 * issue demands the gateway answer. A kind runs one session (resume-twice: three connections of one session)
 * and reports how the gateway ended or refused it, and which demands it did not meet.
 */

/** How a misbehaving session came out: ended by the server (Ending), refused by error events, let through as the issue asks (accepted), or not refused at all. */
export type Outcome = Ending | 'error-event' | 'accepted' | 'none';

/** The settings of the gateway under attack that size the attacks. */
export interface AttackLimits {
  ratePerSecond: number;
  maxFrameBytes: number;
}

export interface AttackContext {
  wsUrl: string;
  /** An access token of an attacker account, a member of `roomId`. */
  token: string;
  roomId: string;
  limits: AttackLimits;
  /** How long a session waits for any one answer of the server before counting it as missing. */
  answerMs: number;
  /** How long an unauthenticated socket waits to be closed (beyond the gateway's CONNECT deadline). */
  idleMs: number;
}

export interface AttackResult {
  outcome: Outcome;
  /** What the hardening issue demands and the gateway did not do; empty when it behaved. */
  unmet: string[];
}

export interface AttackKind {
  name: string;
  /** Sessions of this kind in a mix of 2,000. */
  share: number;
  /** Sessions that only wait for the server: all started at once, outside the pool. */
  waits?: boolean;
  run(ctx: AttackContext): Promise<AttackResult>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** `p`, or nothing after `ms` (a flood must not hang on a server that stopped reading it). */
const within = (p: Promise<void>, ms: number): Promise<void> => Promise.race([p, sleep(ms)]);
const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MB`;

function outcomeOf(s: RawSession): Outcome {
  return s.ending ?? (s.errorEvents.length > 0 ? 'error-event' : 'none');
}

/** Open, CONNECT with an attacker's token (and `headers`), and subscribe to its errors unless told not to. */
async function connected(ctx: AttackContext, headers: Record<string, string> = {}, watchErrors = true): Promise<RawSession> {
  const s = await RawSession.open(ctx.wsUrl, ctx.answerMs);
  if (!s.isOpen) return s;
  if ((await s.connect({ Authorization: `Bearer ${ctx.token}`, ...headers }, ctx.answerMs)) && watchErrors) await s.watchErrors(ctx.answerMs);
  return s;
}

function notConnected(s: RawSession): AttackResult {
  return { outcome: outcomeOf(s), unmet: [`a valid CONNECT was not accepted: ${s.ending ?? 'no CONNECTED'} ${s.endDetail}`.trim()] };
}

/** What came back for the frame sent with receipt and client-request-code `id`. */
function answerTo(s: RawSession, id: string): string {
  const e = s.errorFor(id);
  if (e) return `error event ${e.code} (${e.message})`;
  if (s.receipts.has(id)) return 'RECEIPT (accepted)';
  return s.ending ? `${s.ending} ${s.endDetail}` : 'no answer';
}

/** Each frame must be refused with a BAD_REQUEST error event carrying its client-request-code. */
async function badRequests(ctx: AttackContext, frames: Array<{ what: string; command: string; headers: Record<string, string> }>): Promise<AttackResult> {
  const s = await connected(ctx);
  if (!s.connected) return notConnected(s);
  const ids = frames.map((_, i) => `f${i}`);
  for (const [i, f] of frames.entries()) await s.send(f.command, { ...f.headers, receipt: ids[i]!, 'client-request-code': ids[i]! }, f.command === 'SEND' ? 'x' : '');
  await s.until(() => ids.every((id) => s.answered(id)), ctx.answerMs);
  const unmet = frames.flatMap((f, i) => (s.errorFor(ids[i]!)?.code === 'BAD_REQUEST' ? [] : [`${f.what}: ${answerTo(s, ids[i]!)}, not BAD_REQUEST`]));
  s.close();
  return { outcome: outcomeOf(s), unmet };
}

/** A CONNECT with a valid token and this heart-beat header must get an ERROR frame. */
async function badHeartBeat(ctx: AttackContext, value: string): Promise<AttackResult> {
  const s = await RawSession.open(ctx.wsUrl, ctx.answerMs);
  if (s.isOpen) await s.connect({ Authorization: `Bearer ${ctx.token}`, 'heart-beat': value }, ctx.answerMs);
  await s.until(() => s.ending !== undefined, ctx.answerMs);
  const unmet = s.ending === 'error-frame' ? [] : [`heart-beat:${value} got ${s.connected ? 'CONNECTED' : `${s.ending ?? 'no answer'} ${s.endDetail}`.trim()}, not ERROR`];
  s.close();
  return { outcome: outcomeOf(s), unmet };
}

const TX_BYTES = 8 * 1048576;
/** The largest RECEIPT a client can ask for is one header line under MAX_HEADER_BYTES (8 KiB by default). */
const RECEIPT_ID_BYTES = 8000;
/**
 * A never-reading client asks for this much in RECEIPTs: the kernel's socket buffers take several MB before the
 * gateway holds any, and MAX_PENDING_BYTES (4 MiB) must be passed well beyond them.
 */
const NEVER_READ_BYTES = 24 * 1048576;
const NEVER_READ_FLOOD_MS = 30_000;
/** Of the rate limit: a busy gateway may see two of the client's one-second batches in one of its windows. */
const NEVER_READ_RATE_SHARE = 0.6;
/**
 * Past any WebSocket message bound a gateway may set: 4 x MAX_FRAME_BYTES (256 KiB) at first, MAX_WS_MESSAGE_BYTES
 * (2 MiB) once relay frames may be larger than chat frames.
 */
const OVERSIZED_WS_MESSAGE_BYTES = 4 * 1048576;
const FLOOD_MESSAGES = 4;
const FLOOD_FRAMES_PER_MESSAGE = 500;
/** The routing key the wildcard freeze sends to: 26 words, against a pattern of ten `#` and a last word that never matches. */
const WILDCARD_PATTERN = `/topic/${Array(10).fill('#').join('.')}.z`;
const WILDCARD_KEY = `/topic/${Array(26).fill('a').join('.')}`;
const LONG = 'n'.repeat(300);

let oversized: Buffer | undefined;
/** Built once: every session of the kind sends the same bytes. */
function oversizedWsMessage(): Buffer {
  const one = encodeFrame('SEND', { destination: '/topic/soak.big' }, 'x');
  return (oversized ??= Buffer.from(one.repeat(Math.ceil(OVERSIZED_WS_MESSAGE_BYTES / one.length))));
}

export const ATTACKS: AttackKind[] = [
  {
    name: 'wildcard-freeze',
    share: 100,
    async run(ctx) {
      const s = await connected(ctx);
      if (!s.connected) return notConnected(s);
      await s.send('SUBSCRIBE', { id: 'w', destination: WILDCARD_PATTERN, receipt: 'sub', 'client-request-code': 'sub' });
      await s.send('SEND', { destination: WILDCARD_KEY, receipt: 'send', 'client-request-code': 'send' }, 'x');
      await s.until(() => s.answered('sub') && s.answered('send'), ctx.answerMs);
      const unmet: string[] = [];
      if (s.errorFor('sub')?.code !== 'BAD_REQUEST') unmet.push(`SUBSCRIBE ${WILDCARD_PATTERN}: ${answerTo(s, 'sub')}, not BAD_REQUEST`);
      if (!s.answered('send')) unmet.push(`SEND to a 26-word key: no answer within ${ctx.answerMs} ms (${answerTo(s, 'send')})`);
      s.close();
      return { outcome: outcomeOf(s), unmet };
    },
  },
  {
    name: 'topic-pattern-300-bytes',
    share: 100,
    run: (ctx) =>
      badRequests(ctx, [
        { what: 'SUBSCRIBE /topic/<300 bytes>', command: 'SUBSCRIBE', headers: { id: 't', destination: `/topic/soak.${LONG}` } },
        { what: 'SEND /topic/<300 bytes>', command: 'SEND', headers: { destination: `/topic/soak.${LONG}` } },
      ]),
  },
  {
    name: 'queue-name-300-bytes',
    share: 100,
    run: (ctx) =>
      badRequests(ctx, [
        { what: 'SUBSCRIBE /queue/<300 bytes>', command: 'SUBSCRIBE', headers: { id: 'q', destination: `/queue/soak.${LONG}` } },
        { what: 'SEND /queue/<300 bytes>', command: 'SEND', headers: { destination: `/queue/soak.${LONG}` } },
      ]),
  },
  {
    name: 'prefetch-70000',
    share: 100,
    run: (ctx) =>
      badRequests(ctx, [{ what: 'SUBSCRIBE prefetch-count:70000', command: 'SUBSCRIBE', headers: { id: 'p', destination: '/queue/soak.prefetch', ack: 'client', 'prefetch-count': '70000' } }]),
  },
  {
    name: 'queue-amq-prefix',
    share: 100,
    run: (ctx) =>
      badRequests(ctx, [
        { what: 'SUBSCRIBE /queue/amq.x', command: 'SUBSCRIBE', headers: { id: 'a', destination: '/queue/amq.x' } },
        { what: 'SEND /queue/amq.x', command: 'SEND', headers: { destination: '/queue/amq.x' } },
      ]),
  },
  {
    // BEGIN, then 8 MB of SENDs in the transaction, never COMMIT: the gateway must end it (error event or cut).
    name: 'transaction-flood',
    share: 40,
    async run(ctx) {
      const s = await connected(ctx);
      if (!s.connected) return notConnected(s);
      const refused = (): boolean => s.ending !== undefined || s.errorEvents.some((e) => e.code !== 'RATE_LIMITED');
      await s.send('BEGIN', { transaction: 'tx' });
      const body = 'x'.repeat(ctx.limits.maxFrameBytes - 1024);
      let sent = 0;
      const deadline = Date.now() + ctx.answerMs;
      while (sent * body.length < TX_BYTES && s.isOpen && !refused() && Date.now() < deadline) {
        await within(s.send('SEND', { destination: '/topic/soak.tx', transaction: 'tx' }, body), ctx.answerMs);
        sent++;
      }
      await s.until(refused, ctx.answerMs);
      const unmet = refused() ? [] : [`${sent} SENDs (${mb(sent * body.length)}) held in an open transaction, never refused`];
      s.close();
      return { outcome: outcomeOf(s), unmet };
    },
  },
  {
    name: 'idle-unauthenticated',
    share: 330,
    waits: true,
    async run(ctx) {
      const s = await RawSession.open(ctx.wsUrl, ctx.answerMs);
      await s.until(() => false, ctx.idleMs);
      const ok = s.ending === 'error-frame' || s.ending === 'refused-upgrade';
      const unmet = ok
        ? []
        : [s.ending ? `${s.ending} ${s.endDetail} without an ERROR frame` : s.isOpen ? `still open after ${ctx.idleMs} ms without a CONNECT` : `no answer: ${s.endDetail}`];
      s.close();
      return { outcome: outcomeOf(s), unmet };
    },
  },
  { name: 'heart-beat-negative', share: 150, run: (ctx) => badHeartBeat(ctx, '-1,0') },
  { name: 'heart-beat-abc', share: 150, run: (ctx) => badHeartBeat(ctx, 'abc') },
  {
    // The demand is a clamp, not a refusal: the session works, and the gateway arms no timer it cannot hold.
    name: 'heart-beat-huge',
    share: 100,
    async run(ctx) {
      const s = await connected(ctx, { 'heart-beat': '99999999999,0' });
      if (!s.connected) return notConnected(s);
      await s.send('SEND', { destination: '/topic/soak.hb', receipt: 'hb', 'client-request-code': 'hb' }, 'x');
      await s.until(() => s.answered('hb'), ctx.answerMs);
      const ok = s.receipts.has('hb') && !s.ending;
      s.close();
      return { outcome: ok ? 'accepted' : outcomeOf(s), unmet: ok ? [] : [`clamped session did not work: ${answerTo(s, 'hb')}`] };
    },
  },
  {
    // Never reads its socket while asking for RECEIPTs of 8 KB each, paced under the rate limit: every outbound
    // frame must count toward the slow-consumer bound, so the gateway must cut it.
    name: 'never-reads-receipts',
    share: 20,
    async run(ctx) {
      const s = await connected(ctx, {}, false);
      if (!s.connected) return notConnected(s);
      s.pauseReading();
      const perSecond = Math.floor(ctx.limits.ratePerSecond * NEVER_READ_RATE_SHARE);
      const frame = (i: number): string => encodeFrame('SEND', { destination: '/topic/soak.sink', receipt: `${i}-${'r'.repeat(RECEIPT_ID_BYTES)}` }, 'x');
      // A WebSocket message stays well under the gateway's largest (4 frames' worth).
      const perMessage = Math.max(1, Math.floor((ctx.limits.maxFrameBytes * 2) / frame(0).length));
      const total = Math.ceil(NEVER_READ_BYTES / RECEIPT_ID_BYTES);
      const deadline = Date.now() + NEVER_READ_FLOOD_MS;
      let sent = 0;
      while (sent < total && s.isOpen && Date.now() < deadline) {
        const second = Date.now();
        for (let k = 0; k < perSecond && sent < total && s.isOpen; ) {
          const n = Math.min(perMessage, perSecond - k, total - sent);
          await within(s.sendRaw(Array.from({ length: n }, (_, j) => frame(sent + j)).join('')), ctx.answerMs);
          sent += n;
          k += n;
        }
        await sleep(Math.max(0, 1000 - (Date.now() - second)));
      }
      s.resumeReading();
      // What piled up comes now (a frame refused by the rate limit has no RECEIPT: the wait ends at the bound then).
      await s.until(() => s.receiptCount >= sent, ctx.answerMs * 2);
      const cut = s.ending === 'error-frame' || s.ending === 'closed';
      const unmet = cut ? [] : [`asked for ${sent} RECEIPTs (${mb(sent * RECEIPT_ID_BYTES)}) without reading, read ${s.receiptCount} afterwards, never cut`];
      s.close();
      return { outcome: outcomeOf(s), unmet };
    },
  },
  {
    // More SENDs than the rate allows in one WebSocket message: every frame over the rate gets its own RATE_LIMITED.
    name: 'rate-burst-one-message',
    share: 100,
    async run(ctx) {
      const s = await connected(ctx);
      if (!s.connected) return notConnected(s);
      const n = ctx.limits.ratePerSecond + 50;
      const ids = Array.from({ length: n }, (_, i) => `b${i}`);
      await s.sendRaw(ids.map((id) => encodeFrame('SEND', { destination: '/topic/soak.burst', receipt: id, 'client-request-code': id }, 'x')).join(''));
      await s.until(() => ids.every((id) => s.answered(id)), ctx.answerMs);
      const limited = s.errorEvents.filter((e) => e.code === 'RATE_LIMITED').length;
      const unanswered = ids.filter((id) => !s.answered(id)).length;
      const unmet: string[] = [];
      if (unanswered > 0) unmet.push(`${unanswered} of ${n} SENDs in one message got neither RECEIPT nor error event (${limited} RATE_LIMITED)`);
      else if (limited < n - ctx.limits.ratePerSecond) unmet.push(`only ${limited} RATE_LIMITED for ${n} SENDs at a rate of ${ctx.limits.ratePerSecond}/s`);
      s.close();
      return { outcome: outcomeOf(s), unmet };
    },
  },
  {
    // One session-resume token, CONNECTed with twice more: each newer connection takes the session over and the
    // older one gets an ERROR frame.
    name: 'session-resume-twice',
    share: 60,
    async run(ctx) {
      const first = await connected(ctx, {}, false);
      if (!first.connected) return notConnected(first);
      const token = first.connected['session-resume']!;
      const second = await connected(ctx, { 'session-resume': token }, false);
      await first.until(() => false, ctx.answerMs);
      const third = await connected(ctx, { 'session-resume': token }, false);
      await second.until(() => false, ctx.answerMs);
      const unmet: string[] = [];
      if (!second.connected || !third.connected) unmet.push('a CONNECT with a live session-resume token was not accepted');
      if (first.ending !== 'error-frame') unmet.push(`the first connection ${first.ending ?? 'stayed open'} when a second took its session over`);
      if (second.connected && second.ending !== 'error-frame') unmet.push(`the second connection ${second.ending ?? 'stayed open'} when a third took its session over`);
      for (const c of [first, second, third]) c.close();
      return { outcome: outcomeOf(first), unmet };
    },
  },
  {
    name: 'room-subscribed-twice',
    share: 100,
    async run(ctx) {
      const s = await connected(ctx);
      if (!s.connected) return notConnected(s);
      await s.send('SUBSCRIBE', { id: 'a', destination: roomTopic(ctx.roomId), receipt: 'a', 'client-request-code': 'a' });
      await s.until(() => s.answered('a'), ctx.answerMs);
      await s.send('SUBSCRIBE', { id: 'b', destination: roomTopic(ctx.roomId), receipt: 'b', 'client-request-code': 'b' });
      await s.until(() => s.answered('b'), ctx.answerMs);
      const unmet: string[] = [];
      if (!s.receipts.has('a')) unmet.push(`first SUBSCRIBE to the room: ${answerTo(s, 'a')}`);
      else if (!s.errorFor('b')) unmet.push(`second SUBSCRIBE to the same room: ${answerTo(s, 'b')}, not an error event`);
      s.close();
      return { outcome: outcomeOf(s), unmet };
    },
  },
  {
    name: 'since-seq-1e300',
    share: 100,
    run: (ctx) => badRequests(ctx, [{ what: 'SUBSCRIBE since-seq:1e300', command: 'SUBSCRIBE', headers: { id: 's', destination: roomTopic(ctx.roomId), 'since-seq': '1e300' } }]),
  },
  {
    // A chat SEND over MAX_FRAME_BYTES (relay destinations may allow larger frames).
    name: 'oversized-frame',
    share: 200,
    async run(ctx) {
      const s = await connected(ctx, {}, false);
      if (!s.connected) return notConnected(s);
      await s.send('SEND', { destination: roomAction(ctx.roomId, 'send') }, JSON.stringify({ text: 'x'.repeat(ctx.limits.maxFrameBytes + 1024) }));
      await s.until(() => false, ctx.answerMs);
      const unmet = s.ending === 'error-frame' ? [] : [`a frame over MAX_FRAME_BYTES: ${s.ending ?? 'no answer'} ${s.endDetail}, not ERROR`.trim()];
      s.close();
      return { outcome: outcomeOf(s), unmet };
    },
  },
  {
    name: 'oversized-ws-message',
    share: 50,
    async run(ctx) {
      const s = await connected(ctx, {}, false);
      if (!s.connected) return notConnected(s);
      // Small valid frames, together more than the gateway's largest WebSocket message.
      await within(s.sendRaw(oversizedWsMessage()), ctx.answerMs);
      await s.until(() => false, ctx.answerMs);
      const unmet = s.ending === 'closed' || s.ending === 'error-frame' ? [] : [`a WebSocket message of ${mb(OVERSIZED_WS_MESSAGE_BYTES)} was taken`];
      s.close();
      return { outcome: outcomeOf(s), unmet };
    },
  },
  {
    name: 'frame-flood',
    share: 100,
    async run(ctx) {
      const s = await connected(ctx);
      if (!s.connected) return notConnected(s);
      const limited = (): boolean => s.errorEvents.some((e) => e.code === 'RATE_LIMITED');
      const message = encodeFrame('SEND', { destination: '/topic/soak.flood' }, 'x').repeat(FLOOD_FRAMES_PER_MESSAGE);
      for (let m = 0; m < FLOOD_MESSAGES && s.isOpen; m++) await within(s.sendRaw(message), ctx.answerMs);
      await s.until(limited, ctx.answerMs);
      const unmet = s.ending || limited() ? [] : [`${FLOOD_MESSAGES * FLOOD_FRAMES_PER_MESSAGE} frames taken without RATE_LIMITED or a cut`];
      s.close();
      return { outcome: outcomeOf(s), unmet };
    },
  },
];
