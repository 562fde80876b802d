/**
 * Resume: a reader drops, a writer sends MISSED messages (the last with a receipt, so all are stored), the
 * reader reconnects with `session-resume` and subscribes with `since-seq`; the time until it has them all is
 * `resume_catch_up`, and it must get exactly those, in seq order, none twice.
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8080 -e MISSED=300 -e ITERATIONS=50 loadtest/k6/resume.ts
 *
 * Start the gateway with RATE_LIMIT_PER_S above MISSED (the writer sends them in one burst).
 */
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import type { Options } from 'k6/options';
import { setTimeout } from 'k6/timers';
import { loadOf, loadText } from '../common/payload.ts';
import { createGroupRoom, createUsers, destinations, num, openSession, runPrefix, type User } from './lib.ts';

const MISSED = num('MISSED', 300);
const ITERATIONS = num('ITERATIONS', 50);
/** Pause between the drop and the first missed message (ms); 0 sends while the server may not have seen the drop yet. */
const DROP_WAIT_MS = num('DROP_WAIT_MS', 500);

export const options: Options = {
  scenarios: { resume: { executor: 'per-vu-iterations', vus: 1, iterations: ITERATIONS, maxDuration: `${ITERATIONS * 10 + 60}s` } },
  thresholds: {
    resume_catch_up: ['p(99)<200'],
    resume_inexact: ['count==0'],
    checks: ['rate==1'],
  },
};

const catchUp = new Trend('resume_catch_up', true);
const inexact = new Counter('resume_inexact');

interface Setup {
  reader: User;
  writer: User;
  roomId: string;
}

export function setup(): Setup {
  const [writer, reader] = createUsers(runPrefix('k6res'), 2);
  return { reader: reader!, writer: writer!, roomId: createGroupRoom('k6 resume', [writer!, reader!]) };
}

/** Per VU, across iterations: the resume token and the last seq the reader has. */
let resumeToken: string | undefined;
let lastSeq = -1;

interface Chat {
  seq: number;
  n: number;
}

function chatOf(body: string): Chat | null {
  const event = JSON.parse(body) as { type: string; seq?: number; text?: string };
  const stamp = event.type === 'CHAT' && event.text ? loadOf(event.text) : null;
  return stamp && event.seq !== undefined ? { seq: event.seq, n: stamp.n } : null;
}

export default function (s: Setup): void {
  const auth = (u: User): Record<string, string> => ({ Authorization: `Bearer ${u.accessToken}` });
  const room = destinations.roomTopic(s.roomId);
  const send = destinations.roomAction(s.roomId, 'send');
  /** The marker message of this iteration has a number of its own, above any missed message's. */
  const marker = 1_000_000 + __ITER;
  const stored = `stored-${__ITER}`;

  const writer = openSession(auth(s.writer), 0, {
    connected: () => goLive(),
    receipt(id) {
      if (id === stored) reconnect();
    },
  });

  // 1. The reader is live and sees the marker message: now it knows its last seq.
  function goLive(): void {
    const live = openSession({ ...auth(s.reader), ...(resumeToken ? { 'session-resume': resumeToken } : {}) }, 0, {
      connected(session, headers) {
        resumeToken = headers['session-resume'];
        session.subscribe('r', room, lastSeq >= 0 ? { 'since-seq': String(lastSeq), receipt: 'live' } : { receipt: 'live' });
      },
      receipt: () => writer.send(send, JSON.stringify({ text: loadText({ sentAt: Date.now(), sender: 0, n: marker }) })),
      message(frame) {
        const chat = chatOf(frame.body);
        if (!chat) return;
        lastSeq = chat.seq;
        if (chat.n !== marker) return;
        // 2. It drops; the writer sends MISSED messages, the last with a receipt (stored: they all are).
        live.ws.close();
        setTimeout(() => {
          for (let n = 1; n <= MISSED; n++) {
            const body = JSON.stringify({ text: loadText({ sentAt: Date.now(), sender: 0, n }) });
            writer.send(send, body, n === MISSED ? { receipt: stored } : {});
          }
        }, DROP_WAIT_MS);
      },
    });
  }

  // 3. The reader comes back with session-resume and since-seq; time until it has all MISSED, exactly.
  function reconnect(): void {
    const from = lastSeq;
    const got: Chat[] = [];
    const t0 = Date.now();
    const back = openSession({ ...auth(s.reader), 'session-resume': resumeToken! }, 0, {
      connected(session, headers) {
        resumeToken = headers['session-resume'];
        session.subscribe('r', room, { 'since-seq': String(from) });
      },
      message(frame) {
        const chat = chatOf(frame.body);
        if (!chat) return;
        got.push(chat);
        lastSeq = chat.seq;
        if (chat.n !== MISSED) return;
        catchUp.add(Date.now() - t0);
        const exact = got.length === MISSED && got.every((c, k) => c.n === k + 1 && c.seq === from + 1 + k);
        if (!check(got, { 'got exactly the missed messages, in order': () => exact })) inexact.add(1);
        back.close();
        writer.close();
      },
    });
  }
}
