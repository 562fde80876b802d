import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/**
 * Every limit the gateway enforces, by the name it is counted under in `chat_limit_refusals_total{limit}`.
 * README's limits table names each one with its setting.
 */
export type LimitName =
  | 'frame_bytes'
  | 'ws_message_bytes'
  | 'headers'
  | 'header_bytes'
  | 'subscriptions'
  | 'pending_bytes'
  | 'queued_frames'
  | 'rate'
  | 'transactions'
  | 'transaction_frames'
  | 'transaction_bytes'
  | 'connections'
  | 'connections_per_user'
  | 'connect_timeout'
  | 'heartbeat'
  | 'topic_pattern'
  | 'amqp_name'
  | 'prefetch'
  | 'queue_length'
  | 'login_rate'
  | 'signup_rate'
  | 'upload_bytes'
  | 'upload_rate'
  | 'upload_quota';

/**
 * The gateway's Prometheus metrics, one registry per gateway (tests run several gateways in one process).
 * Engines count into the counters here; gauges that mirror state read it when scraped.
 */
export class Metrics {
  readonly registry = new Registry();
  /** A request refused by a limit, before any work was done for it. */
  readonly refusals = new Counter({
    name: 'chat_limit_refusals_total',
    help: 'Requests refused by a limit, by limit.',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  /** Sessions the server ended, by reason (protocol error, limit, heart-beat, takeover, shutdown...). */
  readonly sessionsEnded = new Counter({
    name: 'chat_sessions_ended_total',
    help: 'Sessions ended by the server, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor(gatewayId: string) {
    this.registry.setDefaultLabels({ gateway: gatewayId });
    collectDefaultMetrics({ register: this.registry });
  }

  refused(limit: LimitName): void {
    this.refusals.inc({ limit });
  }

  /** A gauge whose value is read from `read` at every scrape. */
  gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** A counter whose total is read from `read` at every scrape (engines keep their own plain counts). */
  counter(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
