import {
  type Broker,
  type BrokerHealth,
  type BrokerMessage,
  BrokerUnavailableError,
  type Delivery,
  type DeliveryHandler,
  type Exchange,
  type QueueConsumer,
  QueueFullError,
} from './broker.ts';
import { topicMatches } from './topic-match.ts';

/** A message waiting in a queue, with where it came from. */
interface Entry {
  message: BrokerMessage;
  exchange: Exchange | 'queue';
  routingKey: string;
  redelivered: boolean;
  /** Order of first enqueue: a requeued message goes back to its place, as in RabbitMQ. */
  position: number;
}

interface Consumer {
  prefetch: number;
  handler: DeliveryHandler;
  /** Handed out and not yet settled, in delivery order. */
  unsettled: Set<InFlight>;
  active: boolean;
}

interface InFlight {
  entry: Entry;
  settled: boolean;
}

/**
 * A queue with competing consumers: round-robin over consumers with spare prefetch,
 * requeued messages go back to where they were in the queue. Handlers always run on a later turn of the
 * event loop, never inside the call that enqueued.
 */
class MemoryQueue {
  /** Sorted by position. */
  private readonly ready: Entry[] = [];
  private readonly consumers: Consumer[] = [];
  private next = 0;
  private scheduled = false;
  private enqueued = 0;

  /** `maxLength` ready messages at most; requeued ones come back regardless, as in RabbitMQ. */
  constructor(private readonly maxLength: number) {}

  /** False, and nothing enqueued, when the queue is full. */
  enqueue(entry: Omit<Entry, 'position'>): boolean {
    if (this.ready.length >= this.maxLength) return false;
    this.ready.push({ ...entry, position: this.enqueued++ });
    this.schedule();
    return true;
  }

  private requeue(entry: Entry): void {
    let i = this.ready.length;
    while (i > 0 && this.ready[i - 1]!.position > entry.position) i--;
    this.ready.splice(i, 0, { ...entry, redelivered: true });
  }

  /** A prefetch of 0 means no limit, as in AMQP. */
  addConsumer(prefetch: number, handler: DeliveryHandler): Consumer {
    const limit = prefetch > 0 ? prefetch : Infinity;
    const consumer: Consumer = { prefetch: limit, handler, unsettled: new Set(), active: true };
    this.consumers.push(consumer);
    this.schedule();
    return consumer;
  }

  /** Stop the consumer and put its unsettled messages back where they were. */
  removeConsumer(consumer: Consumer): void {
    if (!consumer.active) return;
    consumer.active = false;
    this.consumers.splice(this.consumers.indexOf(consumer), 1);
    const returned = [...consumer.unsettled];
    consumer.unsettled.clear();
    for (const flight of returned) {
      flight.settled = true;
      this.requeue(flight.entry);
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    while (this.ready.length > 0) {
      const consumer = this.pickConsumer();
      if (!consumer) return;
      this.handOut(consumer, this.ready.shift()!);
    }
  }

  /** The next consumer, round-robin, that may take one more message. */
  private pickConsumer(): Consumer | undefined {
    const n = this.consumers.length;
    for (let i = 0; i < n; i++) {
      const index = (this.next + i) % n;
      const consumer = this.consumers[index]!;
      if (consumer.unsettled.size < consumer.prefetch) {
        this.next = (index + 1) % n;
        return consumer;
      }
    }
    return undefined;
  }

  private handOut(consumer: Consumer, entry: Entry): void {
    const flight: InFlight = { entry, settled: false };
    consumer.unsettled.add(flight);
    const settle = (requeue: boolean): void => {
      if (flight.settled) return;
      flight.settled = true;
      consumer.unsettled.delete(flight);
      if (requeue) this.requeue(entry);
      this.schedule();
    };
    const delivery: Delivery = {
      message: entry.message,
      exchange: entry.exchange,
      routingKey: entry.routingKey,
      redelivered: entry.redelivered,
      ack: () => settle(false),
      nack: (requeue = true) => settle(requeue),
    };
    consumer.handler(delivery);
  }
}

export interface MemoryBrokerOptions {
  /** Most ready messages a named queue holds (see broker.ts). */
  queueMaxLength: number;
}

/** The embedded broker: everything in this process, nothing survives it. Always healthy. */
export class MemoryBroker implements Broker {
  /** This gateway's own topic queue; bound patterns route into it, one copy per publish. Its consumer takes everything at once. */
  private readonly topicQueue = new MemoryQueue(Infinity);
  private readonly bindings: Record<Exchange, Set<string>> = { chat: new Set(), relay: new Set() };
  private readonly queues = new Map<string, MemoryQueue>();
  private readonly consumers = new Set<{ queue: MemoryQueue; consumer: Consumer }>();
  private started = false;
  private closed = false;

  constructor(private readonly options: MemoryBrokerOptions) {}

  async start(onTopicDelivery: DeliveryHandler): Promise<void> {
    this.assertOpen();
    if (this.started) throw new Error('broker already started');
    this.started = true;
    this.consumers.add({ queue: this.topicQueue, consumer: this.topicQueue.addConsumer(Infinity, onTopicDelivery) });
  }

  async publish(exchange: Exchange, routingKey: string, message: BrokerMessage): Promise<void> {
    this.assertOpen();
    for (const pattern of this.bindings[exchange]) {
      if (topicMatches(pattern, routingKey)) {
        this.topicQueue.enqueue({ message, exchange, routingKey, redelivered: false });
        return;
      }
    }
  }

  async bind(exchange: Exchange, pattern: string): Promise<void> {
    this.assertOpen();
    this.bindings[exchange].add(pattern);
  }

  async unbind(exchange: Exchange, pattern: string): Promise<void> {
    this.bindings[exchange].delete(pattern);
  }

  async sendToQueue(queue: string, message: BrokerMessage): Promise<void> {
    this.assertOpen();
    if (!this.queue(queue).enqueue({ message, exchange: 'queue', routingKey: queue, redelivered: false })) {
      throw new QueueFullError(queue);
    }
  }

  async consume(queue: string, prefetch: number, handler: DeliveryHandler): Promise<QueueConsumer> {
    this.assertOpen();
    const q = this.queue(queue);
    const entry = { queue: q, consumer: q.addConsumer(prefetch, handler) };
    this.consumers.add(entry);
    return {
      cancel: async () => {
        this.consumers.delete(entry);
        q.removeConsumer(entry.consumer);
      },
    };
  }

  health(): BrokerHealth {
    return 'up';
  }

  onHealth(_listener: (health: BrokerHealth) => void): () => void {
    return () => {};
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const { queue, consumer } of this.consumers) queue.removeConsumer(consumer);
    this.consumers.clear();
  }

  private queue(name: string): MemoryQueue {
    let q = this.queues.get(name);
    if (!q) {
      q = new MemoryQueue(this.options.queueMaxLength);
      this.queues.set(name, q);
    }
    return q;
  }

  private assertOpen(): void {
    if (this.closed) throw new BrokerUnavailableError('broker is closed');
  }
}
