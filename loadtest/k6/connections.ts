/**
 * Idle connections: CLIENTS VUs each hold one STOMP session with heart-beats, subscribed to its room and its
 * errors, for IDLE_S seconds. Thresholds: connect time, and no session lost while idle. Read the gateway's
 * RSS and CPU meanwhile (e.g. /metrics `process_resident_memory_bytes`, or /proc/<pid>/status). Start the gateway
 * with MAX_CONNECTIONS above CLIENTS and MAX_CONNECTIONS_PER_USER above CLIENTS / 100 (the users behind them).
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8080 -e CLIENTS=5000 -e IDLE_S=60 loadtest/k6/connections.ts
 */
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import type { Options } from 'k6/options';
import { clearInterval, setInterval, setTimeout } from 'k6/timers';
import { destinations, num, openSession, planRooms, type RoomPlan } from './lib.ts';

const CLIENTS = num('CLIENTS', 1000);
const IDLE_S = num('IDLE_S', 60);
const HEARTBEAT_MS = num('HEARTBEAT_MS', 10_000);
/** Spread the connects over this many seconds. */
const RAMP_S = num('RAMP_S', 30);

export const options: Options = {
  setupTimeout: '10m',
  scenarios: {
    idle: { executor: 'per-vu-iterations', vus: CLIENTS, iterations: 1, maxDuration: `${RAMP_S + IDLE_S + 60}s` },
  },
  thresholds: {
    stomp_connect_time: ['p(95)<1000'],
    sessions_lost: ['count==0'],
    stomp_errors: ['count==0'],
    checks: ['rate==1'],
  },
};

const connectTime = new Trend('stomp_connect_time', true);
const sessionsLost = new Counter('sessions_lost');
const stompErrors = new Counter('stomp_errors');
const heartbeatsIn = new Counter('heartbeats_in');

export function setup(): RoomPlan {
  return planRooms('k6idle', 10, 10, 100);
}

export default function (plan: RoomPlan): void {
  const index = __VU - 1;
  const user = plan.users[index % plan.users.length]!;
  const roomId = plan.roomIds[Math.floor((index % 100) / plan.members)]!;
  setTimeout(() => {
    const t0 = Date.now();
    let done = false;
    let beat: number | undefined;
    const session = openSession({ Authorization: `Bearer ${user.accessToken}` }, HEARTBEAT_MS, {
      connected(s) {
        connectTime.add(Date.now() - t0);
        s.subscribe('e', destinations.USER_ERRORS);
        s.subscribe('r', destinations.roomTopic(roomId));
        // k6 sends no STOMP heart-beats itself: an EOL every interval keeps the session alive.
        beat = setInterval(() => s.ws.send('\n'), HEARTBEAT_MS);
        setTimeout(() => {
          done = true;
          clearInterval(beat!);
          check(session.ws.readyState, { 'session still open after idling': (st) => st === 1 });
          s.close();
        }, IDLE_S * 1000);
      },
      message(frame) {
        if (frame.headers.subscription === 'e') stompErrors.add(1);
      },
      error() {
        stompErrors.add(1);
      },
      closed() {
        if (beat !== undefined) clearInterval(beat);
        if (!done) sessionsLost.add(1);
      },
    });
    session.ws.addEventListener('message', (event) => {
      if ('data' in event && event.data === '\n') heartbeatsIn.add(1);
    });
  }, (index / CLIENTS) * RAMP_S * 1000);
}
