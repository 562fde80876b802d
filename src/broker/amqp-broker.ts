import type { EventEmitter } from 'node:events';
import { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, connect, IllegalOperationError, type Options } from 'amqplib';
import type { Logger } from '../logger.ts';
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
import { settleQuietly, toDelivery, toPublishOptions } from './amqp-messages.ts';
import { closeConnection, closeQuietly, isPreconditionFailed, RpcTimeoutError, within } from './amqp-rpc.ts';

export interface AmqpBrokerOptions {
  /** amqp:// URL; a `heartbeat` query parameter is added when absent, so a silent peer is noticed. */
  url: string;
  /** Names this gateway's topic queue, `gateway.<gatewayId>`. */
  gatewayId: string;
  /** Unsettled deliveries from the gateway's topic queue at a time. */
  prefetch: number;
  /** How long the gateway's topic queue outlives the gateway (`x-expires`). */
  queueExpiresMs: number;
  log: Logger;
  /** Longest wait for a publisher confirm; close() waits at most this long for confirms in flight. */
  confirmTimeoutMs?: number;
  /** Named queues are declared with `x-max-length` this, `x-overflow: reject-publish` (see broker.ts). */
  queueMaxLength: number;
  /** Longest wait for the answer to a channel operation; past it the link is replaced. */
  rpcTimeoutMs: number;
}

const EXCHANGE_NAMES: Record<Exchange, string> = { chat: 'chat.events', relay: 'amq.topic' };
const EXCHANGE_OF_NAME = new Map<string, Exchange>([
  ['chat.events', 'chat'],
  ['amq.topic', 'relay'],
]);
/** Named queues as RabbitMQ Web-STOMP declares `/queue/x`, so both see the same queue (the length bound is added per broker). */
const NAMED_QUEUE: Options.AssertQueue = { durable: true, exclusive: false, autoDelete: false };
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const CONNECT_TIMEOUT_MS = 5_000;
const HEARTBEAT_S = 10;
const DEFAULT_CONFIRM_TIMEOUT_MS = 10_000;
/** Queue consumers share channels (RabbitMQ allows 2047 per connection by default); this many per channel. */
const CONSUMERS_PER_CHANNEL = 64;

/** A channel hosting queue consumers; `consumers` counts reservations too, so concurrent consume() calls share it. */
interface Slot {
  channel: Promise<Channel>;
  consumers: number;
}

/** One connection and its channels. Replaced wholesale on reconnect; never revived. */
class Link {
  alive = true;
  confirm!: ConfirmChannel;
  /** Consumes the gateway's topic queue. */
  topic!: Channel;
  topicTag = '';
  /** The gateway queue's declarations and bindings: a failing one closes only this channel, which is reopened on demand. */
  admin: Promise<Channel> | null = null;
  readonly slots: Slot[] = [];
  /** Named queues declared on this connection, so each is declared once per connection. */
  readonly declared = new Map<string, Promise<unknown>>();
  constructor(
    readonly conn: ChannelModel,
    readonly onTopic: DeliveryHandler,
  ) {}
}

/** Where a queue consumer currently consumes, and what it holds there. */
interface Attachment {
  link: Link;
  slot: Slot;
  channel: Channel;
  tag: string;
  unsettled: Set<ConsumeMessage>;
}

interface ConsumerState {
  queue: string;
  prefetch: number;
  handler: DeliveryHandler;
  attachment: Attachment | null;
  cancelled: boolean;
}

/**
 * The RabbitMQ engine. One connection with a confirm channel for publishes, a channel consuming
 * the gateway's topic queue, an admin channel, and channels shared by queue consumers.
 * On a lost connection or channel it reports 'down', reconnects with capped exponential backoff,
 * re-declares bindings and consumers, then reports 'up'. Publishes never wait for a link: they
 * fail with BrokerUnavailableError while it is down.
 */
export class AmqpBroker implements Broker {
  private readonly url: string;
  private readonly gatewayQueue: string;
  private readonly prefetch: number;
  private readonly queueExpiresMs: number;
  private readonly confirmTimeoutMs: number;
  private readonly rpcTimeoutMs: number;
  private readonly namedQueue: Options.AssertQueue;
  private readonly log: Logger;

  /** Set only while fully established. */
  private link: Link | null = null;
  private state: BrokerHealth = 'down';
  private readonly healthListeners = new Set<(health: BrokerHealth) => void>();
  private onTopic: DeliveryHandler | null = null;
  /** Patterns wanted on the gateway queue, restored after every reconnect. */
  private readonly bindings: Record<Exchange, Set<string>> = { chat: new Set(), relay: new Set() };
  /** Bound while the link was down, possibly after a restore had already walked `bindings`. */
  private readonly unrestored: Record<Exchange, Set<string>> = { chat: new Set(), relay: new Set() };
  /** Patterns that may still be bound server-side (the queue outlives connections) but are no longer wanted. */
  private readonly staleBindings: Record<Exchange, Set<string>> = { chat: new Set(), relay: new Set() };
  private readonly consumers = new Set<ConsumerState>();
  private readonly confirmsInFlight = new Set<Promise<void>>();
  private reconnecting: Promise<void> | null = null;
  private wakeReconnect: (() => void) | null = null;
  private closing = false;

  constructor(options: AmqpBrokerOptions) {
    const url = new URL(options.url);
    if (!url.searchParams.has('heartbeat')) url.searchParams.set('heartbeat', String(HEARTBEAT_S));
    this.url = url.toString();
    this.gatewayQueue = `gateway.${options.gatewayId}`;
    this.prefetch = options.prefetch;
    this.queueExpiresMs = options.queueExpiresMs;
    this.confirmTimeoutMs = options.confirmTimeoutMs ?? DEFAULT_CONFIRM_TIMEOUT_MS;
    this.rpcTimeoutMs = options.rpcTimeoutMs;
    this.namedQueue = { ...NAMED_QUEUE, maxLength: options.queueMaxLength, arguments: { 'x-overflow': 'reject-publish' } };
    this.log = options.log;
  }

  /** Connects once; rejects with BrokerUnavailableError if that fails (no background retry before a first success). */
  async start(onTopicDelivery: DeliveryHandler): Promise<void> {
    if (this.closing) throw new BrokerUnavailableError('broker is closed');
    if (this.onTopic) throw new Error('broker already started');
    this.onTopic = onTopicDelivery;
    try {
      await this.establish(onTopicDelivery, true);
    } catch (err) {
      this.onTopic = null;
      throw new BrokerUnavailableError(`cannot connect to RabbitMQ: ${describe(err)}`);
    }
  }

  async publish(exchange: Exchange, routingKey: string, message: BrokerMessage): Promise<void> {
    const link = this.usableLink();
    const options = toPublishOptions(message.headers);
    return this.confirmed(
      link,
      (done) => link.confirm.publish(EXCHANGE_NAMES[exchange], routingKey, message.body, options, done),
      () => new BrokerUnavailableError('publish refused by the broker'),
    );
  }

  async sendToQueue(queue: string, message: BrokerMessage): Promise<void> {
    const link = this.usableLink();
    await this.declareQueue(link, queue);
    const options = toPublishOptions(message.headers);
    // With reject-publish, a full queue is what makes RabbitMQ nack a send.
    return this.confirmed(
      link,
      (done) => link.confirm.sendToQueue(queue, message.body, options, done),
      () => new QueueFullError(queue),
    );
  }

  /**
   * While the link is down the binding is only remembered, and declared with the others when the link is
   * restored: a subscriber does not have to retry, and what it missed meanwhile it reads from the store.
   */
  async bind(exchange: Exchange, pattern: string): Promise<void> {
    if (this.closing) throw new BrokerUnavailableError('broker is closed');
    // No longer stale from now on, so a flush of stale bindings cannot undo this bind.
    this.staleBindings[exchange].delete(pattern);
    const link = this.link;
    if (!link) {
      this.bindings[exchange].add(pattern);
      this.unrestored[exchange].add(pattern);
      return;
    }
    try {
      await this.withAdmin(link, `binding ${pattern}`, (ch) => ch.bindQueue(this.gatewayQueue, EXCHANGE_NAMES[exchange], pattern));
    } catch (err) {
      // The binding may have reached the broker before the failure; remove it later.
      this.staleBindings[exchange].add(pattern);
      throw err;
    }
    this.bindings[exchange].add(pattern);
  }

  /**
   * Never fails. The gateway queue and its bindings outlive a lost connection, so a binding that cannot
   * be removed now (link down, broker refused) is remembered and removed once the link is up again.
   */
  async unbind(exchange: Exchange, pattern: string): Promise<void> {
    this.bindings[exchange].delete(pattern);
    const link = this.link;
    if (link && !this.closing) await this.unbindNow(link, exchange, pattern);
    else this.staleBindings[exchange].add(pattern);
  }

  async consume(queue: string, prefetch: number, handler: DeliveryHandler): Promise<QueueConsumer> {
    const link = this.usableLink();
    const consumer: ConsumerState = { queue, prefetch, handler, attachment: null, cancelled: false };
    try {
      await this.attach(link, consumer);
    } catch (err) {
      throw new BrokerUnavailableError(`cannot consume ${queue}: ${describe(err)}`);
    }
    // Registered even if the link died just now: the restore after reconnect picks it up.
    this.consumers.add(consumer);
    return { cancel: () => this.cancel(consumer) };
  }

  health(): BrokerHealth {
    return this.state;
  }

  onHealth(listener: (health: BrokerHealth) => void): () => void {
    this.healthListeners.add(listener);
    return () => this.healthListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.wakeReconnect?.();
    await this.reconnecting;
    const link = this.link;
    this.link = null;
    if (link) {
      // Stop deliveries first; what is unsettled goes back to the queues when the connection closes.
      const cancels: Promise<unknown>[] = [within(link.topic.cancel(link.topicTag), this.rpcTimeoutMs, 'cancel')];
      for (const consumer of this.consumers) {
        const att = consumer.attachment;
        if (att) cancels.push(within(att.channel.cancel(att.tag), this.rpcTimeoutMs, 'cancel'));
      }
      await Promise.allSettled(cancels);
      // Each confirm wait is bounded by confirmTimeoutMs.
      await Promise.allSettled([...this.confirmsInFlight]);
      link.alive = false;
      await closeConnection(link.conn, this.rpcTimeoutMs).catch((err: unknown) => this.log.debug({ err }, 'closing the AMQP connection'));
    }
    this.setHealth('down');
  }

  // --- connection lifecycle ---

  /**
   * Connect, declare, restore bindings and consumers; only then is the link used and health 'up'.
   * On the first start the gateway queue left by an earlier process with this id is dropped, with its
   * bindings (unknown to this process) and its arguments (x-expires may have changed).
   */
  private async establish(onTopic: DeliveryHandler, firstStart: boolean): Promise<void> {
    const conn = await connect(this.url, {
      timeout: CONNECT_TIMEOUT_MS,
      // A publish is several frames; without this, Nagle holds each confirm round trip for ~40 ms.
      noDelay: true,
      clientProperties: { connection_name: this.gatewayQueue },
    });
    const link = new Link(conn, onTopic);
    this.watch(link, conn, 'connection', () => this.lose(link, 'connection closed'));
    conn.on('blocked', (reason: string) => this.log.warn({ reason }, 'RabbitMQ blocked publishing'));
    conn.on('unblocked', () => this.log.info('RabbitMQ unblocked publishing'));
    try {
      link.confirm = await within(conn.createConfirmChannel(), this.rpcTimeoutMs, 'opening the confirm channel');
      this.watch(link, link.confirm, 'confirm channel', () => this.lose(link, 'confirm channel closed'));
      link.topic = await within(conn.createChannel(), this.rpcTimeoutMs, 'opening the topic channel');
      this.watch(link, link.topic, 'topic channel', () => this.lose(link, 'topic channel closed'));

      await this.withAdmin(link, 'declaring the chat exchange', (ch) => ch.assertExchange(EXCHANGE_NAMES.chat, 'topic', { durable: true }));
      if (firstStart) await this.withAdmin(link, 'deleting the old gateway queue', (ch) => ch.deleteQueue(this.gatewayQueue));
      await this.withAdmin(link, 'declaring the gateway queue', (ch) =>
        ch.assertQueue(this.gatewayQueue, {
          durable: true,
          exclusive: false,
          autoDelete: false,
          expires: this.queueExpiresMs,
        }),
      );
      for (const exchange of ['chat', 'relay'] as const) {
        for (const pattern of this.bindings[exchange]) {
          this.unrestored[exchange].delete(pattern);
          await this.withAdmin(link, `binding ${pattern}`, (ch) => ch.bindQueue(this.gatewayQueue, EXCHANGE_NAMES[exchange], pattern));
        }
      }
      await this.removeStaleBindings(link);
      const { consumerTag } = await this.rpc(
        link,
        'consuming the gateway queue',
        () => Promise.all([link.topic.prefetch(this.prefetch), link.topic.consume(this.gatewayQueue, (msg) => this.onTopicMessage(link, msg))]).then(([, ok]) => ok),
        () => this.lose(link, 'the topic channel failed'),
      );
      link.topicTag = consumerTag;
      await Promise.all([...this.consumers].map((consumer) => this.reattach(link, consumer)));
      // Binds that arrived while the restore was running; none can slip in between this and 'up' below.
      while (this.hasUnrestored()) await this.bindUnrestored(link);

      if (!link.alive) throw new Error('connection lost while restoring');
      if (this.closing) throw new Error('broker closed while connecting');
    } catch (err) {
      link.alive = false;
      closeConnection(conn, this.rpcTimeoutMs).catch(() => {});
      throw err;
    }
    this.link = link;
    this.setHealth('up');
    this.log.info({ queue: this.gatewayQueue, consumers: this.consumers.size }, 'broker link up');
    // Bindings dropped by unbind() while the restore above was running.
    void this.removeStaleBindings(link);
  }

  private hasUnrestored(): boolean {
    return this.unrestored.chat.size > 0 || this.unrestored.relay.size > 0;
  }

  /** Declare the bindings bind() only remembered while the link was down. A failure fails the restore: the link is retried. */
  private async bindUnrestored(link: Link): Promise<void> {
    for (const exchange of ['chat', 'relay'] as const) {
      const pending = this.unrestored[exchange];
      for (let pattern = first(pending); pattern !== undefined && link.alive; pattern = first(pending)) {
        if (this.bindings[exchange].has(pattern)) {
          await this.withAdmin(link, `binding ${pattern}`, (ch) => ch.bindQueue(this.gatewayQueue, EXCHANGE_NAMES[exchange], pattern));
        }
        pending.delete(pattern);
      }
    }
  }

  /** Unbind what was unbound while the link was down (or failed to unbind); what still fails waits for the next link. */
  private async removeStaleBindings(link: Link): Promise<void> {
    for (const exchange of ['chat', 'relay'] as const) {
      const stale = this.staleBindings[exchange];
      for (let pattern = first(stale); pattern !== undefined && link.alive; pattern = first(stale)) {
        stale.delete(pattern);
        if (!(await this.unbindNow(link, exchange, pattern))) return;
      }
    }
  }

  private async unbindNow(link: Link, exchange: Exchange, pattern: string): Promise<boolean> {
    try {
      await this.withAdmin(link, `unbinding ${pattern}`, (ch) => ch.unbindQueue(this.gatewayQueue, EXCHANGE_NAMES[exchange], pattern));
      return true;
    } catch (err) {
      if (!this.bindings[exchange].has(pattern)) this.staleBindings[exchange].add(pattern);
      this.log.warn({ err: describe(err), exchange, pattern }, 'unbind failed; retried after reconnect');
      return false;
    }
  }

  /** Watch a connection or channel; `onLost` runs when it closes while its link is in use. */
  private watch(link: Link, emitter: EventEmitter, what: string, onLost: () => void): void {
    emitter.on('error', (err: Error) => this.log.warn({ err }, `AMQP ${what} error`));
    emitter.on('close', () => {
      // A dying connection closes its channels just before it reports its own close; deciding on the
      // next microtask lets the connection's close win, so channel handlers do not act on a dead link.
      queueMicrotask(() => {
        if (link.alive) onLost();
      });
    });
  }

  private lose(link: Link, reason: unknown): void {
    if (!link.alive) return;
    link.alive = false;
    // Closing returns everything unsettled on the old channels to the queues, flagged redelivered.
    // Bounded: from a silent peer amqplib would wait for close-ok forever, its heart-beat timers running.
    closeConnection(link.conn, this.rpcTimeoutMs).catch(() => {});
    // A link still being established is not in use: establish() notices and fails on its own.
    if (this.link !== link) return;
    this.link = null;
    this.log.warn({ reason: describe(reason) }, 'broker link lost');
    this.setHealth('down');
    if (!this.closing) this.reconnect();
  }

  private reconnect(): void {
    const onTopic = this.onTopic;
    if (this.reconnecting || !onTopic) return;
    this.reconnecting = (async () => {
      let delay = BACKOFF_MIN_MS;
      while (!this.closing) {
        await this.sleep(delay);
        if (this.closing) return;
        try {
          await this.establish(onTopic, false);
          if (this.link) return;
        } catch (err) {
          this.log.warn({ err: describe(err), retryInMs: delay }, 'broker reconnect failed');
          delay = Math.min(delay * 2, BACKOFF_MAX_MS);
        }
      }
    })().finally(() => {
      this.reconnecting = null;
    });
  }

  /** A backoff pause that close() cuts short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeReconnect = done;
    });
  }

  private setHealth(health: BrokerHealth): void {
    if (this.state === health) return;
    this.state = health;
    for (const listener of this.healthListeners) {
      try {
        listener(health);
      } catch (err) {
        this.log.error({ err }, 'broker health listener threw');
      }
    }
  }

  private usableLink(): Link {
    if (this.closing) throw new BrokerUnavailableError('broker is closed');
    if (!this.link) throw new BrokerUnavailableError('message broker is unavailable (reconnecting)');
    return this.link;
  }

  // --- publishing ---

  /** Send one message and wait, bounded, for the broker's confirm; a nack rejects with `nacked()`. */
  private confirmed(link: Link, send: (done: (err: unknown) => void) => void, nacked: () => Error): Promise<void> {
    const confirm = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new BrokerUnavailableError(`no publisher confirm within ${this.confirmTimeoutMs} ms`)),
        this.confirmTimeoutMs,
      );
      try {
        send((err) => {
          clearTimeout(timer);
          // amqplib's only way of telling a nack from a closed channel.
          if (err instanceof Error && err.message === 'message nacked') reject(nacked());
          else if (err) reject(new BrokerUnavailableError(`publish not confirmed: ${describe(err)}`));
          else resolve();
        });
      } catch (err) {
        clearTimeout(timer);
        if (!(err instanceof IllegalOperationError)) {
          // amqplib took a confirm slot before it failed to encode the message (a name over 255 bytes): every later
          // confirm on this channel would settle the wrong send. Only a new channel is right again.
          this.lose(link, `a publish could not be encoded: ${describe(err)}`);
        }
        reject(new BrokerUnavailableError(`publish failed: ${describe(err)}`));
      }
    });
    this.confirmsInFlight.add(confirm);
    const forget = (): void => {
      this.confirmsInFlight.delete(confirm);
    };
    confirm.then(forget, forget);
    return confirm;
  }

  private declareQueue(link: Link, queue: string): Promise<unknown> {
    let declared = link.declared.get(queue);
    if (!declared) {
      declared = this.onOwnChannel(link, `declaring ${queue}`, (ch) => ch.assertQueue(queue, this.namedQueue)).catch((err: unknown) => {
        if (!isPreconditionFailed(err)) throw err;
        // Declared before with other arguments (an older gateway, RabbitMQ Web-STOMP, an operator): use it as it is.
        return this.onOwnChannel(link, `checking ${queue}`, (ch) => ch.checkQueue(queue));
      });
      link.declared.set(queue, declared);
      const attempt = declared;
      attempt.catch(() => {
        if (link.declared.get(queue) === attempt) link.declared.delete(queue);
      });
    }
    return declared;
  }

  /**
   * Run one declaration of a client-named queue on a channel of its own, closed after. Such a queue may exist with
   * other arguments, and RabbitMQ answers that by closing the channel: on the shared admin channel that would fail
   * every other declaration in flight, other clients' included.
   */
  private async onOwnChannel<T>(link: Link, what: string, rpc: (channel: Channel) => Promise<T>): Promise<T> {
    const channel = await this.rpc(link, what, () => link.conn.createChannel(), () => {});
    // RabbitMQ's refusal closes the channel with an error event; the RPC below reports it to the caller.
    channel.on('error', (err: Error) => this.log.debug({ err }, 'AMQP declaration channel error'));
    try {
      return await this.rpc(link, what, () => rpc(channel), () => {});
    } finally {
      closeQuietly(channel);
    }
  }

  /**
   * Run one declaration (one RPC) on the admin channel, reopening it if an earlier one closed it. A failed
   * declaration discards the channel: RabbitMQ closes it on a refusal, and amqplib keeps waiting forever on one
   * it could not encode.
   */
  private async withAdmin<T>(link: Link, what: string, rpc: (admin: Channel) => Promise<T>): Promise<T> {
    if (!link.admin) {
      const opening = within(link.conn.createChannel(), this.rpcTimeoutMs, 'opening the admin channel').then((ch) => {
        ch.on('error', (err: Error) => this.log.warn({ err }, 'AMQP admin channel error'));
        ch.on('close', () => {
          if (link.admin === opening) link.admin = null;
        });
        return ch;
      });
      link.admin = opening;
      opening.catch(() => {
        if (link.admin === opening) link.admin = null;
      });
    }
    const opening = link.admin;
    const admin = await this.rpc(link, what, () => opening, () => {});
    return this.rpc(link, what, () => rpc(admin), () => {
      if (link.admin === opening) link.admin = null;
      closeQuietly(admin);
    });
  }

  /**
   * One channel operation, bounded by rpcTimeoutMs. No answer in time means the link is not usable: it is replaced
   * (health goes down meanwhile). Any other failure may leave amqplib's channel waiting for a reply that never
   * comes, so `discard` closes that channel. Either way the caller gets a BrokerUnavailableError.
   */
  private async rpc<T>(link: Link, what: string, work: () => Promise<T>, discard: () => void): Promise<T> {
    try {
      return await within(work(), this.rpcTimeoutMs, what);
    } catch (err) {
      if (err instanceof RpcTimeoutError) this.lose(link, err.message);
      else discard();
      if (err instanceof BrokerUnavailableError) throw err;
      throw Object.assign(new BrokerUnavailableError(`${what}: ${describe(err)}`), { cause: err });
    }
  }

  // --- consuming ---

  private onTopicMessage(link: Link, msg: ConsumeMessage | null): void {
    if (!msg) {
      this.lose(link, 'the broker cancelled the gateway queue consumer');
      return;
    }
    const exchange = EXCHANGE_OF_NAME.get(msg.fields.exchange);
    if (!exchange) {
      this.log.warn({ exchange: msg.fields.exchange }, 'dropping a gateway queue message from an unknown exchange');
      settleQuietly(() => link.topic.nack(msg, false, false));
      return;
    }
    this.dispatch(link.onTopic, toDelivery(link.topic, msg, exchange, msg.fields.routingKey));
  }

  private onQueueMessage(consumer: ConsumerState, att: Attachment, msg: ConsumeMessage | null): void {
    if (!msg) {
      // The broker cancelled the consumer: the queue was deleted. Declare it again and go on consuming.
      this.log.warn({ queue: consumer.queue }, 'queue consumer cancelled by the broker');
      if (consumer.attachment !== att) return;
      consumer.attachment = null;
      att.slot.consumers--;
      att.link.declared.delete(consumer.queue);
      if (!consumer.cancelled) void this.reattach(att.link, consumer);
      return;
    }
    if (consumer.cancelled) {
      // Arrived between cancel() and the broker's cancel-ok: give it straight back.
      settleQuietly(() => att.channel.nack(msg, false, true));
      return;
    }
    this.dispatch(consumer.handler, toDelivery(att.channel, msg, 'queue', consumer.queue, att.unsettled));
  }

  private dispatch(handler: DeliveryHandler, delivery: Delivery): void {
    try {
      handler(delivery);
    } catch (err) {
      // Never let a handler's bug tear down the AMQP connection; the delivery stays with the handler.
      this.log.error({ err, routingKey: delivery.routingKey }, 'delivery handler threw');
    }
  }

  /** Start consuming `consumer` on a channel of `link`; sets consumer.attachment when done. */
  private async attach(link: Link, consumer: ConsumerState): Promise<void> {
    const slot = this.reserveSlot(link);
    let att: Attachment;
    try {
      await this.declareQueue(link, consumer.queue);
      const channel = await this.rpc(link, 'opening a consumer channel', () => slot.channel, () => {});
      att = { link, slot, channel, tag: '', unsettled: new Set() };
      const attachment = att;
      // RabbitMQ applies a non-global qos to the consumers started after it on the channel. amqplib sends a
      // channel's RPCs in call order, and these two are issued together, so no other qos can come between.
      const [, ok] = await this.rpc(
        link,
        `consuming ${consumer.queue}`,
        () =>
          Promise.all([
            channel.prefetch(consumer.prefetch),
            channel.consume(consumer.queue, (msg) => this.onQueueMessage(consumer, attachment, msg)),
          ]),
        // Its other consumers move to other channels when it closes.
        () => closeQuietly(channel),
      );
      att.tag = ok.consumerTag;
    } catch (err) {
      slot.consumers--;
      throw err;
    }
    if (consumer.cancelled) {
      await this.detach(att);
      return;
    }
    consumer.attachment = att;
  }

  private reserveSlot(link: Link): Slot {
    let slot = link.slots.find((s) => s.consumers < CONSUMERS_PER_CHANNEL);
    if (!slot) {
      const created: Slot = { channel: link.conn.createChannel(), consumers: 0 };
      created.channel.then(
        (ch) => this.watch(link, ch, 'consumer channel', () => this.onSlotLost(link, created)),
        () => removeSlot(link, created),
      );
      link.slots.push(created);
      slot = created;
    }
    slot.consumers++;
    return slot;
  }

  /** A consumer channel closed on a live connection (a channel error): move its consumers to other channels. */
  private onSlotLost(link: Link, slot: Slot): void {
    removeSlot(link, slot);
    for (const consumer of this.consumers) {
      if (consumer.attachment?.slot === slot) void this.reattach(link, consumer);
    }
  }

  /**
   * Attach a registered consumer again (new link, lost channel, cancelled by the broker). One that cannot be
   * attached (say its queue was redeclared with other arguments) stays registered, detached, and is tried
   * again on the next link, rather than keeping the whole link down.
   */
  private async reattach(link: Link, consumer: ConsumerState): Promise<void> {
    consumer.attachment = null;
    try {
      await this.attach(link, consumer);
    } catch (err) {
      if (link.alive) {
        this.log.error({ err: describe(err), queue: consumer.queue }, 'cannot consume; retried after a reconnect');
      }
    }
  }

  private async cancel(consumer: ConsumerState): Promise<void> {
    if (consumer.cancelled) return;
    consumer.cancelled = true;
    this.consumers.delete(consumer);
    const att = consumer.attachment;
    consumer.attachment = null;
    if (att) await this.detach(att);
  }

  /** Cancel on the broker, then hand back whatever is still unsettled, so it is redelivered (flagged) to others. */
  private async detach(att: Attachment): Promise<void> {
    att.slot.consumers--;
    try {
      await this.rpc(att.link, 'cancelling a consumer', () => att.channel.cancel(att.tag), () => closeQuietly(att.channel));
    } catch {
      // The channel is gone, and with it the consumer; the broker has requeued its deliveries.
      return;
    }
    for (const msg of att.unsettled) settleQuietly(() => att.channel.nack(msg, false, true));
    att.unsettled.clear();
  }
}

function removeSlot(link: Link, slot: Slot): void {
  const index = link.slots.indexOf(slot);
  if (index >= 0) link.slots.splice(index, 1);
}

function first<T>(set: Set<T>): T | undefined {
  return set.values().next().value;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
