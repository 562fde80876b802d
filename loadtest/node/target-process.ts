import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnGateway, type Services } from './gateway-process.ts';
import { RESULTS_DIR } from './report.ts';
import type { Target } from './targets.ts';

export type TargetName = 'gateway' | 'rabbitmq' | 'echo';

export interface RunningTarget {
  target: Target;
  /** Stop what was started here (nothing for RabbitMQ); returns the gateway's CPU profile path, if one was taken. */
  stop(): Promise<string | undefined>;
}

export interface TargetOptions {
  services: Services;
  /** Use a gateway already running there instead of starting one (`pid` for /proc readings). */
  url?: string;
  pid?: number;
  env?: Record<string, string>;
  cpuProfile?: boolean;
}

/** RabbitMQ's own Web-STOMP plugin: the peer the gateway is compared with. */
export const RABBITMQ_WEB_STOMP = 'ws://127.0.0.1:15674/ws';

/** Start (or point at) the server a scenario runs against. */
export async function startTarget(name: TargetName, o: TargetOptions): Promise<RunningTarget> {
  if (name === 'rabbitmq') {
    return { target: { kind: 'stomp', name: 'rabbitmq-web-stomp', wsUrl: RABBITMQ_WEB_STOMP, login: 'guest', passcode: 'guest' }, stop: async () => undefined };
  }
  if (name === 'echo') return startEcho();
  if (o.url) {
    const httpUrl = o.url.replace(/\/$/, '');
    return { target: { kind: 'gateway', name: 'gateway', httpUrl, wsUrl: `${httpUrl.replace(/^http/, 'ws')}/ws`, pid: o.pid }, stop: async () => undefined };
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const gw = await spawnGateway({
    services: o.services,
    env: o.env,
    cpuProfileDir: o.cpuProfile ? join(RESULTS_DIR, 'profiles') : undefined,
    logFile: join(RESULTS_DIR, `gateway-${o.services}-${stamp}.log`),
  });
  return {
    target: { kind: 'gateway', name: `gateway (${o.services})`, httpUrl: gw.httpUrl, wsUrl: gw.wsUrl, pid: gw.pid },
    stop: () => gw.stop(),
  };
}

async function startEcho(): Promise<RunningTarget> {
  const script = fileURLToPath(new URL('./echo-server.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`echo server exited (${code})`)));
    child.stdout!.on('data', (d: Buffer) => {
      const m = /listening (\d+)/.exec(d.toString());
      if (m) resolve(Number(m[1]));
    });
  });
  return {
    target: { kind: 'stomp', name: 'echo relay', wsUrl: `ws://127.0.0.1:${port}/`, login: 'guest', passcode: 'guest', pid: child.pid },
    stop: async () => {
      child.kill('SIGTERM');
      return undefined;
    },
  };
}
