import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { startGateway, type Gateway } from '../../src/gateway.ts';
import { createLogger } from '../../src/logger.ts';
import { connectStomp, type TestClient } from './stomp-client.ts';

export interface TestServer {
  gateway: Gateway;
  url: string;
  wsUrl: string;
  stop(): Promise<void>;
}

/**
 * The per-address login and signup limits tests run with: every test client signs up and logs in from 127.0.0.1,
 * and gateways on the shared Redis count those across runs. The per-account login limit keeps its default.
 * README, "Limits", documents these values.
 */
export const TEST_RATE_LIMITS = { LOGIN_RATE_PER_IP: '1000000', SIGNUP_RATE_PER_IP: '1000000' } as const;

/**
 * Start a gateway on a free port with its own data dir; `env` overrides the configuration (e.g. DATABASE_URL),
 * `clock` the time the gateway's sweeps go by.
 */
export async function startTestGateway(env: Record<string, string> = {}, clock: { now?: () => number } = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'chat-test-'));
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'silent', ...TEST_RATE_LIMITS, ...env });
  const gateway = await startGateway(config, createLogger(process.env.TEST_LOG_LEVEL ?? config.LOG_LEVEL), clock);
  return {
    gateway,
    url: gateway.url,
    wsUrl: `${gateway.url.replace('http', 'ws')}/ws`,
    async stop() {
      await gateway.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TestUser {
  id: string;
  username: string;
  accessToken: string;
  refreshToken: string;
}

export async function api<T = unknown>(baseUrl: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: T }> {
  const { status, body: answer } = await apiWithHeaders<T>(baseUrl, method, path, body, token);
  return { status, body: answer };
}

/** `api` with extra request headers (e.g. X-Forwarded-For), answering the response headers too. */
export async function apiWithHeaders<T = unknown>(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
}

let userSeq = 0;

/** Sign up and log in a fresh user. */
export async function newUser(baseUrl: string, prefix = 'user'): Promise<TestUser> {
  const username = `${prefix}${process.pid}x${++userSeq}x${Date.now().toString(36)}`.slice(0, 32);
  const password = 'correct horse battery';
  const signup = await api<{ id: string }>(baseUrl, 'POST', '/api/auth/signup', { username, password });
  if (signup.status !== 201) throw new Error(`signup failed: ${signup.status} ${JSON.stringify(signup.body)}`);
  const login = await api<{ accessToken: string; refreshToken: string; user: { id: string } }>(baseUrl, 'POST', '/api/auth/login', {
    username,
    password,
  });
  if (login.status !== 200) throw new Error(`login failed: ${login.status}`);
  return { id: login.body.user.id, username, accessToken: login.body.accessToken, refreshToken: login.body.refreshToken };
}

/** Connect `user` over STOMP with its access token. */
export function connectAs(server: { wsUrl: string }, user: TestUser, extra: Record<string, string> = {}): Promise<TestClient> {
  return connectStomp(server.wsUrl, { Authorization: `Bearer ${user.accessToken}`, ...extra });
}
