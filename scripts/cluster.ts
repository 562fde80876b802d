/**
 * `npm run cluster`: three gateways on the machine's RabbitMQ, Redis and PostgreSQL, with nginx in front on
 * http://localhost:8000, until Ctrl-C or SIGTERM. Settings: README's "Cluster mode" section.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { clusterOptionsFromEnv, startCluster } from './local-cluster.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

// The gateways need the generated Prisma client, as `npm start` does (its prestart).
const generated = await new Promise<number>((resolve, reject) => {
  const child = spawn('npm', ['run', '--silent', 'generate'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  child.once('error', reject);
  child.once('exit', (code) => resolve(code ?? 1));
});
if (generated !== 0) throw new Error(`npm run generate exited with ${generated}`);

const options = await clusterOptionsFromEnv();
const cluster = await startCluster({ ...options, onLog: (line) => console.log(line) });

const local = `localhost:${options.port}`;
console.log(
  [
    '',
    'chat cluster is up:',
    `  http://${local}        REST API, /healthz, /readyz, /metrics (through nginx)`,
    `  ws://${local}/ws       STOMP over WebSocket`,
    ...cluster.gateways.map((g) => `  ${g.url}   ${g.name} directly`),
    'Ctrl-C stops it.',
    '',
  ].join('\n'),
);

// Ctrl-C reaches the gateways and nginx too (one process group); they stop on it as on SIGTERM, and stop() waits for them.
const reason = await new Promise<string>((resolve) => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => resolve(signal));
  void cluster.failure.then(resolve);
});
console.log(`[cluster] ${reason}: stopping`);
const codes = await cluster.stop();
console.log(`[cluster] stopped: ${Object.entries(codes).map(([service, code]) => `${service} ${code}`).join(', ')}`);
const clean = (reason === 'SIGINT' || reason === 'SIGTERM') && Object.values(codes).every((code) => code === 0);
process.exit(clean ? 0 : 1);
