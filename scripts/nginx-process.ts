import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TEMPLATES = fileURLToPath(new URL('../nginx/', import.meta.url));
const STOP_TIMEOUT_MS = 10_000;

export interface NginxProcess {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The temporary directory with the rendered config, pid and temp files; removed once nginx has exited. */
  readonly prefix: string;
  /** The master process; its workers are its children. */
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal name) once the master has gone and its prefix dir is removed. */
  readonly exited: Promise<number | string>;
  /** Fast shutdown (SIGTERM; SIGKILL if that takes longer than 10 s), then remove the prefix dir; resolves with the exit. */
  stop(): Promise<number | string>;
}

/** Fill every `${CHAT_...}` placeholder of a template; a placeholder without a value is an error, not an empty string. */
export function renderTemplate(template: string, vars: Readonly<Record<string, string>>): string {
  return template.replace(/\$\{(CHAT_[A-Z0-9_]+)\}/g, (_, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`nginx template: no value for \${${name}}`);
    return value;
  });
}

/** The template variables of the site config (nginx/chat.conf.template), the same for `npm run cluster` and compose. */
export function siteVariables(port: number, gateways: readonly string[]): Record<string, string> {
  return { CHAT_PORT: String(port), CHAT_GATEWAYS: gateways.map((g) => `server ${g};`).join(' ') };
}

/**
 * Run nginx in the foreground in front of `gateways` (`host:port` each), listening on `port`, with the config
 * rendered from nginx/ into a fresh temporary prefix dir; resolve once `/healthz` answers through it.
 * nginx's own log lines (warnings and errors) go to `onLog`.
 */
export async function startNginx(
  port: number,
  gateways: readonly string[],
  onLog: (line: string) => void = () => {},
): Promise<NginxProcess> {
  const binary = await ensureNginx(onLog);
  const prefix = await mkdtemp(join(tmpdir(), 'chat-nginx-'));
  // Workers drop root privileges (to nobody) and must still reach their temp dirs here.
  await chmod(prefix, 0o755);
  const [site, main] = await Promise.all([
    readFile(join(TEMPLATES, 'chat.conf.template'), 'utf8'),
    readFile(join(TEMPLATES, 'nginx.conf.template'), 'utf8'),
  ]);
  await writeFile(join(prefix, 'chat.conf'), renderTemplate(site, siteVariables(port, gateways)));
  await writeFile(join(prefix, 'nginx.conf'), renderTemplate(main, { CHAT_PREFIX: prefix }));

  // -e: the error log before the config is read would otherwise be /var/log/nginx/error.log.
  const child = spawn(binary, ['-p', `${prefix}/`, '-c', join(prefix, 'nginx.conf'), '-e', 'stderr'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const recent: string[] = [];
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line) continue;
      // The last few lines explain a failed start.
      if (recent.push(line) > 20) recent.shift();
      onLog(`[nginx] ${line}`);
    }
  };
  child.stdout!.on('data', forward);
  child.stderr!.on('data', forward);
  // The prefix dir goes with the process, however it ends.
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1))).then(
    async (code) => {
      await rm(prefix, { recursive: true, force: true });
      return code;
    },
  );

  let stopping: Promise<number | string> | undefined;
  const stop = (): Promise<number | string> =>
    (stopping ??= (async () => {
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      const code = await exited;
      clearTimeout(kill);
      return code;
    })());

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const state = await Promise.race([
      exited.then((c) => `exited ${c}`),
      fetch(`${url}/healthz`).then((r) => (r.ok ? 'up' : 'down'), () => 'down'),
    ]);
    if (state === 'up') break;
    if (state.startsWith('exited')) throw new Error(`nginx ${state} before it was up: ${recent.join(' | ')}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx not serving ${url}/healthz within 30 s: ${recent.join(' | ')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, prefix, child, exited, stop };
}

/** The nginx binary; when there is none, install Debian's package (as root: apt-get update first if apt does not know it). */
export async function ensureNginx(onLog: (line: string) => void): Promise<string> {
  const found = await findNginx();
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new Error('nginx is not installed, and installing it needs root: run `sudo apt-get install -y nginx` first');
  }
  onLog('[cluster] nginx is not installed; installing Debian\'s package (apt-get install -y nginx)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if ((await run('apt-cache', ['show', 'nginx'], env, () => {})) !== 0) {
    await runOrThrow('apt-get', ['update', '-q'], env, onLog);
  }
  await runOrThrow('apt-get', ['install', '-y', '-q', 'nginx'], env, onLog);
  const installed = await findNginx();
  if (!installed) throw new Error('apt-get installed nginx, but no nginx binary is on PATH or in /usr/sbin');
  return installed;
}

async function findNginx(): Promise<string | undefined> {
  // Debian puts it in /usr/sbin, which is not on every user's PATH.
  const candidates = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin'].map((dir) => join(dir, 'nginx'));
  for (const candidate of candidates) {
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  return undefined;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, onLog: (line: string) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const forward = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) onLog(`[${command}] ${line}`);
    };
    child.stdout.on('data', forward);
    child.stderr.on('data', forward);
    child.once('error', reject);
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

async function runOrThrow(command: string, args: string[], env: NodeJS.ProcessEnv, onLog: (line: string) => void): Promise<void> {
  const code = await run(command, args, env, onLog);
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}`);
}
