/**
 * What the k6 scenarios share: REST set-up (sign-up, login, group rooms, as PROTOCOL.md describes) and a STOMP
 * 1.2 session over k6's WebSocket API, framed by the same code as the Node generator (../common/stomp.ts).
 * k6 (v0.57+) runs TypeScript and bundles these relative imports itself.
 */
import { check, fail } from 'k6';
import http from 'k6/http';
import { WebSocket, type MessageEvent } from 'k6/websockets';
import { roomAction, roomTopic, USER_ERRORS } from '../../src/contract/destinations.ts';
import { encodeFrame, FrameDecoder, type StompFrame } from '../common/stomp.ts';

/** Where the gateway is: BASE_URL=http://host:port (the WebSocket is `/ws` on the same host). */
export const BASE_URL = (__ENV.BASE_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
export const WS_URL = `${BASE_URL.replace(/^http/, 'ws')}/ws`;

export const num = (name: string, fallback: number): number => (__ENV[name] === undefined ? fallback : Number(__ENV[name]));

export interface User {
  id: string;
  username: string;
  accessToken: string;
}

const PASSWORD = 'load-test-password';
const JSON_HEADERS = { headers: { 'content-type': 'application/json' } };

function post<T>(path: string, body: unknown, token?: string): T {
  const params = token ? { headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } } : JSON_HEADERS;
  const res = http.post(`${BASE_URL}${path}`, JSON.stringify(body), params);
  if (!check(res, { [`POST ${path} succeeded`]: (r) => r.status >= 200 && r.status < 300 })) fail(`POST ${path}: ${res.status} ${String(res.body)}`);
  return res.json() as T;
}

/** Sign up and log in `count` users named `<prefix><i>`. */
export function createUsers(prefix: string, count: number): User[] {
  const users: User[] = [];
  for (let i = 0; i < count; i++) {
    const username = `${prefix}${i}`;
    post('/api/auth/signup', { username, password: PASSWORD });
    const login = post<{ accessToken: string; user: { id: string } }>('/api/auth/login', { username, password: PASSWORD });
    users.push({ id: login.user.id, username, accessToken: login.accessToken });
  }
  return users;
}

/** A group room owned by `members[0]` with all of `members` in it. */
export function createGroupRoom(name: string, members: User[]): string {
  const [owner, ...others] = members;
  if (!owner) fail('a room needs an owner');
  return post<{ id: string }>('/api/rooms', { kind: 'group', name, members: others.map((u) => u.id) }, owner.accessToken).id;
}

/** A unique username prefix for one run. */
export const runPrefix = (tag: string): string => `${tag}${Date.now().toString(36)}_`;

export interface RoomPlan {
  roomIds: string[];
  /** Client i is users[i % users.length] in room floor(i / members). */
  users: User[];
  members: number;
}

/** R rooms of M members over U accounts (U >= M): every client is its own STOMP session. */
export function planRooms(tag: string, rooms: number, members: number, accounts: number): RoomPlan {
  const users = createUsers(runPrefix(tag), Math.min(accounts, rooms * members));
  const roomIds: string[] = [];
  for (let r = 0; r < rooms; r++) {
    roomIds.push(createGroupRoom(`${tag} ${r}`, Array.from({ length: members }, (_, m) => users[(r * members + m) % users.length]!)));
  }
  return { roomIds, users, members };
}

export const destinations = { roomTopic, roomAction, USER_ERRORS };

export interface Session {
  ws: WebSocket;
  send(destination: string, body: string, headers?: Record<string, string>): void;
  subscribe(id: string, destination: string, headers?: Record<string, string>): void;
  close(): void;
}

export interface SessionHandlers {
  connected(session: Session, headers: Record<string, string>): void;
  message?(frame: StompFrame): void;
  receipt?(id: string): void;
  error?(message: string): void;
  closed?(): void;
}

/** Open a STOMP session: CONNECT with `connectHeaders` and a heart-beat both ways; frames go to `on`. */
export function openSession(connectHeaders: Record<string, string>, heartbeatMs: number, on: SessionHandlers): Session {
  const ws = new WebSocket(WS_URL, null, { headers: { 'Sec-WebSocket-Protocol': 'v12.stomp' } });
  const decoder = new FrameDecoder();
  const session: Session = {
    ws,
    send: (destination, body, headers = {}) => ws.send(encodeFrame('SEND', { destination, ...headers }, body)),
    subscribe: (id, destination, headers = {}) => ws.send(encodeFrame('SUBSCRIBE', { id, destination, ack: 'auto', ...headers })),
    close: () => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encodeFrame('DISCONNECT', {}));
      ws.close();
    },
  };
  ws.onopen = () => ws.send(encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'chat', 'heart-beat': `${heartbeatMs},${heartbeatMs}`, ...connectHeaders }));
  ws.onmessage = (event?: MessageEvent) => {
    if (!event || typeof event.data !== 'string') return;
    for (const frame of decoder.push(event.data)) {
      if (frame.command === 'CONNECTED') on.connected(session, frame.headers);
      else if (frame.command === 'MESSAGE') on.message?.(frame);
      else if (frame.command === 'RECEIPT') on.receipt?.(frame.headers['receipt-id'] ?? '');
      else if (frame.command === 'ERROR') on.error?.(frame.headers.message ?? frame.body);
    }
  };
  ws.onerror = () => on.error?.('websocket error');
  ws.onclose = () => on.closed?.();
  return session;
}
