/**
 * The load generator's command line: one scenario per call.
 *
 *   tsx loadtest/node/cli.ts fanout      --target gateway|rabbitmq|echo [--services embedded|real] [--rooms 100] [--members 10] [--users 100] [--rate 2] [--duration 20]
 *   tsx loadtest/node/cli.ts sweep       (same options) [--from 0.5] [--max 64] [--step 10] [--p99 100] [--refine 2]
 *   tsx loadtest/node/cli.ts connections [--services embedded|real] [--clients 15000] [--heartbeat 10000] [--idle 10]
 *   tsx loadtest/node/cli.ts resume      [--services embedded|real] [--missed 300] [--iterations 50] [--drop-wait 0] [--overlap 0]
 *   tsx loadtest/node/cli.ts cpu-budget  [--services embedded|real] [--rates 0.5,1] [--duration 15] (fan-out options as above)
 *   tsx loadtest/node/cli.ts soak        [--services embedded|real] [--sessions 2000] [--concurrency 100] [--honest 20] [--kinds a,b]
 *
 * Common: --workers N (generator processes), --url http://host:port [--pid N] (a gateway already running),
 * --profile (the started gateway writes a V8 CPU profile under loadtest/results/profiles), --env K=V,K=V.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { runConnections, printConnections } from './connections.ts';
import { printCpuBudget, runCpuBudget } from './cpu-budget.ts';
import { FanoutSession, printFanout, sweep } from './fanout.ts';
import { summarizeProfile } from './profile.ts';
import { writeResult } from './report.ts';
import { printResume, runResume } from './resume.ts';
import { printSoak, runSoak, SOAK_DEFAULTS } from './soak.ts';
import { loadConfig } from '../../src/config.ts';
import { startTarget, type TargetName } from './target-process.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    target: { type: 'string', default: 'gateway' },
    services: { type: 'string', default: 'embedded' },
    url: { type: 'string' },
    pid: { type: 'string' },
    env: { type: 'string', default: '' },
    profile: { type: 'boolean', default: false },
    workers: { type: 'string', default: '2' },
    rooms: { type: 'string', default: '100' },
    members: { type: 'string', default: '10' },
    users: { type: 'string', default: '100' },
    rate: { type: 'string', default: '2' },
    duration: { type: 'string', default: '20' },
    from: { type: 'string', default: '0.5' },
    max: { type: 'string', default: '64' },
    step: { type: 'string', default: '10' },
    p99: { type: 'string', default: '100' },
    refine: { type: 'string', default: '2' },
    clients: { type: 'string', default: '15000' },
    heartbeat: { type: 'string', default: '10000' },
    idle: { type: 'string', default: '10' },
    missed: { type: 'string', default: '300' },
    iterations: { type: 'string', default: '50' },
    'drop-wait': { type: 'string', default: '0' },
    overlap: { type: 'string', default: '0' },
    rates: { type: 'string', default: '0.5,1' },
    sessions: { type: 'string', default: String(SOAK_DEFAULTS.sessions) },
    concurrency: { type: 'string', default: String(SOAK_DEFAULTS.concurrency) },
    honest: { type: 'string', default: String(SOAK_DEFAULTS.honest) },
    kinds: { type: 'string' },
  },
});

const num = (v: string | undefined): number => Number(v);
const scenario = positionals[0];
const services = values.services === 'real' ? 'real' : 'embedded';
/**
 * The bench gateway's settings: no per-session rate limit or connection cap in the way of a load run (see
 * BENCHMARKS.md); the soak attacks the gateway as it ships, limits included.
 */
const env: Record<string, string> = {
  ...(scenario === 'soak' ? {} : { RATE_LIMIT_PER_S: '100000', MAX_CONNECTIONS: '16000', MAX_CONNECTIONS_PER_USER: '1000' }),
  ...Object.fromEntries(values.env.split(',').filter(Boolean).map((kv) => kv.split('=') as [string, string])),
};
const running = await startTarget(values.target as TargetName, { services, url: values.url, pid: values.pid ? num(values.pid) : undefined, env, cpuProfile: values.profile });
const target = running.target;
/** Others' work on the machine shows here: every result file records it. */
const machine = { loadavgAtStart: loadavg() };

try {
  switch (scenario) {
    case 'fanout':
    case 'sweep': {
      const session = await FanoutSession.open({ target, rooms: num(values.rooms), members: num(values.members), users: num(values.users), workers: num(values.workers) }, 'fan');
      try {
        if (scenario === 'fanout') {
          const r = await session.run(num(values.rate), num(values.duration) * 1000, 10_000);
          printFanout(`fan-out against ${target.name}`, [r]);
          console.log(`\nwrote ${writeResult('fanout', { env, machine, result: r })}`);
        } else {
          const s = await sweep(session, {
            fromRate: num(values.from),
            maxRate: num(values.max),
            stepMs: num(values.step) * 1000,
            drainMs: 10_000,
            p99LimitMs: num(values.p99),
            refine: num(values.refine),
            onStep: (r) => printFanout(`sweep step against ${target.name}`, [r]),
          });
          printFanout(`sweep against ${target.name}: best ${s.bestRatePerClient} msg/s per client`, s.best ? [s.best] : []);
          console.log(`\nwrote ${writeResult('sweep', { env, machine, result: s })}`);
        }
      } finally {
        await session.close();
      }
      break;
    }
    case 'cpu-budget': {
      if (target.kind !== 'gateway' || target.pid === undefined) throw new Error('cpu-budget needs a gateway and its pid');
      const session = await FanoutSession.open({ target, rooms: num(values.rooms), members: num(values.members), users: num(values.users), workers: num(values.workers) }, 'cpu');
      try {
        const steps = await runCpuBudget(session, target.pid, values.rates.split(',').map(Number), num(values.duration) * 1000);
        printCpuBudget(steps);
        console.log(`\nwrote ${writeResult('cpu-budget', { env, machine, result: steps })}`);
      } finally {
        await session.close();
      }
      break;
    }
    case 'connections': {
      const r = await runConnections({ target, clients: num(values.clients), heartbeatMs: num(values.heartbeat), idleS: num(values.idle), workers: num(values.workers) });
      printConnections([r]);
      console.log(`\nwrote ${writeResult('connections', { env, machine, result: r })}`);
      break;
    }
    case 'resume': {
      if (target.kind !== 'gateway') throw new Error('resume runs against the gateway only');
      const r = await runResume({ target, missed: num(values.missed), iterations: num(values.iterations), dropWaitMs: num(values['drop-wait']), overlap: num(values.overlap) });
      printResume([r]);
      console.log(`\nwrote ${writeResult('resume', { env, machine, result: r })}`);
      break;
    }
    case 'soak': {
      if (target.kind !== 'gateway') throw new Error('soak runs against the gateway only');
      // The attacked gateway's limits: its configuration's defaults with --env on top (for --url, pass its settings there).
      const config = loadConfig(env);
      const limits = {
        ratePerSecond: config.RATE_LIMIT_PER_S,
        maxFrameBytes: config.MAX_FRAME_BYTES,
        maxPendingBytes: config.MAX_PENDING_BYTES,
        maxQueuedFrames: config.RATE_LIMIT_PER_S * 2,
      };
      const r = await runSoak({
        ...SOAK_DEFAULTS,
        target,
        limits,
        sessions: num(values.sessions),
        concurrency: num(values.concurrency),
        honest: num(values.honest),
        kinds: values.kinds?.split(','),
      });
      printSoak(r, limits);
      console.log(`\nwrote ${writeResult('soak', { env, machine, result: r })}`);
      break;
    }
    default:
      throw new Error(`unknown scenario ${scenario ?? '(none)'}: fanout, sweep, connections, resume, cpu-budget or soak`);
  }
} finally {
  const profile = await running.stop();
  if (profile) {
    console.log(`\nCPU profile: ${profile}`);
    summarizeProfile(profile, 25);
  }
}
