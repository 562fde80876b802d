import { inBatches } from './batches.ts';

/** The REST half of PROTOCOL.md the scenarios need to set themselves up: sign-up, login, group rooms. */

export interface LoadUser {
  id: string;
  username: string;
  accessToken: string;
}

const PASSWORD = 'load-test-password';

async function call<T>(baseUrl: string, method: string, path: string, body: unknown, token?: string): Promise<T> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Sign up and log in `count` fresh users, `concurrency` at a time (argon2 makes each pair cost ~40 ms of CPU). */
export function createUsers(baseUrl: string, count: number, prefix: string, concurrency = 8): Promise<LoadUser[]> {
  return inBatches(count, concurrency, async (i) => {
    const username = `${prefix}${i}`;
    await call(baseUrl, 'POST', '/api/auth/signup', { username, password: PASSWORD });
    const login = await call<{ accessToken: string; user: { id: string } }>(baseUrl, 'POST', '/api/auth/login', { username, password: PASSWORD });
    return { id: login.user.id, username, accessToken: login.accessToken };
  });
}

/** A group room owned by `members[0]` with all of `members` in it; returns its id. */
export async function createGroupRoom(baseUrl: string, name: string, members: LoadUser[]): Promise<string> {
  const [owner, ...others] = members;
  const room = await call<{ id: string }>(baseUrl, 'POST', '/api/rooms', { kind: 'group', name, members: others.map((u) => u.id) }, owner!.accessToken);
  return room.id;
}

/** A unique, valid username prefix for one run (usernames are at most 32 characters of [A-Za-z0-9_.-]). */
export const runPrefix = (tag: string): string => `${tag}${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}_`;

/** A room's stored events in seq order (GET /api/rooms/:id/messages, every page). */
export async function roomEvents(baseUrl: string, token: string, roomId: string): Promise<Array<{ type: string; seq: number; id: string; text?: string }>> {
  const all: Array<{ type: string; seq: number; id: string; text?: string }> = [];
  for (;;) {
    const res = await fetch(`${baseUrl}/api/rooms/${roomId}/messages?after=${all.at(-1)?.seq ?? 0}&limit=500`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(30_000),
    });
    if (!res.ok) throw new Error(`GET messages of room ${roomId}: ${res.status}`);
    const page = (await res.json()) as typeof all;
    all.push(...page);
    if (page.length < 500) return all;
  }
}
