/**
 * Every scenario in one run, against the gateway (embedded default, then RabbitMQ + Redis + PostgreSQL), with
 * RabbitMQ's own Web-STOMP as the baseline and the echo relay as the generator's own ceiling.
 *
 *   npm run bench                 short (under two minutes)
 *   npm run bench:full            the goal's sizes, the sweeps and the CPU budget (about forty minutes)
 *   ... -- --profile              the gateways also write V8 CPU profiles, summarised at the end
 *
 * RabbitMQ needs more than 1024 open files for 1,000 Web-STOMP clients: loadtest/rabbitmq-raise-nofile.sh.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { runConnections, printConnections, type ConnectionsResult } from './connections.ts';
import { printCpuBudget, runCpuBudget, type CpuBudgetStep } from './cpu-budget.ts';
import { FanoutSession, printFanout, sweep, type FanoutResult, type SweepResult } from './fanout.ts';
import type { Services } from './gateway-process.ts';
import { summarizeProfile, type SelfTime } from './profile.ts';
import { printTable, ratio, writeResult } from './report.ts';
import { printResume, runResume, type ResumeResult } from './resume.ts';
import { startTarget, type TargetName } from './target-process.ts';

const full = process.argv.includes('--full');
const profile = process.argv.includes('--profile');

const PLAN = full
  ? { rooms: 100, members: 10, users: 100, rate: 2, durationS: 20, drainS: 15, connections: 15_000, connectionUsers: 100, idleS: 20, resumeIterations: 100, sweep: true }
  : { rooms: 20, members: 10, users: 10, rate: 2, durationS: 4, drainS: 4, connections: 500, connectionUsers: 10, idleS: 3, resumeIterations: 5, sweep: false };
const SWEEP = { fromRate: 0.25, maxRate: 16, stepMs: 10_000, drainMs: 10_000, p99LimitMs: 100, refine: 2 };
/**
 * Bench gateways: per-session rate limit out of the way of the 300-message resume burst; heart-beats as default;
 * connection caps above the 15,000 idle connections (150 per user) of --full, below the 20,000 file limit.
 */
const GATEWAY_ENV = { RATE_LIMIT_PER_S: '100000', HEARTBEAT_MS: '10000', MAX_CONNECTIONS: '16000', MAX_CONNECTIONS_PER_USER: '1000' };
/** The goals of issue 4. */
const GOAL = { inPerS: 2000, deliveriesPerS: 20_000, p99Ms: 50, connections: 15_000, rssPerConnection: 20 * 1024, resumeP99Ms: 200, missed: 300 };

interface TargetRun {
  name: string;
  fanout?: FanoutResult;
  sweep?: SweepResult;
  resume?: ResumeResult[];
  connections?: ConnectionsResult;
  cpuBudget?: CpuBudgetStep[];
  profile?: { path: string; top: SelfTime[]; modules: SelfTime[] };
}

const runs: TargetRun[] = [];
const started = new Date();
const machine = { loadavgAtStart: loadavg(), cores: cpus().length, totalMemGiB: totalmem() / 2 ** 30 };
console.log(`bench ${full ? 'full' : 'short'} ${started.toISOString()}; load average ${machine.loadavgAtStart.map((l) => l.toFixed(2)).join(' ')}`);

async function fanoutOn(run: TargetRun, name: TargetName, services: Services): Promise<void> {
  const running = await startTarget(name, { services, env: GATEWAY_ENV, cpuProfile: profile && name === 'gateway' });
  run.name = running.target.name;
  try {
    if (name === 'gateway' && running.target.kind === 'gateway') {
      const target = running.target;
      run.connections = await runConnections({ target, clients: PLAN.connections, users: PLAN.connectionUsers, heartbeatMs: 10_000, idleS: PLAN.idleS, workers: 2 });
      printConnections([run.connections]);
      run.resume = [];
      for (const dropWaitMs of [500, 0]) {
        const r = await runResume({ target, missed: GOAL.missed, iterations: PLAN.resumeIterations, dropWaitMs });
        run.resume.push(r);
        printResume([r]);
      }
    }
    const session = await FanoutSession.open({ target: running.target, rooms: PLAN.rooms, members: PLAN.members, users: PLAN.users, workers: 2 }, 'bench');
    try {
      // The sweep first, from a low rate up: the goal's rate may overload a server, and its backlog would spoil what follows.
      if (PLAN.sweep) {
        run.sweep = await sweep(session, { ...SWEEP, onStep: (r) => printFanout(`sweep step: ${running.target.name}`, [r]) });
        await session.quiet(2000, 120_000);
      }
      if (full && running.target.kind === 'gateway' && running.target.pid !== undefined) {
        run.cpuBudget = await runCpuBudget(session, running.target.pid, [0.5], 15_000);
        printCpuBudget(run.cpuBudget);
        await session.quiet(2000, 120_000);
      }
      run.fanout = await session.run(PLAN.rate, PLAN.durationS * 1000, PLAN.drainS * 1000);
      printFanout(`fan-out: ${running.target.name}`, [run.fanout]);
    } finally {
      await session.close();
    }
  } finally {
    const path = await running.stop();
    if (path) run.profile = { path, ...summarizeProfile(path, 25) };
  }
}

for (const [name, services] of [
  ['echo', 'embedded'],
  ['rabbitmq', 'embedded'],
  ['gateway', 'embedded'],
  ['gateway', 'real'],
] as const) {
  const run: TargetRun = { name };
  runs.push(run);
  try {
    await fanoutOn(run, name, services);
  } catch (err) {
    console.error(`${name} (${services}) failed: ${(err as Error).stack ?? String(err)}`);
  }
}

// The summary: every fan-out figure also as a ratio to RabbitMQ Web-STOMP, which relays without storing or de-duplicating.
const baseline = runs.find((r) => r.name === 'rabbitmq-web-stomp')?.fanout;
console.log(`\n=== summary (${full ? 'full' : 'short'}; ${PLAN.rooms}x${PLAN.members} clients over ${PLAN.users} accounts, ${PLAN.rate} msg/s per client, ${PLAN.durationS} s) ===`);
printFanout(
  'fan-out (ratios: to RabbitMQ Web-STOMP, which relays without storing or de-duplicating)',
  runs.flatMap((r) => (r.fanout ? [r.fanout] : [])),
  baseline,
);
const sweeps = runs.flatMap((r) => (r.sweep ? [r.sweep] : []));
if (sweeps.length) {
  const base = sweeps.find((s) => s.target === 'rabbitmq-web-stomp');
  printTable(
    `sweep: highest open-loop rate holding p99 < ${SWEEP.p99LimitMs} ms with nothing lost (ratio to RabbitMQ Web-STOMP, which relays without storing or de-duplicating)`,
    ['target', 'msg/s per client', 'in msg/s', 'deliv/s', 'p99 ms', 'ratio in', 'ratio deliv'],
    sweeps.map((s) => [
      s.target,
      s.bestRatePerClient,
      s.best?.inPerS ?? 0,
      s.best?.deliveriesPerS ?? 0,
      s.best?.latencyMs.p99 ?? 0,
      ratio(s.best?.inPerS ?? 0, base?.best?.inPerS),
      ratio(s.best?.deliveriesPerS ?? 0, base?.best?.deliveriesPerS),
    ]),
  );
}
for (const r of runs) {
  if (!r.cpuBudget) continue;
  console.log(`\n${r.name}:`);
  printCpuBudget(r.cpuBudget);
}
printResume(runs.flatMap((r) => r.resume ?? []));
printConnections(runs.flatMap((r) => (r.connections ? [r.connections] : [])));

// The gap to the goals of issue 4.
const goalRows = runs
  .filter((r) => r.name.startsWith('gateway'))
  .flatMap((r) => {
    const f = r.fanout;
    const exact = r.resume?.find((x) => x.dropWaitMs > 0);
    const c = r.connections;
    return [
      [r.name, `fan-out in (msg/s, ${PLAN.rooms * PLAN.members} clients)`, `>= ${GOAL.inPerS}`, f?.inPerS ?? '-'],
      [r.name, 'fan-out deliveries/s', `>= ${GOAL.deliveriesPerS}`, f?.deliveriesPerS ?? '-'],
      [r.name, 'fan-out p99 ms', `< ${GOAL.p99Ms}`, f?.latencyMs.p99 ?? '-'],
      [r.name, 'fan-out lost / duplicated', '0 / 0', f ? `${f.lost} / ${f.duplicated}` : '-'],
      [r.name, `idle connections (${c?.clients ?? '-'}) RSS KiB each`, `< ${GOAL.rssPerConnection / 1024} at ${GOAL.connections}`, c ? c.rssPerConnectionBytes / 1024 : '-'],
      [r.name, `resume ${GOAL.missed} missed, p99 ms`, `< ${GOAL.resumeP99Ms}`, exact?.caughtUpMs.p99 ?? '-'],
      [r.name, 'resume exact iterations', `${exact?.iterations ?? '-'}`, exact?.exact ?? '-'],
    ];
  });
printTable(`goals of issue 4 (this run's sizes: ${full ? 'the goal sizes' : 'short, scaled down'})`, ['target', 'figure', 'goal', 'measured'], goalRows);

const path = writeResult(full ? 'bench-full' : 'bench', {
  started: started.toISOString(),
  finished: new Date().toISOString(),
  machine: { ...machine, loadavgAtEnd: loadavg() },
  plan: PLAN,
  sweep: PLAN.sweep ? SWEEP : undefined,
  gatewayEnv: GATEWAY_ENV,
  runs,
});
console.log(`\nwrote ${path}`);
