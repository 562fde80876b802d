import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { AuditLog } from '../src/audit.ts';
import { hashPassword, verifyPassword } from '../src/auth/passwords.ts';
import { createLogger } from '../src/logger.ts';
import { migratePGlite, migratePostgres, readMigrations } from '../src/store/migrate.ts';
import { MIGRATIONS_DIR } from '../src/store/schema-engine.ts';
import { clusterTopology } from '../scripts/local-cluster.ts';
import { createTempPostgres } from '../scripts/temp-postgres.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';
import { api, apiWithHeaders, newUser, startTestGateway, type TestServer } from './support/gateway.ts';

// Counted, never timed: how often the gateway hashes and verifies, and with which stored hash.
vi.mock('../src/auth/passwords.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/auth/passwords.ts')>();
  return { ...real, hashPassword: vi.fn(real.hashPassword), verifyPassword: vi.fn(real.verifyPassword) };
});

const PASSWORD = 'correct horse battery';
const audit = vi.spyOn(AuditLog.prototype, 'record');
afterEach(() => {
  vi.mocked(hashPassword).mockClear();
  vi.mocked(verifyPassword).mockClear();
  audit.mockClear();
});

let nameSeq = 0;
/** A username no other test (or run) uses. */
const freshName = (prefix: string) => `${prefix}${randomBytes(4).toString('hex')}${++nameSeq}`;

const signup = (s: TestServer, username: string, headers: Record<string, string> = {}) =>
  apiWithHeaders<{ id: string; username: string; code?: string }>(s.url, 'POST', '/api/auth/signup', { username, password: PASSWORD }, undefined, headers);

type LoginBody = { accessToken: string; refreshToken: string; user: { id: string; username: string }; code?: string };
const login = (s: TestServer, username: string, password: string, headers: Record<string, string> = {}) =>
  apiWithHeaders<LoginBody>(s.url, 'POST', '/api/auth/login', { username, password }, undefined, headers);

const refresh = (s: TestServer, refreshToken: string) => api<LoginBody>(s.url, 'POST', '/api/auth/refresh', { refreshToken });

const changePassword = (s: TestServer, accessToken: string, currentPassword: string, newPassword: string, headers: Record<string, string> = {}) =>
  apiWithHeaders<LoginBody>(s.url, 'POST', '/api/auth/password', { currentPassword, newPassword }, accessToken, headers);

/** `chat_limit_refusals_total{limit}` as the gateway's /metrics reports it (0 when never counted). */
async function refusals(s: TestServer, limit: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('chat_limit_refusals_total{') && l.includes(`limit="${limit}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** The argon2 variant and parameters a PHC string records, e.g. `argon2id m=19456 p=1 t=2`. */
const argonParams = (hash: string) => `${hash.split('$')[1]} ${hash.split('$')[3]!.split(',').sort().join(' ')}`;

function expectRateLimited(res: { status: number; body: { code?: string }; headers: Headers }): void {
  expect(res.status).toBe(429);
  expect(res.body.code).toBe('RATE_LIMITED');
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
}

describe.each([{ engine: 'memory' }, { engine: 'redis' }])('login and signup rate limits ($engine)', ({ engine }) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestGateway({
      ...(engine === 'redis' ? { REDIS_URL: 'redis://127.0.0.1:6379' } : {}),
      LOGIN_RATE_PER_ACCOUNT: '3',
      // Per-address limits are tested from addresses of their own (TRUST_PROXY below), not 127.0.0.1 that
      // every other test run on the shared Redis signs up from.
      TRUST_PROXY: 'loopback',
      LOGIN_RATE_PER_IP: '4',
      SIGNUP_RATE_PER_IP: '2',
    });
  });
  afterAll(() => server?.stop());

  /** A client address of this run only, as nginx would pass it. */
  const fromAddress = () => ({ 'x-forwarded-for': `10.${randomBytes(3).join('.')}` });

  test('an account takes LOGIN_RATE_PER_ACCOUNT attempts, then 429 before any password is checked, even the right one', async () => {
    const username = freshName('acct');
    expect((await signup(server, username, fromAddress())).status).toBe(201);
    // A successful login starts the account's count again.
    expect((await login(server, username, 'wrong', fromAddress())).status).toBe(401);
    expect((await login(server, username, PASSWORD, fromAddress())).status).toBe(200);
    vi.mocked(verifyPassword).mockClear();
    for (let i = 0; i < 3; i++) expect((await login(server, username, `wrong-${i}`, fromAddress())).status).toBe(401);
    const address = fromAddress();
    // Any case of the name is the same account.
    expectRateLimited(await login(server, username.toUpperCase(), 'wrong-again', address));
    expectRateLimited(await login(server, username, PASSWORD, fromAddress()));
    expect(verifyPassword).toHaveBeenCalledTimes(3);
    expect(await refusals(server, 'login_rate')).toBe(2);
    expect(audit).toHaveBeenCalledWith('rate_limited', {
      user: username.toUpperCase(),
      ip: address['x-forwarded-for'],
      reason: 'login_rate',
    });
  });

  test('a client address takes LOGIN_RATE_PER_IP login attempts, whatever the accounts', async () => {
    const address = fromAddress();
    const before = await refusals(server, 'login_rate');
    for (let i = 0; i < 4; i++) expect((await login(server, freshName('ghost'), 'whatever', address)).status).toBe(401);
    vi.mocked(verifyPassword).mockClear();
    expectRateLimited(await login(server, freshName('ghost'), 'whatever', address));
    expect(verifyPassword).not.toHaveBeenCalled();
    expect(await refusals(server, 'login_rate')).toBe(before + 1);
    // Another address is not affected.
    expect((await login(server, freshName('ghost'), 'whatever', fromAddress())).status).toBe(401);
  });

  test('a client address takes SIGNUP_RATE_PER_IP sign-ups, then 429 before the password is hashed', async () => {
    const address = fromAddress();
    for (let i = 0; i < 2; i++) expect((await signup(server, freshName('sign'), address)).status).toBe(201);
    expectRateLimited(await signup(server, freshName('sign'), address));
    expect(hashPassword).toHaveBeenCalledTimes(2);
    expect(await refusals(server, 'signup_rate')).toBe(1);
    expect(audit).toHaveBeenCalledWith('rate_limited', expect.objectContaining({ ip: address['x-forwarded-for'], reason: 'signup_rate' }));
    expect((await signup(server, freshName('sign'), fromAddress())).status).toBe(201);
  });

  test('a wrong current password on a password change counts against the account like a failed login', async () => {
    const username = freshName('pwlimit');
    expect((await signup(server, username, fromAddress())).status).toBe(201);
    const { accessToken } = (await login(server, username, PASSWORD, fromAddress())).body;
    vi.mocked(hashPassword).mockClear();
    vi.mocked(verifyPassword).mockClear();
    const before = await refusals(server, 'login_rate');
    // Password changes and logins share the account's count: 2 + 1 attempts, then 429 on either.
    for (let i = 0; i < 2; i++) expect((await changePassword(server, accessToken, `wrong-${i}`, 'a new password', fromAddress())).status).toBe(401);
    expect((await login(server, username, 'wrong', fromAddress())).status).toBe(401);
    const address = fromAddress();
    expectRateLimited(await changePassword(server, accessToken, PASSWORD, 'a new password', address));
    expectRateLimited(await login(server, username, PASSWORD, fromAddress()));
    expect(verifyPassword).toHaveBeenCalledTimes(3);
    expect(await refusals(server, 'login_rate')).toBe(before + 2);
    expect(audit).toHaveBeenCalledWith('rate_limited', { user: username, ip: address['x-forwarded-for'], reason: 'login_rate' });
    // The password is unchanged.
    expect(hashPassword).toHaveBeenCalledTimes(0);
  });
});

describe('login rate limits while Redis is unreachable', () => {
  let server: TestServer;
  let redis: TcpProxy;
  beforeAll(async () => {
    redis = await startTcpProxy(6379);
    server = await startTestGateway({ REDIS_URL: `redis://127.0.0.1:${redis.port}`, LOGIN_RATE_PER_ACCOUNT: '2' });
  });
  afterAll(async () => {
    await server?.stop();
    await redis?.close();
  });

  test('each gateway goes on counting in memory', async () => {
    const username = freshName('noredis');
    expect((await signup(server, username)).status).toBe(201);
    redis.pause();
    redis.dropAll();
    for (let i = 0; i < 2; i++) expect((await login(server, username, 'wrong')).status).toBe(401);
    expectRateLimited(await login(server, username, PASSWORD));
    redis.resume();
  });
});

describe('TRUST_PROXY', () => {
  let server: TestServer;
  beforeAll(async () => {
    // The default: X-Forwarded-For is not believed, whoever sends it.
    server = await startTestGateway({ SIGNUP_RATE_PER_IP: '2' });
  });
  afterAll(() => server?.stop());

  test('unset, a forged X-Forwarded-For does not buy a client more sign-ups', async () => {
    for (let i = 0; i < 2; i++) expect((await signup(server, freshName('xff'), { 'x-forwarded-for': `10.0.0.${i}` })).status).toBe(201);
    expectRateLimited(await signup(server, freshName('xff'), { 'x-forwarded-for': '10.0.0.99' }));
    expect(audit).toHaveBeenCalledWith('rate_limited', expect.objectContaining({ ip: '127.0.0.1', reason: 'signup_rate' }));
  });
});

test('npm run cluster tells its gateways to believe nginx (on loopback) about client addresses', () => {
  const topology = clusterTopology({
    port: 8000,
    gatewayPorts: [8081, 8082],
    urls: { BROKER_URL: 'amqp://x', REDIS_URL: 'redis://x', DATABASE_URL: 'postgresql://x/chat' },
    jwtSecret: 'x'.repeat(32),
    dataDir: '/tmp',
  });
  expect(topology.gateways.map((g) => g.env.TRUST_PROXY)).toEqual(['loopback', 'loopback']);
});

describe('login', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestGateway();
  });
  afterAll(() => server?.stop());

  test('a known and an unknown user cost the same: one verify against a hash with the real parameters', async () => {
    const user = await newUser(server.url, 'known');
    vi.mocked(verifyPassword).mockClear();
    expect((await login(server, user.username, 'wrong password')).status).toBe(401);
    expect((await login(server, freshName('unknown'), 'wrong password')).status).toBe(401);
    expect(verifyPassword).toHaveBeenCalledTimes(2);
    const [[knownHash], [unknownHash]] = vi.mocked(verifyPassword).mock.calls as [[string, string], [string, string]];
    expect(argonParams(unknownHash)).toBe(argonParams(knownHash));
    expect(argonParams(knownHash)).toBe('argon2id m=19456 p=1 t=2');
  });

  test('hashes made by the argon2 package (0.45.1) this gateway used before still verify', async () => {
    // `argon2.hash(PASSWORD, {type: argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1})`, and its defaults.
    const owasp = '$argon2id$v=19$m=19456,p=1,t=2$pnbHoWNjw1owrCEqYjQcmw$IZICRiQe9FarjP+HH7yLE5UuTSMgTwlirR1aq4Su9Ec';
    const defaults = '$argon2id$v=19$m=65536,p=4,t=3$x27SejaYLMQi7F1pVk/2Fw$rBUYrUOSh/ouHhcR184V466Zf5JNeWlXDqkZOu2H3R8';
    for (const stored of [owasp, defaults]) {
      expect(await verifyPassword(stored, PASSWORD)).toBe(true);
      expect(await verifyPassword(stored, 'wrong password')).toBe(false);
    }
  });

  test('a wrong password of any length or shape is 401, not 400; only past the bound is 400', async () => {
    const user = await newUser(server.url, 'short');
    for (const password of ['x', '', 'ä'.repeat(3)]) {
      const res = await login(server, user.username, password);
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('UNAUTHORIZED');
    }
    expect((await login(server, 'no such user!', 'x')).status).toBe(401);
    expect((await login(server, user.username, 'x'.repeat(257))).status).toBe(400);
  });

  test('a failed login is one audit line with the user and the client address', async () => {
    const user = await newUser(server.url, 'audited');
    audit.mockClear();
    await login(server, user.username, 'wrong password');
    expect(audit.mock.calls).toEqual([['login_failed', expect.objectContaining({ user: user.username, ip: '127.0.0.1' })]]);
  });

  test('a refused REST token is one audit line with the client address', async () => {
    const res = await api<{ code: string }>(server.url, 'GET', '/api/rooms', undefined, 'forged.token.here');
    expect(res.status).toBe(401);
    expect(audit.mock.calls).toEqual([['token_refused', expect.objectContaining({ ip: '127.0.0.1', reason: expect.any(String) })]]);
  });
});

describe.each([{ kind: 'pglite' }, { kind: 'postgres' }])('accounts on $kind', ({ kind }) => {
  let server: TestServer;
  let graceless: TestServer;
  let database: { url: string; drop(): Promise<void> } | undefined;
  beforeAll(async () => {
    database = kind === 'postgres' ? await createTempPostgres() : undefined;
    const db: Record<string, string> = database ? { DATABASE_URL: database.url } : {};
    server = await startTestGateway(db);
    // No reuse grace: a retired token used again revokes its family at once.
    graceless = await startTestGateway({ ...db, REFRESH_REUSE_GRACE_S: '0' });
  });
  afterAll(async () => {
    await graceless?.stop();
    await server?.stop();
    await database?.drop();
  });

  test('usernames are unique whatever their case; login takes any case; the display case is kept', async () => {
    const name = freshName('Alice');
    expect((await signup(server, name)).status).toBe(201);
    const taken = await signup(server, name.toLowerCase());
    expect(taken.status).toBe(409);
    expect(taken.body.code).toBe('CONFLICT');
    const res = await login(server, name.toUpperCase(), PASSWORD);
    expect(res.status).toBe(200);
    expect(res.body.user.username).toBe(name);
  });

  test('each refresh returns a new refresh token and retires the old one', async () => {
    const user = await newUser(graceless.url, 'rot');
    const first = await refresh(graceless, user.refreshToken);
    expect(first.status).toBe(200);
    expect(first.body.refreshToken).not.toBe(user.refreshToken);
    const second = await refresh(graceless, first.body.refreshToken);
    expect(second.status).toBe(200);
    expect(second.body.refreshToken).not.toBe(first.body.refreshToken);
    expect((await api(graceless.url, 'GET', '/api/rooms', undefined, second.body.accessToken)).status).toBe(200);
    expect((await refresh(graceless, first.body.refreshToken)).status).toBe(401);
  });

  test('two refreshes of one token at once (two tabs) both succeed within the grace', async () => {
    const user = await newUser(server.url, 'tabs');
    const [a, b] = await Promise.all([refresh(server, user.refreshToken), refresh(server, user.refreshToken)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect((await refresh(server, a.body.refreshToken)).status).toBe(200);
    expect((await refresh(server, b.body.refreshToken)).status).toBe(200);
  });

  test('a retired token used again after the grace revokes its whole family, and only its family', async () => {
    const user = await newUser(graceless.url, 'reuse');
    const otherLogin = await login(graceless, user.username, PASSWORD);
    const rotated = await refresh(graceless, user.refreshToken);
    expect(rotated.status).toBe(200);
    const current = await refresh(graceless, rotated.body.refreshToken);
    expect(current.status).toBe(200);
    audit.mockClear();
    const reused = await refresh(graceless, user.refreshToken);
    expect(reused.status).toBe(401);
    expect(audit).toHaveBeenCalledWith('token_refused', expect.objectContaining({ user: user.username, reason: expect.stringContaining('reuse') }));
    // The family's current token stops working too.
    expect((await refresh(graceless, current.body.refreshToken)).status).toBe(401);
    // Another login's family is untouched.
    expect((await refresh(graceless, otherLogin.body.refreshToken)).status).toBe(200);
  });

  test('a password change with a wrong current password is 401, one audit line, and changes nothing', async () => {
    const user = await newUser(server.url, 'pwwrong');
    audit.mockClear();
    const res = await changePassword(server, user.accessToken, 'not my password', 'a new password');
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('UNAUTHORIZED');
    expect(audit.mock.calls).toEqual([['password_change_failed', { user: user.username, ip: '127.0.0.1' }]]);
    expect((await login(server, user.username, PASSWORD)).status).toBe(200);
    expect((await login(server, user.username, 'a new password')).status).toBe(401);
    expect((await refresh(server, user.refreshToken)).status).toBe(200);
  });

  test('a password change to a password the sign-up rules refuse is 400, and changes nothing', async () => {
    const user = await newUser(server.url, 'pwshort');
    for (const newPassword of ['short', 'x'.repeat(257)]) {
      const res = await changePassword(server, user.accessToken, PASSWORD, newPassword);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('BAD_REQUEST');
    }
    expect((await login(server, user.username, PASSWORD)).status).toBe(200);
  });

  test('a password change needs an access token', async () => {
    const user = await newUser(server.url, 'pwanon');
    expect((await api(server.url, 'POST', '/api/auth/password', { currentPassword: PASSWORD, newPassword: 'a new password' })).status).toBe(401);
    expect((await api(server.url, 'POST', '/api/auth/password', { currentPassword: PASSWORD, newPassword: 'a new password' }, user.refreshToken)).status).toBe(401);
    expect((await login(server, user.username, PASSWORD)).status).toBe(200);
  });

  test('a password change ends every other login and answers a pair of its own', async () => {
    const user = await newUser(server.url, 'pwok');
    const otherLogin = await login(server, user.username, PASSWORD);
    const rotated = await refresh(server, otherLogin.body.refreshToken);
    expect(rotated.status).toBe(200);
    const res = await changePassword(server, user.accessToken, PASSWORD, 'a new password');
    expect(res.status).toBe(200);
    expect(res.body.user).toEqual({ id: user.id, username: user.username });
    expect((await login(server, user.username, PASSWORD)).status).toBe(401);
    // Every refresh token issued before the change is refused: this client's own, and the other login's.
    for (const old of [user.refreshToken, rotated.body.refreshToken]) expect((await refresh(server, old)).status).toBe(401);
    const mine = await refresh(server, res.body.refreshToken);
    expect(mine.status).toBe(200);
    expect((await api(server.url, 'GET', '/api/rooms', undefined, mine.body.accessToken)).status).toBe(200);
    expect((await api(server.url, 'GET', '/api/rooms', undefined, res.body.accessToken)).status).toBe(200);
    const again = await login(server, user.username, 'a new password');
    expect(again.status).toBe(200);
    // The pair answered is a family of its own: the login after the change did not end it.
    expect((await refresh(server, mine.body.refreshToken)).status).toBe(200);
  });
});

describe.each([{ kind: 'pglite' }, { kind: 'postgres' }])('the case-insensitive usernames migration on $kind', ({ kind }) => {
  const log = createLogger('silent');
  let dir: string;
  beforeAll(async () => {
    // The migrations as they were before it: a database that already holds users it must judge.
    dir = await mkdtemp(join(tmpdir(), 'chat-migrations-'));
    const all = await readMigrations();
    const before = all.migrationDirectories.map((m) => m.path).filter((name) => name < '20261129211601_case_insensitive_usernames');
    for (const name of before) await cp(join(MIGRATIONS_DIR, name), join(dir, name), { recursive: true });
    await cp(join(MIGRATIONS_DIR, 'migration_lock.toml'), join(dir, 'migration_lock.toml'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  type Query = (q: string) => Promise<unknown[]>;
  /** The migrations' error, if any. */
  type Migrate = () => Promise<unknown>;

  /** A database migrated to `dir` with `sql` run on it; `use` migrates it to the current migrations and looks. */
  async function withOlderDatabase(sql: string, use: (migrate: Migrate, query: Query) => Promise<void>): Promise<void> {
    const failure = (e: unknown) => e;
    if (kind === 'pglite') {
      const db = new PGlite();
      try {
        await migratePGlite(db, log, dir);
        await db.exec(sql);
        await use(() => migratePGlite(db, log).then(() => undefined, failure), async (q) => (await db.query(q)).rows);
      } finally {
        await db.close();
      }
      return;
    }
    const database = await createTempPostgres();
    const client = new pg.Client({ connectionString: database.url });
    try {
      await migratePostgres(database.url, log, dir);
      await client.connect();
      await client.query(sql);
      await use(() => migratePostgres(database.url, log).then(() => undefined, failure), async (q) => (await client.query(q)).rows);
    } finally {
      await client.end();
      await database.drop();
    }
  }

  const insertUsers = (names: string[]) =>
    `INSERT INTO "User" (id, username, "passwordHash") VALUES ${names.map((n) => `(gen_random_uuid(), '${n}', 'h')`).join(', ')}`;

  test('fails naming every username that differs from another only in case, changes nothing, and says how to go on', async () => {
    await withOlderDatabase(insertUsers(['Alice', 'alice', 'ALICE', 'bob', 'Carol', 'carol', 'dave']), async (migrate, query) => {
      const err = await migrate();
      expect(err).toBeInstanceOf(Error);
      const message = (err as Error).message;
      expect(message).toContain('usernames that differ only in case: ALICE, Alice, alice; Carol, carol.');
      expect(message).not.toMatch(/\bbob\b|\bdave\b/);
      expect(await query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'User' AND column_name = 'usernameKey'`)).toEqual([]);

      // What the message says to do, done: the next start applies the migration.
      await query(`DELETE FROM "User" WHERE username IN ('alice', 'ALICE', 'carol')`);
      await query(message.match(/UPDATE _prisma_migrations .*?;/)![0]);
      expect(await migrate()).toBeUndefined();
      expect(await query(`SELECT username, "usernameKey" FROM "User" ORDER BY "usernameKey"`)).toEqual([
        { username: 'Alice', usernameKey: 'alice' },
        { username: 'bob', usernameKey: 'bob' },
        { username: 'Carol', usernameKey: 'carol' },
        { username: 'dave', usernameKey: 'dave' },
      ]);
    });
  });

  test('keeps existing users with their display case when none conflict', async () => {
    await withOlderDatabase(insertUsers(['Alice', 'bob']), async (migrate, query) => {
      expect(await migrate()).toBeUndefined();
      expect(await query(`SELECT username, "usernameKey" FROM "User" ORDER BY username`)).toEqual([
        { username: 'Alice', usernameKey: 'alice' },
        { username: 'bob', usernameKey: 'bob' },
      ]);
    });
  });
});
