/**
 * A generator process: holds a share of the clients (each process may open at most 20,000 files), sends on
 * an open-loop schedule, and checks every load message it receives for latency, loss, duplicates and routing.
 * Driven by the orchestrator over the IPC channel (worker-protocol.ts).
 */
import { USER_ERRORS } from '../../src/contract/destinations.ts';
import { loadOf, loadText } from '../common/payload.ts';
import type { StompFrame } from '../common/stomp.ts';
import { inBatches } from './batches.ts';
import { Histogram } from './histogram.ts';
import { StompLink } from './stomp-link.ts';
import type { ClientSpec } from './targets.ts';
import type { WorkerCommand, WorkerReply } from './worker-protocol.ts';

const ROOM_SUB = 'r';
const ERRORS_SUB = 'e';
const MAX_SAMPLES = 10;

/** Wall-clock milliseconds with sub-millisecond resolution, comparable between processes on one machine. */
const clock = (): number => performance.timeOrigin + performance.now();

class Client {
  link: StompLink | undefined;
  /** Load messages sent over all runs: the next one's `n` follows on. */
  sentTotal = 0;
  /** This run's counts. */
  sent = 0;
  refused = 0;
  unique = 0;
  expected = 0;
  /** Per sender in the room: which message numbers arrived (index n-1). */
  private readonly seen = new Map<number, Uint8Array>();

  constructor(readonly spec: ClientSpec) {}

  /** True the first time message `n` of `sender` arrives. */
  markSeen(sender: number, n: number): boolean {
    let bits = this.seen.get(sender);
    if (!bits || bits.length < n) {
      const grown = new Uint8Array(Math.max(64, n * 2));
      if (bits) grown.set(bits);
      this.seen.set(sender, (bits = grown));
    }
    if (bits[n - 1]) return false;
    bits[n - 1] = 1;
    this.unique++;
    return true;
  }
}

/** What one run measured in this process; connection errors before the first run count in the first. */
class RunStats {
  readonly latency = new Histogram();
  readonly lag = new Histogram();
  duplicates = 0;
  misrouted = 0;
  /** Load messages of an earlier run, still arriving from a backlog: not counted in this one. */
  stale = 0;
  errors = 0;
  readonly errorCodes: Record<string, number> = {};
  readonly samples: string[] = [];
  /** When the last new load message arrived (clock ms). */
  lastAt = 0;
  cpuAtStart = process.cpuUsage();
}

class Worker {
  private clients: Client[] = [];
  private stats = new RunStats();
  private runs = 0;
  private runStartAt = 0;
  /** When any load message last arrived, this run's or not: the orchestrator waits for quiet between runs. */
  private lastLoadAt = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(private readonly reply: (r: WorkerReply) => void) {}

  async handle(cmd: WorkerCommand): Promise<void> {
    switch (cmd.op) {
      case 'connect':
        return this.connect(cmd);
      case 'run':
        return this.run(cmd.startAt, cmd.ratePerS, cmd.durationMs);
      case 'drain':
        return this.drain(cmd.accepted, cmd.timeoutMs);
      case 'stats':
        return this.reply({
          op: 'stats',
          open: this.clients.filter((c) => c.link?.isOpen).length,
          heartbeatsIn: this.clients.reduce((n, c) => n + (c.link?.heartbeatsIn ?? 0), 0),
          errors: this.stats.errors,
          samples: this.stats.samples,
          lastLoadAt: this.lastLoadAt,
        });
      case 'close':
        clearInterval(this.heartbeatTimer);
        for (const c of this.clients) c.link?.close();
        setTimeout(() => process.exit(0), 200).unref();
        return;
    }
  }

  private async connect(cmd: Extract<WorkerCommand, { op: 'connect' }>): Promise<void> {
    this.clients = cmd.clients.map((spec) => new Client(spec));
    // Heart-beats start with the first connection: connecting thousands takes longer than the server waits.
    if (cmd.heartbeatMs > 0) {
      this.heartbeatTimer = setInterval(() => {
        const now = performance.now();
        for (const c of this.clients) c.link?.heartbeat(now);
      }, Math.min(1000, cmd.heartbeatMs / 4));
    }
    let failed = 0;
    await inBatches(this.clients.length, cmd.concurrency, async (i) => {
      const client = this.clients[i]!;
      try {
        const link = await StompLink.open(cmd.wsUrl, client.spec.connectHeaders, { heartbeatMs: cmd.heartbeatMs, timeoutMs: cmd.timeoutMs });
        client.link = link;
        link.onMessage = (frame) => this.onMessage(client, frame);
        link.onFailure = (reason) => this.error('connection', `client ${client.spec.index}: ${reason}`);
        // Frames are handled in order, so the room's RECEIPT also confirms the errors subscription before it.
        if (client.spec.chat) link.subscribe(ERRORS_SUB, USER_ERRORS);
        await link.confirmed('SUBSCRIBE', { id: ROOM_SUB, destination: client.spec.roomDestination, ack: 'auto' }, '', cmd.timeoutMs);
      } catch (err) {
        failed++;
        client.link?.drop();
        client.link = undefined;
        this.sample(`client ${client.spec.index}: ${(err as Error).message}`);
      }
    });
    this.reply({ op: 'connected', ok: this.clients.length - failed, failed, samples: this.stats.samples });
  }

  /**
   * Open loop: client c's k-th message is due at startAt + phase(c) + k/rate and carries that due time, so a
   * late send (a busy generator) counts against latency instead of hiding it. Phases spread the clients evenly.
   */
  private run(startAt: number, ratePerS: number, durationMs: number): void {
    if (this.runs++ > 0) this.stats = new RunStats();
    this.runStartAt = startAt;
    this.stats.cpuAtStart = process.cpuUsage();
    for (const c of this.clients) c.sent = c.refused = c.unique = 0;
    const period = 1000 / ratePerS;
    const endAt = startAt + durationMs;
    const senders = this.clients
      .filter((c) => c.link)
      .map((client) => ({ client, phase: ((client.spec.index * 0.6180339887) % 1) * period }))
      .sort((a, b) => a.phase - b.phase);
    // Send i is round floor(i / senders) of sender i % senders: due times rise with i.
    let i = 0;
    const tick = (): void => {
      const now = clock();
      for (;;) {
        const round = Math.floor(i / senders.length);
        if (senders.length === 0 || startAt + round * period >= endAt) {
          setTimeout(() => this.reportSent(), 300);
          return;
        }
        const s = senders[i % senders.length]!;
        const due = startAt + s.phase + round * period;
        if (due > now) {
          setTimeout(tick, due - now);
          return;
        }
        if (due < endAt) {
          this.sendLoad(s.client, due);
          this.stats.lag.recordMs(now - due);
        }
        i++;
      }
    };
    setTimeout(tick, Math.max(0, startAt - clock()));
  }

  private sendLoad(client: Client, due: number): void {
    const link = client.link!;
    if (!link.isOpen) return;
    client.sent++;
    const n = ++client.sentTotal;
    const text = loadText({ sentAt: due, sender: client.spec.index, n });
    if (client.spec.chat) {
      link.send(client.spec.sendDestination, `{"text":"${text}"}`, { 'content-type': 'application/json', 'client-request-code': String(n) });
    } else {
      link.send(client.spec.sendDestination, text, { 'content-type': 'text/plain' });
    }
  }

  private reportSent(): void {
    this.reply({ op: 'sent', sent: this.clients.map((c) => [c.spec.index, c.sent, c.refused]), lag: this.stats.lag.toJSON() });
  }

  private onMessage(client: Client, frame: StompFrame): void {
    const sub = frame.headers.subscription;
    if (sub === ERRORS_SUB) {
      const event = JSON.parse(frame.body) as { code: string; message: string; clientRequestCode?: string };
      if (event.clientRequestCode !== undefined) client.refused++;
      this.error(event.code, `client ${client.spec.index}: ${event.code} ${event.message}`);
      return;
    }
    if (sub !== ROOM_SUB) return;
    const stamp = loadOf(frame.body);
    if (!stamp) return; // a room event that is not load (ENTER, PRESENCE, ...)
    const now = clock();
    this.lastLoadAt = now;
    // A millisecond of slack: the stamp carries its time rounded to a microsecond.
    if (stamp.sentAt < this.runStartAt - 1) {
      this.stats.stale++;
      return;
    }
    if (!client.spec.peers.includes(stamp.sender)) {
      this.stats.misrouted++;
      return;
    }
    if (!client.markSeen(stamp.sender, stamp.n)) {
      this.stats.duplicates++;
      return;
    }
    this.stats.latency.recordMs(now - stamp.sentAt);
    this.stats.lastAt = now;
  }

  private async drain(accepted: number[], timeoutMs: number): Promise<void> {
    for (const c of this.clients) c.expected = c.spec.peers.reduce((n, p) => n + (accepted[p] ?? 0), 0);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.clients.some((c) => c.unique < c.expected)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const s = this.stats;
    const cpu = process.cpuUsage(s.cpuAtStart);
    this.reply({
      op: 'drained',
      latency: s.latency.toJSON(),
      received: this.clients.reduce((n, c) => n + c.unique, 0),
      duplicates: s.duplicates,
      misrouted: s.misrouted,
      stale: s.stale,
      errors: s.errors,
      errorCodes: s.errorCodes,
      samples: s.samples,
      lastAt: s.lastAt,
      cpuUs: cpu.user + cpu.system,
    });
  }

  private error(code: string, sample: string): void {
    this.stats.errors++;
    this.stats.errorCodes[code] = (this.stats.errorCodes[code] ?? 0) + 1;
    this.sample(sample);
  }

  private sample(text: string): void {
    if (this.stats.samples.length < MAX_SAMPLES) this.stats.samples.push(text);
  }
}

const worker = new Worker((r) => process.send!(r));
process.on('message', (cmd: WorkerCommand) => {
  worker.handle(cmd).catch((err: unknown) => {
    console.error('worker failed', err);
    process.exit(1);
  });
});
process.on('disconnect', () => process.exit(0));
