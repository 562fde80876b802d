import { ChatError } from '../contract/errors.ts';

/**
 * The Broker carries messages between gateways. Two engines implement it side by side:
 * `memory-broker.ts` (one process, the embedded default) and `amqp-broker.ts` (RabbitMQ).
 *
 * Two exchanges exist, so that plain STOMP clients can never bind into chat traffic:
 * - `chat`:  room and user events, routing keys `rooms.{roomId}`, `users.{userId}`;
 * - `relay`: plain `/topic/{name}` destinations (RabbitMQ's `amq.topic`).
 * Topic routing keys follow AMQP topic rules: `*` one word, `#` zero or more words (`topic-match.ts`).
 * Engines trust their callers with names: topic patterns and keys bounded in words and `#` words, AMQP names of at
 * most 255 bytes, no `amq.` queues, prefetch 1..65535 (the app edge checks what clients send, see
 * `contract/destinations.ts`).
 *
 * Named queues are bounded: each holds at most `queueMaxLength` ready messages (deliveries handed out and not yet
 * settled do not count, as with RabbitMQ's `x-max-length`). A send to a full queue is refused with QueueFullError
 * and nothing is enqueued (RabbitMQ's `x-overflow: reject-publish`), so the sender learns of it. A message a
 * consumer gives back (nack, cancel, lost channel) always returns to its queue, even past the bound. A queue that
 * already exists in RabbitMQ with other arguments is used as it is, with its own bound or none.
 */

export type Exchange = 'chat' | 'relay';

export interface BrokerMessage {
  /** STOMP headers to carry to subscribers (event-type, sender-session, sender-seq, content-type, user headers...). */
  headers: Record<string, string>;
  body: Buffer;
}

export interface Delivery {
  message: BrokerMessage;
  exchange: Exchange | 'queue';
  /** Routing key for topic deliveries; the queue name for queue deliveries. */
  routingKey: string;
  /** True when the broker has handed this message out before (after a NACK, a lost channel, a cancelled consumer). */
  redelivered: boolean;
  /** Settle once every local receiver is settled. Calling ack or nack twice is a no-op. */
  ack(): void;
  nack(requeue?: boolean): void;
}

export type DeliveryHandler = (delivery: Delivery) => void;

/** One competing consumer on a named queue (a `/queue/{name}` subscription). */
export interface QueueConsumer {
  /** Stop consuming; unsettled deliveries go back to the queue, flagged redelivered. */
  cancel(): Promise<void>;
}

export type BrokerHealth = 'up' | 'down';

export interface Broker {
  /** Connect and start consuming this gateway's own topic queue into `onTopicDelivery`. */
  start(onTopicDelivery: DeliveryHandler): Promise<void>;

  /** Publish to a topic exchange; resolves once the broker confirmed it, rejects with BrokerUnavailableError otherwise. */
  publish(exchange: Exchange, routingKey: string, message: BrokerMessage): Promise<void>;

  /**
   * Route `pattern` on `exchange` to this gateway's topic queue. The caller counts local
   * subscribers and binds on the first and unbinds after the last; the engine remembers
   * bindings and restores them after a reconnect (a bind while the link is down resolves and
   * takes effect once it is back).
   */
  bind(exchange: Exchange, pattern: string): Promise<void>;
  unbind(exchange: Exchange, pattern: string): Promise<void>;

  /** Send to a named queue (declared durable, bounded, on first use); resolves once confirmed, rejects with QueueFullError when full. */
  sendToQueue(queue: string, message: BrokerMessage): Promise<void>;

  /** Consume a named queue, competing with other consumers, at most `prefetch` unsettled at a time. */
  consume(queue: string, prefetch: number, handler: DeliveryHandler): Promise<QueueConsumer>;

  health(): BrokerHealth;
  /** Called on every change of health; returns an unsubscribe function. */
  onHealth(listener: (health: BrokerHealth) => void): () => void;

  /** Stop consuming, let nothing new in, close connections. Unsettled deliveries are returned to the broker. */
  close(): Promise<void>;
}

/** A ChatError, so that whatever a client asked for that needed the broker fails with BROKER_UNAVAILABLE, never INTERNAL. */
export class BrokerUnavailableError extends ChatError {
  constructor(message = 'message broker is unavailable') {
    super('BROKER_UNAVAILABLE', message);
    this.name = 'BrokerUnavailableError';
  }
}

/** The named queue holds its most messages: this one was not enqueued. */
export class QueueFullError extends Error {
  constructor(readonly queue: string) {
    super(`queue ${queue} is full`);
    this.name = 'QueueFullError';
  }
}
