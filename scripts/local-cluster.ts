import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { z } from 'zod';
import { startGatewayProcess, type GatewayProcess } from './gateway-process.ts';
import { siteVariables, startNginx, type NginxProcess } from './nginx-process.ts';

/**
 * The machine's services the gateways share, named as docker-compose.yml names them, with the variable that points a
 * gateway at each and its default URL.
 */
export const BACKING_SERVICES = [
  { service: 'rabbitmq', variable: 'BROKER_URL', defaultUrl: 'amqp://guest:guest@127.0.0.1:5672' },
  { service: 'redis', variable: 'REDIS_URL', defaultUrl: 'redis://127.0.0.1:6379' },
  { service: 'postgres', variable: 'DATABASE_URL', defaultUrl: 'postgresql://postgres@127.0.0.1:5432/chat' },
] as const;

type BackingVariable = (typeof BACKING_SERVICES)[number]['variable'];

export interface ClusterOptions {
  /** The port nginx serves the cluster on. */
  port: number;
  /** One gateway per port. */
  gatewayPorts: readonly number[];
  urls: Readonly<Record<BackingVariable, string>>;
  /** Shared by every gateway, so a token from one is good on all. */
  jwtSecret: string;
  /** Shared by every gateway (DATA_DIR). */
  dataDir: string;
  /** More variables for every gateway, beyond the topology's (tests: the rate limits they need). */
  gatewayEnv?: Readonly<Record<string, string>>;
  /** Every log line of the gateways and nginx, prefixed with the service's name (default: dropped). */
  onLog?: (line: string) => void;
}

/** What runs, as data: the same services, variables and ports docker-compose.yml describes. */
export interface ClusterTopology {
  backing: Array<{ service: string; variable: BackingVariable; url: string }>;
  gateways: Array<{ service: string; port: number; env: Record<string, string> }>;
  /** nginx's port, its upstream (`host:port` of each gateway) and the variables its site template is rendered with. */
  nginx: { service: 'nginx'; port: number; upstream: string[]; env: Record<string, string> };
}

export function clusterTopology(opts: ClusterOptions): ClusterTopology {
  const backing = BACKING_SERVICES.map(({ service, variable }) => ({ service, variable, url: opts.urls[variable] }));
  // nginx on loopback passes the client's address in X-Forwarded-For; the gateways believe it from there only.
  const shared = { ...opts.urls, JWT_SECRET: opts.jwtSecret, DATA_DIR: opts.dataDir, TRUST_PROXY: 'loopback' };
  const gateways = opts.gatewayPorts.map((port, i) => {
    const service = `gateway${i + 1}`;
    // The id names the gateway's broker queue: unique per port, so two clusters on one broker never share a queue.
    return { service, port, env: { ...shared, PORT: String(port), GATEWAY_ID: `${service}-${port}` } };
  });
  const upstream = gateways.map((g) => `127.0.0.1:${g.port}`);
  return { backing, gateways, nginx: { service: 'nginx', port: opts.port, upstream, env: siteVariables(opts.port, upstream) } };
}

const Port = z.number().int().min(1).max(65535);

/** `npm run cluster`'s settings, read from the environment; README's "Cluster mode" section lists them. */
const ClusterEnv = z.object({
  CLUSTER_PORT: z.coerce.number().pipe(Port).default(8000),
  GATEWAY_PORTS: z
    .string()
    .default('8081,8082,8083')
    .transform((s) => s.split(',').map(Number))
    .pipe(z.array(Port).min(1)),
  BROKER_URL: z.string().url().default(BACKING_SERVICES[0].defaultUrl),
  REDIS_URL: z.string().url().default(BACKING_SERVICES[1].defaultUrl),
  DATABASE_URL: z.string().url().default(BACKING_SERVICES[2].defaultUrl),
  JWT_SECRET: z.string().min(32).optional(),
  DATA_DIR: z.string().default('./data'),
});

export async function clusterOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<ClusterOptions> {
  const parsed = ClusterEnv.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== '')));
  if (!parsed.success) {
    throw new Error(`invalid cluster configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const e = parsed.data;
  const dataDir = resolve(e.DATA_DIR);
  return {
    port: e.CLUSTER_PORT,
    gatewayPorts: e.GATEWAY_PORTS,
    urls: { BROKER_URL: e.BROKER_URL, REDIS_URL: e.REDIS_URL, DATABASE_URL: e.DATABASE_URL },
    jwtSecret: e.JWT_SECRET ?? (await clusterJwtSecret(dataDir)),
    dataDir,
  };
}

/** A JWT secret generated once and kept in `<dataDir>/cluster-jwt-secret`, so tokens outlive a cluster restart. */
export async function clusterJwtSecret(dataDir: string): Promise<string> {
  const file = join(dataDir, 'cluster-jwt-secret');
  await mkdir(dataDir, { recursive: true });
  // 'wx' leaves a secret that is already there alone.
  await writeFile(file, randomBytes(48).toString('base64url'), { flag: 'wx', mode: 0o600 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  return (await readFile(file, 'utf8')).trim();
}

/** Create the database `databaseUrl` names when it is missing; true when it was created. */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  if (!name) throw new Error(`DATABASE_URL names no database: ${databaseUrl}`);
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    const existing = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (existing.rowCount) return false;
    await admin.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
    return true;
  } catch (err) {
    // duplicate_database: someone else created it meanwhile, which is just as good.
    if ((err as { code?: string }).code === '42P04') return false;
    throw err;
  } finally {
    await admin.end();
  }
}

export interface Cluster {
  /** nginx: `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** `ws://127.0.0.1:<port>/ws`. */
  readonly wsUrl: string;
  readonly topology: ClusterTopology;
  readonly gateways: readonly GatewayProcess[];
  readonly nginx: NginxProcess;
  /** Resolves, naming the service, when a gateway or nginx exits before stop() was called. */
  readonly failure: Promise<string>;
  /**
   * SIGTERM to every gateway (each stops gracefully), then nginx; resolves once all have exited, with each one's
   * exit code (or signal name) by service name. Idempotent.
   */
  stop(): Promise<Record<string, number | string>>;
}

/** A gateway that outlives its own SHUTDOWN_TIMEOUT_MS bound by this much more is killed. */
const GATEWAY_KILL_AFTER_MS = 30_000;

/**
 * Start the cluster: create the database if missing, start every gateway as a child process and wait for their
 * /healthz, then nginx in front of them. If any part fails to start, what did start is stopped again.
 */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const onLog = opts.onLog ?? (() => {});
  const topology = clusterTopology(opts);
  await ensureDatabase(opts.urls.DATABASE_URL);
  await mkdir(opts.dataDir, { recursive: true });

  const started = await Promise.allSettled(topology.gateways.map((g) => startGatewayProcess(g.service, g.port, { ...g.env, ...opts.gatewayEnv }, onLog)));
  const gateways = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const refused = started.find((s) => s.status === 'rejected');
  if (refused) {
    await stopGateways(gateways);
    throw refused.reason;
  }
  let nginx: NginxProcess;
  try {
    nginx = await startNginx(topology.nginx.port, topology.nginx.upstream, onLog);
  } catch (err) {
    await stopGateways(gateways);
    throw err;
  }

  let stopping: Promise<Record<string, number | string>> | undefined;
  const failure = new Promise<string>((resolve) => {
    const watch = (service: string, exited: Promise<number | string>) =>
      void exited.then((code) => {
        if (!stopping) resolve(`${service} exited (${code})`);
      });
    for (const g of gateways) watch(g.name, g.exited);
    watch('nginx', nginx.exited);
  });
  const stop = () =>
    (stopping ??= (async () => {
      const codes = await stopGateways(gateways);
      return { ...codes, nginx: await nginx.stop() };
    })());

  return { url: nginx.url, wsUrl: `${nginx.url.replace('http', 'ws')}/ws`, topology, gateways, nginx, failure, stop };
}

async function stopGateways(gateways: readonly GatewayProcess[]): Promise<Record<string, number | string>> {
  const codes = await Promise.all(
    gateways.map(async (g) => {
      g.kill('SIGTERM');
      const kill = setTimeout(() => g.kill('SIGKILL'), GATEWAY_KILL_AFTER_MS);
      const code = await g.exited;
      clearTimeout(kill);
      return [g.name, code] as const;
    }),
  );
  return Object.fromEntries(codes);
}
