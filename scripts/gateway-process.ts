import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface GatewayProcess {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process has gone. */
  readonly exited: Promise<number | string>;
  /** SIGTERM (graceful) or SIGKILL (a crash). */
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Run one gateway (`src/main.ts`) as a child process on `port` with `env` on top of this process's environment,
 * and resolve once it answers /healthz. Its log lines go to `onLog` (default: dropped).
 */
export async function startGatewayProcess(
  name: string,
  port: number,
  env: Record<string, string>,
  onLog: (line: string) => void = () => {},
): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port), GATEWAY_ID: env.GATEWAY_ID ?? name },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The last lines, to say why a gateway that never came up failed.
  const recent: string[] = [];
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line) continue;
      recent.push(line);
      if (recent.length > 20) recent.shift();
      onLog(`[${name}] ${line}`);
    }
  };
  child.stdout!.on('data', forward);
  child.stderr!.on('data', forward);
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const state = await Promise.race([exited.then((c) => `exited ${c}`), fetch(`${url}/healthz`).then((r) => (r.ok ? 'up' : 'down'), () => 'down')]);
    if (state === 'up') break;
    if (state.startsWith('exited')) throw new Error(`gateway ${name} ${state} before it was up:\n${recent.join('\n')}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway ${name} not up within 60 s`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { name, port, url, child, exited, kill: (signal = 'SIGTERM') => void child.kill(signal) };
}

/** `n` distinct ports free on 127.0.0.1 right now (for gateways a test starts; far less likely to collide than random ones). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}
