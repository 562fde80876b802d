import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, describe, expect, test, vi } from 'vitest';
import { freePorts } from '../scripts/gateway-process.ts';
import { api } from './support/gateway.ts';

const ROOT = new URL('..', import.meta.url).pathname;

/**
 * Packages whose install scripts may be skipped (`npm ci --ignore-scripts`, or npm 11 not allowing them): prisma's
 * checks the Node version, @prisma/engines' downloads the native engine this project does without
 * (shared PRISMA-OFFLINE notes), esbuild's only checks the binary its per-platform package already ships.
 */
const SCRIPTS_NOT_NEEDED = ['node_modules/@prisma/engines', 'node_modules/esbuild', 'node_modules/prisma'];

/** A directory of links to every program on PATH but the compilers and make, as on a machine without them. */
async function pathWithoutCompilers(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chat-nocc-'));
  const compiler = /^(cc|c\+\+|gcc|g\+\+|clang|clang\+\+|make|gmake)(-[\d.]+)?$|-(gcc|g\+\+)(-[\d.]+)?$/;
  for (const from of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    for (const name of await readdir(from).catch(() => [])) {
      if (!compiler.test(name)) await symlink(join(from, name), join(dir, name)).catch(() => {});
    }
  }
  return dir;
}

/** Runs `command` to its end; rejects with its output when it fails. */
function run(command: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')}: exit ${code}\n${output}`))));
  });
}

describe('installation needs no compiler', () => {
  const cleanup: string[] = [];
  afterAll(async () => {
    for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
  });

  test('every package with an install script is one that works without it', async () => {
    const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> };
    const withScripts = Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript).map(([path]) => path);
    expect(withScripts.sort()).toEqual(SCRIPTS_NOT_NEEDED);
  });

  test('a clean copy, npm ci --ignore-scripts, then npm start with no compiler on PATH: signs up and logs in a user', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'chat-clean-'));
    const bin = await pathWithoutCompilers();
    cleanup.push(copy, bin);
    for (const path of ['package.json', 'package-lock.json', 'tsconfig.json', 'prisma', 'src']) {
      await cp(join(ROOT, path), join(copy, path), { recursive: true, filter: (src) => !src.includes(`${join('src', 'generated')}`) });
    }
    // Only what npm needs to reach its registry: nothing of the test runner's own environment.
    const passed = ['HOME', 'npm_config_cache', 'npm_config_registry', 'HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY'];
    const env = { ...Object.fromEntries(passed.flatMap((k) => (process.env[k] ? [[k, process.env[k]]] : []))), PATH: bin };
    await expect(run('sh', ['-c', 'command -v cc || command -v gcc || command -v g++ || command -v make'], { cwd: copy, env })).rejects.toThrow();
    await run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: copy, env });

    const [port] = (await freePorts(1)) as [number];
    const dataDir = join(copy, 'data');
    await mkdir(dataDir);
    // Its own process group, so that npm, tsx and the gateway stop together.
    const gateway = spawn('npm', ['start'], {
      cwd: copy,
      env: { ...env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn' },
      stdio: 'ignore',
      detached: true,
    });
    try {
      const url = `http://127.0.0.1:${port}`;
      await vi.waitFor(async () => expect((await fetch(`${url}/healthz`)).status).toBe(200), { timeout: 120_000, interval: 500 });
      const credentials = { username: 'CleanInstall', password: 'correct horse battery' };
      expect((await api(url, 'POST', '/api/auth/signup', credentials)).status).toBe(201);
      const login = await api<{ user: { username: string } }>(url, 'POST', '/api/auth/login', credentials);
      expect(login.status).toBe(200);
      expect(login.body.user.username).toBe('CleanInstall');
    } finally {
      const exited = new Promise((resolve) => gateway.once('exit', resolve));
      process.kill(-gateway.pid!, 'SIGTERM');
      await exited;
    }
  }, 600_000);
});
