import { loadavg } from 'node:os';
import type { FanoutResult, FanoutSession } from './fanout.ts';
import { groupCpuMs, machineTicks, pidsNamed } from './proc.ts';
import { printTable } from './report.ts';

export interface CpuBudgetStep {
  ratePerClient: number;
  fanout: FanoutResult;
  /** Share of one core each process group used over the sending window. */
  cores: Record<string, number>;
  /** CPU ms each group spent per message accepted in that window. */
  msPerMessage: Record<string, number>;
  /** Share of all cores busy (anything, ours or not) over the window. */
  machineBusy: number;
  loadavg: number[];
}

/**
 * Where the CPU goes per stored message: runs the fan-out at each rate and reads, over its sending window, the
 * CPU of the gateway, PostgreSQL, Redis and RabbitMQ from /proc, and how busy the whole machine was.
 */
export async function runCpuBudget(session: FanoutSession, gatewayPid: number, rates: number[], durationMs: number): Promise<CpuBudgetStep[]> {
  const steps: CpuBudgetStep[] = [];
  for (const rate of rates) {
    await session.quiet(2000, 120_000);
    const groups: Record<string, number[]> = {
      gateway: [gatewayPid],
      postgres: pidsNamed('postgres'),
      redis: pidsNamed('redis-server'),
      rabbitmq: pidsNamed('beam.smp'),
    };
    const before = Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, groupCpuMs(pids)]));
    const m0 = machineTicks();
    const t0 = Date.now();
    const run = session.run(rate, durationMs, 15_000);
    // The window: from the first send (the run starts 500 ms after it is asked) to the last.
    await new Promise((r) => setTimeout(r, durationMs + 500));
    const windowMs = Date.now() - t0;
    const m1 = machineTicks();
    const spent = Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, groupCpuMs(pids) - before[k]!]));
    const fanout = await run;
    const accepted = fanout.inPerS * (durationMs / 1000);
    steps.push({
      ratePerClient: rate,
      fanout,
      cores: Object.fromEntries(Object.entries(spent).map(([k, ms]) => [k, ms / windowMs])),
      msPerMessage: Object.fromEntries(Object.entries(spent).map(([k, ms]) => [k, accepted ? ms / accepted : 0])),
      machineBusy: 1 - (m1.idle - m0.idle) / (m1.total - m0.total),
      loadavg: loadavg(),
    });
  }
  return steps;
}

export function printCpuBudget(steps: CpuBudgetStep[]): void {
  const groups = Object.keys(steps[0]?.cores ?? {});
  printTable(
    'CPU per stored message over the sending window (% of one core; ms per message)',
    ['in msg/s', 'deliv/s', 'p50 ms', ...groups.flatMap((g) => [`${g} %`, `${g} ms/msg`]), 'machine busy %', 'load avg'],
    steps.map((s) => [
      s.fanout.inPerS,
      s.fanout.deliveriesPerS,
      s.fanout.latencyMs.p50,
      ...groups.flatMap((g) => [s.cores[g]! * 100, s.msPerMessage[g]!]),
      s.machineBusy * 100,
      s.loadavg[0]!,
    ]),
  );
}
