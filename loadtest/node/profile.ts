import { readFileSync } from 'node:fs';
import { basename, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { printTable } from './report.ts';

/** Self time by function from a V8 `.cpuprofile` (what `node --cpu-prof` writes). */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  fn: string;
  where: string;
  ms: number;
  /** Share of the time the process was not idle. */
  busyShare: number;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where a function lives, coarsely: a package, a source file, WebAssembly, or V8/Node itself. */
function moduleOf(where: string, fn: string): string {
  if (where.startsWith('wasm:')) return 'WebAssembly (PGlite)';
  if (!where) return fn.startsWith('(') ? fn : '(native: syscalls, V8 builtins)';
  if (where.startsWith('node:')) return 'node:' + where.slice(5).split(':')[0]!.split('/')[0];
  const path = where.replace(/:\d+$/, '');
  const pkg = /^(@[^/]+\/[^/]+|[^/]+)\//.exec(path);
  return path.startsWith('src/') || path.startsWith('loadtest/') ? path : (pkg?.[1] ?? path);
}

export function selfTimes(path: string): { busyMs: number; idleMs: number; top: SelfTime[]; modules: SelfTime[] } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, { fn: string; where: string; us: number }>();
  let idleUs = 0;
  let allUs = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    allUs += us;
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') return void (idleUs += us);
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : '';
    const key = `${functionName}@${where}`;
    const t = totals.get(key) ?? { fn: functionName || '(anonymous)', where, us: 0 };
    t.us += us;
    totals.set(key, t);
  });
  const busyUs = allUs - idleUs;
  const sorted = (list: Iterable<{ fn: string; where: string; us: number }>): SelfTime[] =>
    [...list].sort((a, b) => b.us - a.us).map((t) => ({ fn: t.fn, where: t.where, ms: t.us / 1000, busyShare: busyUs ? t.us / busyUs : 0 }));
  const modules = new Map<string, { fn: string; where: string; us: number }>();
  for (const t of totals.values()) {
    const name = moduleOf(t.where, t.fn);
    const m = modules.get(name) ?? { fn: name, where: '', us: 0 };
    m.us += t.us;
    modules.set(name, m);
  }
  return { busyMs: busyUs / 1000, idleMs: idleUs / 1000, top: sorted(totals.values()), modules: sorted(modules.values()) };
}

function shortUrl(url: string): string {
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const rel = relative(ROOT, path);
  return rel.replace(/^node_modules\//, '');
}

export function summarizeProfile(path: string, count: number): { top: SelfTime[]; modules: SelfTime[] } {
  const { busyMs, idleMs, top, modules } = selfTimes(path);
  printTable(
    `CPU profile ${basename(path)}: self time by module`,
    ['module', 'self ms', '% of busy'],
    modules.slice(0, count).map((t) => [t.fn, t.ms, t.busyShare * 100]),
  );
  printTable(
    `CPU profile ${basename(path)}: busy ${(busyMs / 1000).toFixed(1)} s, idle ${(idleMs / 1000).toFixed(1)} s; top ${count} by self time`,
    ['function', 'where', 'self ms', '% of busy'],
    top.slice(0, count).map((t) => [t.fn, t.where, t.ms, t.busyShare * 100]),
  );
  return { top: top.slice(0, count), modules: modules.slice(0, count) };
}

if (import.meta.url === `file://${process.argv[1]}`) summarizeProfile(process.argv[2]!, Number(process.argv[3] ?? 30));
