/**
 * Fan-out: ROOMS rooms of MEMBERS clients (one VU each), every client sending RATE messages a second for
 * DURATION_S; each delivery's latency comes from the send time in its body. Thresholds: p99 < 100 ms, nothing
 * lost, duplicated or refused.
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8080 -e ROOMS=100 -e MEMBERS=10 -e RATE=2 loadtest/k6/fanout.ts
 *
 * Start the gateway with RATE_LIMIT_PER_S above RATE. ACCOUNTS (default 100) users are behind the clients.
 */
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import type { Options } from 'k6/options';
import { clearInterval, setInterval, setTimeout } from 'k6/timers';
import { loadOf, loadText } from '../common/payload.ts';
import { destinations, num, openSession, planRooms, type RoomPlan } from './lib.ts';

const ROOMS = num('ROOMS', 100);
const MEMBERS = num('MEMBERS', 10);
const ACCOUNTS = num('ACCOUNTS', 100);
const RATE = num('RATE', 2);
const DURATION_S = num('DURATION_S', 30);
/** Time for every VU to connect and subscribe before the first message goes out. */
const START_DELAY_S = num('START_DELAY_S', 20);
const DRAIN_S = num('DRAIN_S', 5);
const PER_SENDER = Math.floor(RATE * DURATION_S);

export const options: Options = {
  setupTimeout: '15m',
  scenarios: {
    fanout: { executor: 'per-vu-iterations', vus: ROOMS * MEMBERS, iterations: 1, maxDuration: `${START_DELAY_S + DURATION_S + DRAIN_S + 60}s` },
  },
  thresholds: {
    fanout_latency: ['p(50)<20', 'p(99)<100'],
    fanout_lost: ['count==0'],
    fanout_duplicated: ['count==0'],
    fanout_errors: ['count==0'],
    checks: ['rate==1'],
  },
};

const latency = new Trend('fanout_latency', true);
const delivered = new Counter('fanout_delivered');
const sent = new Counter('fanout_sent');
const lost = new Counter('fanout_lost');
const duplicated = new Counter('fanout_duplicated');
const errors = new Counter('fanout_errors');

interface Plan extends RoomPlan {
  startAt: number;
}

export function setup(): Plan {
  const plan = planRooms('k6fan', ROOMS, MEMBERS, ACCOUNTS);
  return { ...plan, startAt: Date.now() + START_DELAY_S * 1000 };
}

export default function (plan: Plan): void {
  const index = __VU - 1;
  const room = Math.floor(index / plan.members);
  const user = plan.users[index % plan.users.length]!;
  const roomId = plan.roomIds[room]!;
  const peers = Array.from({ length: plan.members }, (_, m) => room * plan.members + m);
  const seen = new Map<number, Set<number>>(peers.map((p) => [p, new Set<number>()]));
  let n = 0;

  const finish = (close: () => void): void => {
    let missing = 0;
    for (const got of seen.values()) missing += PER_SENDER - got.size;
    lost.add(missing);
    check(missing, { 'every message of the room arrived': (m) => m === 0 });
    close();
  };

  const session = openSession({ Authorization: `Bearer ${user.accessToken}` }, 0, {
    connected(s) {
      s.subscribe('e', destinations.USER_ERRORS);
      s.subscribe('r', destinations.roomTopic(roomId), { receipt: 'subscribed' });
    },
    receipt(id) {
      if (id === 'subscribed') startSending();
    },
    message(frame) {
      if (frame.headers.subscription === 'e') {
        errors.add(1);
        return;
      }
      const stamp = loadOf(frame.body);
      if (!stamp) return;
      const got = seen.get(stamp.sender);
      if (!got) return void errors.add(1); // a message from outside the room
      if (got.has(stamp.n)) return void duplicated.add(1);
      got.add(stamp.n);
      delivered.add(1);
      latency.add(Date.now() - stamp.sentAt);
    },
    error() {
      errors.add(1);
    },
  });

  /** Open loop from the common start time, each client at its own phase. */
  function startSending(): void {
    const phase = ((index * 0.6180339887) % 1) * (1000 / RATE);
    setTimeout(() => {
      const ticker = setInterval(() => {
        if (n >= PER_SENDER) {
          clearInterval(ticker);
          setTimeout(() => finish(() => session.close()), DRAIN_S * 1000);
          return;
        }
        n++;
        session.send(destinations.roomAction(roomId, 'send'), JSON.stringify({ text: loadText({ sentAt: Date.now(), sender: index, n }) }), {
          'content-type': 'application/json',
        });
        sent.add(1);
      }, 1000 / RATE);
    }, Math.max(0, plan.startAt - Date.now()) + phase);
  }
}
