import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../../scripts/gateway-process.ts';
import { createTempPostgres } from '../../scripts/temp-postgres.ts';

export type Services = 'embedded' | 'real';

export interface GatewayProcessOptions {
  /** `embedded`: the default (in-process broker and history, PGlite); `real`: RabbitMQ, Redis and a fresh PostgreSQL database. */
  services: Services;
  /** Extra environment for the gateway (RATE_LIMIT_PER_S, HEARTBEAT_MS, ...). */
  env?: Record<string, string>;
  /** Write a V8 CPU profile (`node --cpu-prof`) into this folder when the gateway stops. */
  cpuProfileDir?: string;
  /** Where the gateway's own log goes. */
  logFile: string;
}

export interface GatewayProcess {
  pid: number;
  httpUrl: string;
  wsUrl: string;
  services: Services;
  /** SIGTERM, wait for the exit (and the profile), then drop the database and the data dir. Returns the profile's path, if any. */
  stop(): Promise<string | undefined>;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BROKER_URL = 'amqp://guest:guest@127.0.0.1:5672';
export const REDIS_URL = 'redis://127.0.0.1:6379';

/** Start `node --import tsx src/main.ts` as its own process, so that its RSS and CPU can be read from /proc. */
export async function spawnGateway(options: GatewayProcessOptions): Promise<GatewayProcess> {
  const [port] = (await freePorts(1)) as [number];
  const dataDir = await mkdtemp(join(tmpdir(), 'chat-bench-'));
  const database = options.services === 'real' ? await createTempPostgres('bench') : undefined;
  // The services are chosen here, not inherited from whoever runs the benchmark.
  const { DATABASE_URL: _d, BROKER_URL: _b, REDIS_URL: _r, ...inherited } = process.env as Record<string, string>;
  const env: Record<string, string> = {
    ...inherited,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    JWT_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'warn',
    // The benchmark signs up and logs in its users from 127.0.0.1 (README, "Limits").
    LOGIN_RATE_PER_IP: '1000000',
    SIGNUP_RATE_PER_IP: '1000000',
    ...(database ? { DATABASE_URL: database.url, BROKER_URL, REDIS_URL } : {}),
    ...options.env,
  };
  if (options.cpuProfileDir) await mkdir(options.cpuProfileDir, { recursive: true });
  await mkdir(dirname(options.logFile), { recursive: true });
  const args = [
    ...(options.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir] : []),
    '--import',
    'tsx',
    'src/main.ts',
  ];
  const log = createWriteStream(options.logFile);
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const httpUrl = `http://127.0.0.1:${port}`;
  const cleanup = async (): Promise<void> => {
    await rm(dataDir, { recursive: true, force: true });
    await database?.drop();
  };
  try {
    await waitReady(httpUrl, child);
  } catch (err) {
    child.kill('SIGKILL');
    await cleanup();
    throw err;
  }
  return {
    pid: child.pid!,
    httpUrl,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    services: options.services,
    async stop() {
      const before = options.cpuProfileDir ? new Set(await readdir(options.cpuProfileDir)) : new Set<string>();
      await stopProcess(child);
      await cleanup();
      if (!options.cpuProfileDir) return undefined;
      const written = (await readdir(options.cpuProfileDir)).filter((f) => f.endsWith('.cpuprofile') && !before.has(f));
      return written[0] ? join(options.cpuProfileDir, written[0]) : undefined;
    },
  };
}

async function waitReady(httpUrl: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode} before it was ready (see its log)`);
    const ok = await fetch(`${httpUrl}/readyz`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('gateway not ready after 120 s');
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

