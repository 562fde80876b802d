import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTempPostgres } from '../scripts/temp-postgres.ts';
import { api, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';

/** REST as a client meets it when things go wrong: every error a JSON `{code, message}` with its status. */
describe('REST error mapping', () => {
  let server: TestServer;
  let user: TestUser;
  beforeAll(async () => {
    server = await startTestGateway();
    user = await newUser(server.url, 'rest');
  });
  afterAll(() => server.stop());

  it('answers an unknown endpoint with 404 NOT_FOUND', async () => {
    expect(await api(server.url, 'GET', '/api/nothing-here')).toEqual({ status: 404, body: { code: 'NOT_FOUND', message: 'no such endpoint' } });
  });

  it('answers malformed JSON with 400 BAD_REQUEST', async () => {
    const res = await fetch(`${server.url}/api/rooms`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${user.accessToken}` },
      body: '{"kind": "group", ',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('answers a JSON body over the limit with 413 TOO_LARGE, before reading it into a handler', async () => {
    const res = await fetch(`${server.url}/api/rooms`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${user.accessToken}` },
      body: JSON.stringify({ kind: 'group', name: 'x'.repeat(100 * 1024) }),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ code: 'TOO_LARGE', message: 'request body too large' });
  });

  it('answers a body that fails its schema with 400 naming the field', async () => {
    const res = await api(server.url, 'POST', '/api/rooms', { kind: 'castle' }, user.accessToken);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('kind') });
  });

  it('answers 401 UNAUTHORIZED without a token, with a forged one, and with a refresh token used as an access token', async () => {
    const forged = `${user.accessToken.slice(0, -4)}AAAA`;
    for (const token of [undefined, forged, user.refreshToken]) {
      const res = await api(server.url, 'GET', '/api/rooms', undefined, token);
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ code: 'UNAUTHORIZED' });
    }
  });
});

describe('REST and readiness with the database down', () => {
  let server: TestServer;
  let proxy: TcpProxy;
  let user: TestUser;
  let dropDatabase: () => Promise<void>;
  beforeAll(async () => {
    const pg = await createTempPostgres();
    dropDatabase = pg.drop;
    proxy = await startTcpProxy(5432);
    const url = new URL(pg.url);
    url.port = String(proxy.port);
    server = await startTestGateway({ DATABASE_URL: url.toString() });
    user = await newUser(server.url, 'dbdown');
  });
  afterAll(async () => {
    await server.stop();
    await proxy.close();
    await dropDatabase();
  });

  it('says not ready (503, database false) and answers 500 INTERNAL without details, then recovers', async () => {
    expect(await api(server.url, 'GET', '/readyz')).toEqual({ status: 200, body: { status: 'ready', database: true, broker: true } });
    proxy.pause();
    proxy.dropAll();
    expect(await api(server.url, 'GET', '/readyz')).toEqual({ status: 503, body: { status: 'not ready', database: false, broker: true } });
    expect(await api(server.url, 'GET', '/api/rooms', undefined, user.accessToken)).toEqual({
      status: 500,
      body: { code: 'INTERNAL', message: 'internal error' },
    });
    expect(await api(server.url, 'GET', '/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    proxy.resume();
    expect(await api(server.url, 'GET', '/readyz')).toEqual({ status: 200, body: { status: 'ready', database: true, broker: true } });
    expect((await api(server.url, 'GET', '/api/rooms', undefined, user.accessToken)).status).toBe(200);
  });
});
