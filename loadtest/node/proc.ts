import { readdirSync, readFileSync } from 'node:fs';

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

/** Pids of every process whose command name (`/proc/<pid>/comm`) is `name`. */
export function pidsNamed(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/** CPU time of a group of processes, in ms; processes that ended meanwhile count as nothing. */
export function groupCpuMs(pids: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      sum += cpuMs(pid);
    } catch {
      // Gone.
    }
  }
  return sum;
}

/** Machine-wide CPU counters from /proc/stat: idle (idle + iowait) and total, in clock ticks. */
export function machineTicks(): { idle: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { idle: fields[3]! + fields[4]!, total: fields.reduce((a, b) => a + b, 0) };
}
