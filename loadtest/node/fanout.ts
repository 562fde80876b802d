import { Histogram } from './histogram.ts';
import { deal, WorkerPool } from './pool.ts';
import { printTable, ratio, type Cell } from './report.ts';
import { roomClients, type ClientSpec, type Target } from './targets.ts';
import type { Connected, Drained, Sent, Stats } from './worker-protocol.ts';

export interface Population {
  target: Target;
  rooms: number;
  members: number;
  /** Generator processes to spread the clients over. */
  workers: number;
  /** Distinct accounts behind the clients (see roomClients). */
  users?: number;
  heartbeatMs?: number;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface FanoutResult {
  target: string;
  rooms: number;
  members: number;
  clients: number;
  users: number;
  connectFailed: number;
  ratePerClient: number;
  durationS: number;
  /** Load messages sent, and those the server refused with an error event (not expected to arrive). */
  sent: number;
  refused: number;
  /** Messages accepted per second over the sending window: for the gateway, stored messages in. */
  inPerS: number;
  expected: number;
  received: number;
  /** Expected but not received by the end of the drain wait. */
  lost: number;
  duplicated: number;
  misrouted: number;
  /** Messages of earlier runs still arriving during this one (not counted above): a backlog left behind. */
  stale: number;
  errors: number;
  errorCodes: Record<string, number>;
  errorSamples: string[];
  /** Distinct deliveries per second, from the first due send to the last delivery. */
  deliveriesPerS: number;
  latencyMs: Percentiles;
  /** How far behind schedule the generator sent: large values mean the generator, not the server, lagged. */
  sendLagMs: Percentiles;
  /** Generator CPU per delivery, µs, and its mean use of cores over the run. */
  generatorCpuUsPerDelivery: number;
  generatorCores: number;
}

const clock = (): number => performance.timeOrigin + performance.now();

export const percentiles = (h: Histogram): Percentiles => ({
  p50: h.percentileMs(0.5),
  p90: h.percentileMs(0.9),
  p99: h.percentileMs(0.99),
  max: h.maxUs / 1000,
});

/** R rooms of M clients, connected once and then run at one or more open-loop rates. */
export class FanoutSession {
  private constructor(
    readonly population: Population,
    private readonly specs: ClientSpec[],
    private readonly pool: WorkerPool,
    readonly connectFailed: number,
    readonly connectSamples: string[],
  ) {}

  static async open(population: Population, tag: string): Promise<FanoutSession> {
    const specs = await roomClients(population.target, population.rooms, population.members, tag, population.users);
    const pool = WorkerPool.start(Math.min(population.workers, specs.length));
    const shares = deal(specs, pool.size);
    const connected = await pool.all<Connected>('connected', (i) => ({
      op: 'connect',
      wsUrl: population.target.wsUrl,
      clients: shares[i]!,
      heartbeatMs: population.heartbeatMs ?? 0,
      concurrency: 32,
      timeoutMs: 60_000,
    }));
    const failed = connected.reduce((n, c) => n + c.failed, 0);
    return new FanoutSession(population, specs, pool, failed, connected.flatMap((c) => c.samples).slice(0, 10));
  }

  /** Every client sends `ratePerClient` messages a second for `durationMs`; then wait up to `drainMs` for the stragglers. */
  async run(ratePerClient: number, durationMs: number, drainMs: number): Promise<FanoutResult> {
    const { rooms, members, target } = this.population;
    const startAt = clock() + 500;
    const sentReplies = await this.pool.all<Sent>('sent', () => ({ op: 'run', startAt, ratePerS: ratePerClient, durationMs }));
    const accepted: number[] = new Array(this.specs.length).fill(0);
    let sent = 0;
    let refused = 0;
    const lag = new Histogram();
    for (const r of sentReplies) {
      lag.merge(r.lag);
      for (const [index, s, f] of r.sent) {
        accepted[index] = s - f;
        sent += s;
        refused += f;
      }
    }
    const expected = this.specs.reduce((n, spec) => n + spec.peers.reduce((m, p) => m + accepted[p]!, 0), 0);
    const drained = await this.pool.all<Drained>('drained', () => ({ op: 'drain', accepted, timeoutMs: drainMs }));
    const latency = new Histogram();
    for (const d of drained) latency.merge(d.latency);
    const received = drained.reduce((n, d) => n + d.received, 0);
    const lastAt = Math.max(...drained.map((d) => d.lastAt));
    const elapsedMs = Math.max(durationMs, lastAt - startAt);
    const cpuUs = drained.reduce((n, d) => n + d.cpuUs, 0);
    const errorCodes: Record<string, number> = {};
    for (const d of drained) for (const [code, n] of Object.entries(d.errorCodes)) errorCodes[code] = (errorCodes[code] ?? 0) + n;
    return {
      target: target.name,
      rooms,
      members,
      clients: this.specs.length,
      users: Math.min(this.population.users ?? this.specs.length, this.specs.length),
      connectFailed: this.connectFailed,
      ratePerClient,
      durationS: durationMs / 1000,
      sent,
      refused,
      inPerS: (sent - refused) / (durationMs / 1000),
      expected,
      received,
      lost: Math.max(0, expected - received),
      duplicated: drained.reduce((n, d) => n + d.duplicates, 0),
      misrouted: drained.reduce((n, d) => n + d.misrouted, 0),
      stale: drained.reduce((n, d) => n + d.stale, 0),
      errors: drained.reduce((n, d) => n + d.errors, 0) + this.connectFailed,
      errorCodes,
      errorSamples: [...this.connectSamples, ...drained.flatMap((d) => d.samples)].slice(0, 10),
      deliveriesPerS: received / (elapsedMs / 1000),
      latencyMs: percentiles(latency),
      sendLagMs: percentiles(lag),
      generatorCpuUsPerDelivery: received ? cpuUs / received : 0,
      generatorCores: cpuUs / 1000 / elapsedMs,
    };
  }

  /**
   * Wait until no load message has arrived for `quietMs` (a backlog from an overloaded run has drained), at
   * most `maxMs`; returns whether it got quiet.
   */
  async quiet(quietMs: number, maxMs: number): Promise<boolean> {
    const deadline = Date.now() + maxMs;
    for (;;) {
      const stats = await this.pool.all<Stats>('stats', () => ({ op: 'stats' }));
      if (clock() - Math.max(...stats.map((s) => s.lastLoadAt)) >= quietMs) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** How long a sweep waits for a backlog to drain before it stops. */
const QUIET_MAX_MS = 120_000;

/** Nothing lost, duplicated, misrouted or refused, and p99 under the limit. */
export const holds = (r: FanoutResult, p99LimitMs: number): boolean =>
  r.lost === 0 && r.duplicated === 0 && r.misrouted === 0 && r.errors === 0 && r.latencyMs.p99 < p99LimitMs;

export interface SweepResult {
  target: string;
  p99LimitMs: number;
  /** The highest per-client rate that held, or 0 if none did; and its run. */
  bestRatePerClient: number;
  best: FanoutResult | undefined;
  steps: FanoutResult[];
  /** Set when a step's backlog did not drain within the wait and the sweep stopped there. */
  stoppedEarly?: string;
}

/**
 * The highest open-loop rate that holds p99 under `p99LimitMs` with nothing lost: double from `fromRate`
 * until a step fails (or `maxRate`), then bisect `refine` times between the last good and first bad rate.
 */
export async function sweep(
  session: FanoutSession,
  o: { fromRate: number; maxRate: number; stepMs: number; drainMs: number; p99LimitMs: number; refine: number; onStep?: (r: FanoutResult) => void },
): Promise<SweepResult> {
  const steps: FanoutResult[] = [];
  let stoppedEarly: string | undefined;
  const step = async (rate: number): Promise<FanoutResult> => {
    const r = await session.run(rate, o.stepMs, o.drainMs);
    steps.push(r);
    o.onStep?.(r);
    // A backlog left by an overloaded step would slow the next one down: wait for it to drain.
    if (!(await session.quiet(2000, QUIET_MAX_MS))) stoppedEarly = `backlog after ${rate} msg/s per client still draining after ${QUIET_MAX_MS / 1000} s`;
    return r;
  };
  let good = 0;
  let best: FanoutResult | undefined;
  let bad = Infinity;
  for (let rate = o.fromRate; rate <= o.maxRate && !stoppedEarly; rate *= 2) {
    const r = await step(rate);
    if (!holds(r, o.p99LimitMs)) {
      bad = rate;
      break;
    }
    good = rate;
    best = r;
  }
  for (let i = 0; i < o.refine && bad !== Infinity && !stoppedEarly; i++) {
    const rate = good === 0 ? bad / 2 : (good + bad) / 2;
    const r = await step(Number(rate.toPrecision(3)));
    if (holds(r, o.p99LimitMs)) {
      good = r.ratePerClient;
      best = r;
    } else bad = r.ratePerClient;
  }
  return { target: session.population.target.name, p99LimitMs: o.p99LimitMs, bestRatePerClient: good, best, steps, stoppedEarly };
}

export const FANOUT_HEADER = ['target', 'clients', 'rate/client', 'in msg/s', 'deliv/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'lost', 'dup', 'errors', 'stale', 'gen lag p99'];

export const fanoutRow = (r: FanoutResult, label = r.target): Cell[] => [
  label,
  `${r.rooms}x${r.members}`,
  r.ratePerClient,
  r.inPerS,
  r.deliveriesPerS,
  r.latencyMs.p50,
  r.latencyMs.p90,
  r.latencyMs.p99,
  r.latencyMs.max,
  r.lost,
  r.duplicated,
  r.errors,
  r.stale,
  r.sendLagMs.p99,
];

/** A row of ratios to the baseline run (throughput: higher is better; latency: lower is better). */
export const ratioRow = (r: FanoutResult, base: FanoutResult): Cell[] => [
  `  ratio to ${base.target}`,
  '',
  '',
  ratio(r.inPerS, base.inPerS),
  ratio(r.deliveriesPerS, base.deliveriesPerS),
  ratio(r.latencyMs.p50, base.latencyMs.p50),
  ratio(r.latencyMs.p90, base.latencyMs.p90),
  ratio(r.latencyMs.p99, base.latencyMs.p99),
  ratio(r.latencyMs.max, base.latencyMs.max),
  '',
  '',
  '',
  '',
  '',
];

export function printFanout(title: string, results: FanoutResult[], baseline?: FanoutResult): void {
  const rows: Cell[][] = [];
  for (const r of results) {
    rows.push(fanoutRow(r));
    if (baseline && r !== baseline && r.ratePerClient === baseline.ratePerClient) rows.push(ratioRow(r, baseline));
  }
  printTable(title, FANOUT_HEADER, rows);
  for (const r of results) {
    if (r.errors > 0) console.log(`  ${r.target}: errors ${JSON.stringify(r.errorCodes)}; e.g. ${r.errorSamples.slice(0, 3).join(' | ')}`);
  }
}
