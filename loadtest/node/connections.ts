import { deal, WorkerPool } from './pool.ts';
import { cpuShare, rssBytes } from './proc.ts';
import { printTable } from './report.ts';
import { roomClients, type Target } from './targets.ts';
import type { Connected, Stats } from './worker-protocol.ts';

export interface ConnectionsOptions {
  target: Target;
  clients: number;
  heartbeatMs: number;
  /** How long the connected clients sit idle while the server's CPU is measured. */
  idleS: number;
  workers: number;
  /** Accounts behind the connections, in rooms of 10 (default 100). */
  users?: number;
}

export interface ConnectionsResult {
  target: string;
  clients: number;
  connected: number;
  failed: number;
  connectS: number;
  heartbeatMs: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  rssPerConnectionBytes: number;
  /** Server CPU while idle, as a share of one core. */
  idleCpuCores: number;
  idleS: number;
  /** Clients still open after the idle period, and heart-beats the server sent them meanwhile. */
  openAfterIdle: number;
  heartbeatsIn: number;
  errors: number;
  errorSamples: string[];
}

/** At most this many clients per generator process: far under its 20,000 open files. */
const CLIENTS_PER_PROCESS = 5000;
const SETTLE_MS = 3000;

/**
 * N idle clients with heart-beats, each subscribed to its room (as a chat client is) and, on the gateway, to
 * its errors. The server's RSS is read from /proc before and after, and its CPU over the idle period.
 * A few accounts (100 by default) in rooms of 10 share the connections: sign-up costs are not what is measured.
 */
export async function runConnections(o: ConnectionsOptions): Promise<ConnectionsResult> {
  const pid = o.target.pid;
  if (pid === undefined) throw new Error('connections needs the server pid (start it here, or pass --pid)');
  const users = o.users ?? 100;
  const base = await roomClients(o.target, Math.ceil(users / 10), 10, 'idle', users);
  const specs = Array.from({ length: o.clients }, (_, index) => ({ ...base[index % base.length]!, index }));
  const pool = WorkerPool.start(Math.max(o.workers, Math.ceil(o.clients / CLIENTS_PER_PROCESS)));
  try {
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const rssBeforeBytes = rssBytes(pid);
    const t0 = Date.now();
    const shares = deal(specs, pool.size);
    const connected = await pool.all<Connected>('connected', (i) => ({
      op: 'connect',
      wsUrl: o.target.wsUrl,
      clients: shares[i]!,
      heartbeatMs: o.heartbeatMs,
      concurrency: 32,
      timeoutMs: 120_000,
    }));
    const connectS = (Date.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const idleCpuCores = await cpuShare(pid, o.idleS * 1000);
    const rssAfterBytes = rssBytes(pid);
    const stats = await pool.all<Stats>('stats', () => ({ op: 'stats' }));
    const ok = connected.reduce((n, c) => n + c.ok, 0);
    return {
      target: o.target.name,
      clients: o.clients,
      connected: ok,
      failed: connected.reduce((n, c) => n + c.failed, 0),
      connectS,
      heartbeatMs: o.heartbeatMs,
      rssBeforeBytes,
      rssAfterBytes,
      rssPerConnectionBytes: ok ? (rssAfterBytes - rssBeforeBytes) / ok : 0,
      idleCpuCores,
      idleS: o.idleS,
      openAfterIdle: stats.reduce((n, s) => n + s.open, 0),
      heartbeatsIn: stats.reduce((n, s) => n + s.heartbeatsIn, 0),
      errors: stats.reduce((n, s) => n + s.errors, 0),
      errorSamples: [...connected.flatMap((c) => c.samples), ...stats.flatMap((s) => s.samples)].slice(0, 10),
    };
  } finally {
    await pool.close();
  }
}

export function printConnections(results: ConnectionsResult[]): void {
  printTable(
    'idle connections',
    ['target', 'clients', 'connected', 'connect s', 'RSS before MiB', 'RSS after MiB', 'KiB/conn', 'idle CPU %core', 'open after idle', 'heart-beats in', 'errors'],
    results.map((r) => [
      r.target,
      r.clients,
      r.connected,
      r.connectS,
      r.rssBeforeBytes / 2 ** 20,
      r.rssAfterBytes / 2 ** 20,
      r.rssPerConnectionBytes / 1024,
      r.idleCpuCores * 100,
      r.openAfterIdle,
      r.heartbeatsIn,
      r.errors,
    ]),
  );
  for (const r of results) if (r.errorSamples.length) console.log(`  ${r.target}: e.g. ${r.errorSamples.slice(0, 3).join(' | ')}`);
  if (results.some((r) => r.connected < MEANINGFUL_RSS_CLIENTS)) {
    console.log(`  KiB/conn under ${MEANINGFUL_RSS_CLIENTS.toLocaleString('en-US')} connections is within the noise of the gateway's own garbage collection`);
  }
}

/** Below this many connections, what they add to RSS is smaller than what a collection can free. */
const MEANINGFUL_RSS_CLIENTS = 10_000;
