import { readFileSync } from 'node:fs';

/** What Linux says about a process: resident memory and CPU time, read from /proc. */

const CLOCK_TICKS_PER_S = 100; // getconf CLK_TCK on Linux

export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!kb) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb[1]) * 1024;
}

/** User plus system CPU time the process has used, in ms. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at field 3 (state); utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/** The process's share of one core over `ms` of wall time, as a fraction (0.02 = 2% of a core). */
export async function cpuShare(pid: number, ms: number): Promise<number> {
  const before = cpuMs(pid);
  await new Promise((r) => setTimeout(r, ms));
  return (cpuMs(pid) - before) / ms;
}
