import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import pg from 'pg';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  BACKING_SERVICES,
  clusterOptionsFromEnv,
  clusterTopology,
  ensureDatabase,
  type ClusterTopology,
} from '../scripts/local-cluster.ts';
import { siteVariables } from '../scripts/nginx-process.ts';
import { RedisHistory } from '../src/delivery/redis-history.ts';
import { freePorts } from '../scripts/gateway-process.ts';
import { childPids, isRunning, parseYamlSubset, type Yaml } from './support/cluster.ts';
import { createTempPostgres } from '../scripts/temp-postgres.ts';
import { api, newUser, TEST_RATE_LIMITS, type TestUser } from './support/gateway.ts';
import { connectStomp, type TestClient } from './support/stomp-client.ts';

const ROOT = new URL('..', import.meta.url);

interface ComposeService {
  build?: string;
  image?: string;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
}

describe('docker-compose.yml', () => {
  const compose = parseYamlSubset(readFileSync(new URL('docker-compose.yml', ROOT), 'utf8')) as unknown as { services: Record<string, ComposeService> };
  const services = compose.services;
  let topology: ClusterTopology;

  beforeAll(async () => {
    // The script's own defaults (ports, URLs); a JWT_SECRET is given so that nothing is written under ./data.
    topology = clusterTopology(await clusterOptionsFromEnv({ JWT_SECRET: 'x'.repeat(32) }));
  });

  it('names the same services as the cluster script, in the same order', () => {
    expect(Object.keys(services)).toEqual([
      ...topology.backing.map((b) => b.service),
      ...topology.gateways.map((g) => g.service),
      topology.nginx.service,
    ]);
    expect(Object.keys(services)).toEqual(['rabbitmq', 'redis', 'postgres', 'gateway1', 'gateway2', 'gateway3', 'nginx']);
  });

  it('publishes only nginx, on the script\'s port; the stores and the gateways stay on the compose network', () => {
    // PostgreSQL (trust auth), Redis (no auth) and RabbitMQ (guest/guest) published on the host would be open to anyone.
    const published = Object.entries(services).filter(([, s]) => s.ports !== undefined).map(([name]) => name);
    expect(published).toEqual([topology.nginx.service]);
    expect(services.nginx!.ports).toEqual([`${topology.nginx.port}:${topology.nginx.port}`]);
    expect(topology.nginx.port).toBe(8000);
    // Inside the network each gateway listens on the script's port, and nginx's upstream names it there.
    for (const g of topology.gateways) expect(services[g.service]!.environment!.PORT).toBe(String(g.port));
    expect(topology.gateways.map((g) => g.port)).toEqual([8081, 8082, 8083]);
  });

  it('gives every gateway the same environment variables as the script does, pointing at the compose services', () => {
    for (const g of topology.gateways) {
      const env = services[g.service]!.environment!;
      expect(Object.keys(env).sort()).toEqual(Object.keys(g.env).sort());
      expect(env.PORT).toBe(g.env.PORT);
      expect(env.GATEWAY_ID).toBe(g.env.GATEWAY_ID);
      // The script's URL with the compose service's name for the host: same scheme, credentials, port and database.
      for (const b of topology.backing) {
        const url = new URL(b.url);
        url.hostname = b.service;
        expect(env[b.variable]).toBe(url.toString().replace(/\/$/, ''));
      }
      expect(services[g.service]!.build).toBe('.');
      expect(services[g.service]!.volumes).toEqual(['data:/app/data']);
    }
    // One secret and one data dir for all of them.
    const shared = (name: string) => new Set(topology.gateways.map((g) => services[g.service]!.environment![name]));
    expect([...shared('JWT_SECRET')]).toEqual(['${JWT_SECRET:?set JWT_SECRET to 32 or more random characters}']);
    expect([...shared('DATA_DIR')]).toEqual(['/app/data']);
  });

  it('renders the same nginx site template, with the variables the script fills in', () => {
    const template = readFileSync(new URL('nginx/chat.conf.template', ROOT), 'utf8');
    const placeholders = [...new Set([...template.matchAll(/\$\{(CHAT_[A-Z0-9_]+)\}/g)].map((m) => m[1]))].sort();
    expect(placeholders).toEqual(Object.keys(topology.nginx.env).sort());
    const nginx = services.nginx!;
    const env = nginx.environment!;
    expect(Object.keys(env).filter((k) => k.startsWith('CHAT_')).sort()).toEqual(placeholders);
    expect(env).toEqual({
      NGINX_ENVSUBST_FILTER: '^CHAT_',
      ...siteVariables(
        topology.nginx.port,
        topology.gateways.map((g) => `${g.service}:${g.port}`),
      ),
    });
    expect(nginx.volumes).toEqual(['./nginx/chat.conf.template:/etc/nginx/templates/default.conf.template:ro']);
  });

  it('reads only the YAML it understands', () => {
    expect(parseYamlSubset('a:\n  b: "x: y" # c\n  c:\n    - \'it\'\'s\'\n    - -e\nd:\n')).toEqual({ a: { b: 'x: y', c: ["it's", '-e'] }, d: null });
    for (const unsupported of ['a: [1, 2]', 'a: &x 1', 'a: |\n  x', 'a:\n\tb: 1', 'a: 1\na: 2', 'a:\n  - b: c', 'a: b: c']) {
      expect(() => parseYamlSubset(unsupported)).toThrow();
    }
  });
});

describe('ensureDatabase', () => {
  it('creates a missing database once, and leaves an existing one alone', async () => {
    // A fresh unique name, dropped again so that ensureDatabase finds it missing.
    const temp = await createTempPostgres();
    await temp.drop();
    try {
      expect(await ensureDatabase(temp.url)).toBe(true);
      expect(await ensureDatabase(temp.url)).toBe(false);
      const client = new pg.Client({ connectionString: temp.url });
      await client.connect();
      expect((await client.query('SELECT current_database() AS name')).rows).toEqual([{ name: new URL(temp.url).pathname.slice(1) }]);
      await client.end();
    } finally {
      await temp.drop();
    }
  });
});

describe('`npm run cluster`: three gateways behind nginx on the real RabbitMQ, Redis and PostgreSQL', () => {
  const MEMBERS = 6;
  const PER_MEMBER = 5;
  let run: ChildProcess;
  let exited: Promise<number | null>;
  const output: string[] = [];
  let database: Awaited<ReturnType<typeof createTempPostgres>>;
  let dataDir: string;
  let port: number;
  let gatewayPorts: number[];
  const clients: TestClient[] = [];
  /** What the script runs, as `npm run cluster` itself starts it (as Ctrl-C would reach it: one process group). */
  const cluster = {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get wsUrl() {
      return `ws://127.0.0.1:${port}/ws`;
    },
    get gateways() {
      return gatewayPorts.map((p, i) => ({ name: `gateway${i + 1}`, url: `http://127.0.0.1:${p}`, id: `gateway${i + 1}-${p}` }));
    },
  };

  beforeAll(async () => {
    database = await createTempPostgres();
    dataDir = await mkdtemp(join(tmpdir(), 'chat-cluster-'));
    [port, ...gatewayPorts] = (await freePorts(4)) as [number, ...number[]];
    run = spawn('npm', ['run', '--silent', 'cluster'], {
      cwd: fileURLToPath(ROOT),
      env: {
        ...process.env,
        CLUSTER_PORT: String(port),
        GATEWAY_PORTS: gatewayPorts.join(','),
        BROKER_URL: BACKING_SERVICES[0].defaultUrl,
        REDIS_URL: BACKING_SERVICES[1].defaultUrl,
        DATABASE_URL: database.url,
        JWT_SECRET: randomBytes(32).toString('hex'),
        DATA_DIR: dataDir,
        LOG_LEVEL: 'warn',
        ...TEST_RATE_LIMITS,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    exited = new Promise((resolve) => run.once('exit', (code) => resolve(code)));
    const lines = createInterface({ input: run.stdout! });
    run.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      lines.on('line', (line) => {
        output.push(line);
        if (process.env.TEST_LOG_LEVEL) console.log(line);
        if (line === 'chat cluster is up:') resolve();
      });
      void exited.then((code) => reject(new Error(`npm run cluster exited with ${code} before it was up:\n${output.join('\n')}`)));
    });
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    if (run && run.exitCode === null) {
      run.kill('SIGKILL');
      await exited;
    }
    // What the gateways left on the shared services: each session's delivery history, each gateway's queue.
    const redis = new Redis(BACKING_SERVICES[1].defaultUrl);
    const history = new RedisHistory({ redis, window: 1, lockTtlMs: 1 });
    await Promise.all(clients.map((c) => history.retain(c.connectedHeaders.session!, 1)));
    redis.disconnect();
    if (gatewayPorts) {
      const conn = await amqp.connect(BACKING_SERVICES[0].defaultUrl);
      const ch = await conn.createChannel();
      for (const g of cluster.gateways) await ch.deleteQueue(`gateway.${g.id}`);
      await conn.close();
    }
    await database?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  /** Each gateway's chat_sessions, read from the gateway itself (not through nginx). */
  const sessionsByGateway = async (): Promise<Record<string, number>> => {
    const entries = await Promise.all(
      cluster.gateways.map(async (g) => {
        const text = await (await fetch(`${g.url}/metrics`)).text();
        return [g.name, Number(/^chat_sessions\{[^}]*\} (\d+)$/m.exec(text)![1])] as const;
      }),
    );
    return Object.fromEntries(entries);
  };

  it('passes the health endpoints through nginx, spreading requests over every gateway', async () => {
    expect((await fetch(`${cluster.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${cluster.url}/readyz`)).status).toBe(200);
    const answered: string[] = [];
    for (let i = 0; i < 3; i++) {
      const text = await (await fetch(`${cluster.url}/metrics`)).text();
      answered.push(/^chat_sessions\{gateway="([^"]+)"\}/m.exec(text)![1]!);
    }
    expect(answered.sort()).toEqual(cluster.gateways.map((g) => g.id).sort());
  });

  it('spreads clients over all three gateways, and every member of a room gets every message once, in seq order', async () => {
    const users: TestUser[] = [];
    for (let i = 0; i < MEMBERS; i++) users.push(await newUser(cluster.url, `cl${i}`));
    const [owner, ...others] = users;
    const room = await api<{ id: string }>(cluster.url, 'POST', '/api/rooms', { kind: 'group', name: 'cluster', members: others.map((u) => u.username) }, owner!.accessToken);
    expect(room.status).toBe(201);
    const topic = `/topic/rooms.${room.body.id}`;

    // One at a time, so nginx's round robin hands each gateway every third connection.
    for (const user of users) {
      const client = await connectStomp(cluster.wsUrl, { Authorization: `Bearer ${user.accessToken}` });
      clients.push(client);
      await client.watchErrors();
      await client.subscribeConfirmed(topic);
    }
    expect(await sessionsByGateway()).toEqual({ gateway1: 2, gateway2: 2, gateway3: 2 });

    // Every member sends at once, each its own messages one after another; then the owner sends a last one.
    await Promise.all(
      clients.map(async (client, i) => {
        for (let k = 0; k < PER_MEMBER; k++) await client.sendConfirmed(`/app/rooms.${room.body.id}.send`, { text: `m${i}.${k}` });
      }),
    );
    await clients[0]!.sendConfirmed(`/app/rooms.${room.body.id}.send`, { text: 'last' });
    const total = MEMBERS * PER_MEMBER + 1;

    const chats = (client: TestClient) =>
      client
        .events(topic)
        .filter((e) => e.type === 'CHAT')
        .map((e) => [e.seq, (e.sender as { username: string }).username, e.text]);
    for (const client of clients) await client.until(() => chats(client).some(([, , text]) => text === 'last'), 20_000);

    // The stored history is the one order every member must have seen, each message exactly once.
    const stored = await api<Array<{ type: string; seq: number; sender: { username: string }; text: string }>>(
      cluster.url,
      'GET',
      `/api/rooms/${room.body.id}/messages?limit=500`,
      undefined,
      owner!.accessToken,
    );
    const expected = stored.body.filter((e) => e.type === 'CHAT').map((e) => [e.seq, e.sender.username, e.text]);
    expect(expected).toHaveLength(total);
    expect(expected.map(([, , text]) => text).sort()).toEqual(
      [...users.flatMap((_, i) => Array.from({ length: PER_MEMBER }, (__, k) => `m${i}.${k}`)), 'last'].sort(),
    );
    for (const client of clients) {
      expect(chats(client)).toEqual(expected);
      expect(client.errors).toEqual([]);
    }
    // Each sender's own messages in the order it sent them.
    for (let i = 0; i < MEMBERS; i++) {
      const own = expected.filter(([, name, text]) => name === users[i]!.username && text !== 'last').map(([, , text]) => text);
      expect(own).toEqual(Array.from({ length: PER_MEMBER }, (_, k) => `m${i}.${k}`));
    }
  });

  it('stops on SIGTERM: every gateway and nginx (workers included) exit, and the script exits 0', async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    // Everything the script started, found before it stops: npm, its shell, tsx, the script, gateways, nginx and workers.
    const descendants = (pid: number): number[] => childPids(pid).flatMap((child) => [child, ...descendants(child)]);
    const started = descendants(run.pid!);
    expect(started.length).toBeGreaterThanOrEqual(6);
    run.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output.join('\n')).toMatch(/\[cluster\] stopped: gateway1 0, gateway2 0, gateway3 0, nginx 0/);
    await vi.waitFor(() => expect(started.filter(isRunning)).toEqual([]), { timeout: 10_000, interval: 50 });
  });
});
