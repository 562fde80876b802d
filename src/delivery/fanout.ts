import type { Broker, BrokerMessage, Delivery, Exchange } from '../broker/broker.ts';
import { originOf } from '../broker/messages.ts';
import { topicMatches } from '../broker/topic-match.ts';
import type { Logger } from '../logger.ts';
import { isCopyOf } from './copy.ts';
import type { OutboundCopy, OutboundInterceptor } from './interceptor.ts';

/** A local subscriber of broker topic traffic: a session's room feed, relay topic or notification queue. */
export interface FanoutTarget {
  /** The copies to write now, in order (a room feed may hold one back, or release several). */
  offer(message: BrokerMessage): OutboundCopy[];
  /** Writing failed (the history was unreachable); the delivery goes back to the broker and will come again. */
  failed?(): void;
}

/**
 * Routes the gateway's topic deliveries to local subscribers. Binds a routing key on the broker when its first
 * local subscriber arrives and unbinds after the last leaves; acks a delivery only once every local copy is
 * settled by the outbound interceptor, and returns it to the broker when that fails.
 */
export class Fanout {
  /** Copies of deliveries RabbitMQ handed out again (a lost ack, a dropped channel) that the interceptor dropped. */
  readonly stats = { redeliveredDropped: 0 };
  private readonly targets = new Map<string, Set<FanoutTarget>>();
  /** Relay patterns may hold wildcards and need matching; chat keys are looked up exactly. */
  private readonly relayPatterns = new Set<string>();
  private readonly pendingBinds = new Map<string, Promise<void>>();

  constructor(
    private readonly broker: Broker,
    private readonly interceptor: OutboundInterceptor,
    private readonly log: Logger,
  ) {}

  async add(exchange: Exchange, pattern: string, target: FanoutTarget): Promise<void> {
    const key = `${exchange}|${pattern}`;
    let set = this.targets.get(key);
    if (!set) {
      set = new Set();
      this.targets.set(key, set);
      if (exchange === 'relay') this.relayPatterns.add(pattern);
      const bound = this.broker.bind(exchange, pattern).finally(() => this.pendingBinds.delete(key));
      this.pendingBinds.set(key, bound);
    }
    set.add(target);
    // Every subscriber waits for the binding, not only the first, so none of them misses traffic routed before it.
    try {
      await this.pendingBinds.get(key);
    } catch (err) {
      await this.remove(exchange, pattern, target);
      throw err;
    }
  }

  async remove(exchange: Exchange, pattern: string, target: FanoutTarget): Promise<void> {
    const key = `${exchange}|${pattern}`;
    const set = this.targets.get(key);
    if (!set?.delete(target) || set.size > 0) return;
    this.targets.delete(key);
    if (exchange === 'relay') this.relayPatterns.delete(pattern);
    await this.broker.unbind(exchange, pattern).catch((err: unknown) => {
      // The engine forgets the binding either way; a stale one only routes traffic nobody here wants.
      this.log.warn({ err, pattern }, 'unbind failed');
    });
  }

  readonly onDelivery = (delivery: Delivery): void => {
    const targets = this.match(delivery);
    const copies = this.countDrops(delivery, targets.flatMap((t) => t.offer(delivery.message)));
    if (copies.length === 0) return delivery.ack();
    this.interceptor.deliver(copies).then(
      () => delivery.ack(),
      (err: unknown) => {
        this.log.warn({ err, routingKey: delivery.routingKey }, 'delivery failed; returning it to the broker');
        for (const t of targets) t.failed?.();
        delivery.nack(true);
      },
    );
  };

  /** Of a redelivery's copies, only those of its own message: a room feed may release earlier ones it held along with it. */
  private countDrops(delivery: Delivery, copies: OutboundCopy[]): OutboundCopy[] {
    const origin = delivery.redelivered ? originOf(delivery.message) : null;
    if (!origin) return copies;
    const dropped = () => void this.stats.redeliveredDropped++;
    return copies.map((c) => (isCopyOf(c.key, origin) ? { ...c, onDropped: dropped } : c));
  }

  private match(delivery: Delivery): FanoutTarget[] {
    if (delivery.exchange === 'chat') return [...(this.targets.get(`chat|${delivery.routingKey}`) ?? [])];
    if (delivery.exchange !== 'relay') return [];
    const out: FanoutTarget[] = [];
    for (const pattern of this.relayPatterns) {
      if (topicMatches(pattern, delivery.routingKey)) out.push(...this.targets.get(`relay|${pattern}`)!);
    }
    return out;
  }
}

/** A target that writes every message straight through the interceptor to one session's subscription. */
export function directTarget(write: (message: BrokerMessage) => OutboundCopy | null): FanoutTarget {
  return {
    offer(message) {
      const copy = write(message);
      return copy ? [copy] : [];
    },
  };
}
