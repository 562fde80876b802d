import type { HistogramData } from './histogram.ts';
import type { ClientSpec } from './targets.ts';

/** What the orchestrator asks a generator process to do, one step at a time. */
export type WorkerCommand =
  | { op: 'connect'; wsUrl: string; clients: ClientSpec[]; heartbeatMs: number; concurrency: number; timeoutMs: number }
  /** Open loop: every client sends `ratePerS` messages a second from `startAt` (epoch ms) for `durationMs`. */
  | { op: 'run'; startAt: number; ratePerS: number; durationMs: number }
  /** Wait until every client got what its room's senders had accepted (by sender index), or `timeoutMs`. */
  | { op: 'drain'; accepted: number[]; timeoutMs: number }
  | { op: 'stats' }
  | { op: 'close' };

export interface Connected {
  op: 'connected';
  ok: number;
  failed: number;
  samples: string[];
}

export interface Sent {
  op: 'sent';
  /** [sender index, messages sent, of which refused with an error event]. */
  sent: Array<[number, number, number]>;
  /** How late sends left behind their schedule: a generator that cannot keep up shows here. */
  lag: HistogramData;
}

export interface Drained {
  op: 'drained';
  latency: HistogramData;
  /** Distinct load messages received, summed over the process's clients. */
  received: number;
  duplicates: number;
  /** Load messages from a sender outside the receiver's room. */
  misrouted: number;
  /** Load messages of earlier runs that arrived during this one (a backlog draining); not counted. */
  stale: number;
  /** Error events, ERROR frames and dropped connections. */
  errors: number;
  errorCodes: Record<string, number>;
  samples: string[];
  /** When the last new load message arrived (epoch ms), 0 if none did. */
  lastAt: number;
  /** CPU the process spent from `run` to now, µs. */
  cpuUs: number;
}

export interface Stats {
  op: 'stats';
  open: number;
  heartbeatsIn: number;
  errors: number;
  samples: string[];
  /** When a load message last arrived (epoch ms), 0 if none has. */
  lastLoadAt: number;
}

export type WorkerReply = Connected | Sent | Drained | Stats;
