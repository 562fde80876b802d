import type { AuditLog } from '../audit.ts';
import { type Broker, type BrokerMessage, type Delivery, type QueueConsumer, QueueFullError } from '../broker/broker.ts';
import { originOf } from '../broker/messages.ts';
import { AMQP_NAME_MAX_BYTES, refuseRelayName, type TopicBounds } from '../contract/destinations.ts';
import { ChatError } from '../contract/errors.ts';
import type { Fanout, FanoutTarget } from '../delivery/fanout.ts';
import { copyFor, deliveryKey } from '../delivery/copy.ts';
import type { OutboundCopy, OutboundInterceptor } from '../delivery/interceptor.ts';
import type { LimitName, Metrics } from '../metrics.ts';
import type { Frame } from '../stomp/frame.ts';
import type { StompSession, Subscription } from '../stomp/session.ts';

/** Headers that steer the STOMP frame itself and are not passed on to subscribers. */
const FRAME_HEADERS = new Set(['destination', 'receipt', 'transaction', 'content-length', 'client-request-code', 'sender-session', 'sender-seq', 'seq']);

/** AMQP's basic.qos prefetch-count is an unsigned 16-bit number. */
const PREFETCH_MAX = 65_535;

export interface RelayOptions {
  /** prefetch-count of a /queue subscription that names none. */
  defaultPrefetch: number;
  topicBounds: TopicBounds;
  /** QUEUE_MAX_LENGTH, named in the error a SEND to a full queue gets. */
  queueMaxLength: number;
}

interface Unacked {
  delivery: Delivery;
  /** `${sender}|${seq}`: a redelivered copy of the same message finds its entry by it. */
  key: string;
}

/** Per-session state of `/queue` subscriptions with client acks. */
interface QueueSubscription {
  sub: Subscription;
  consumer: QueueConsumer;
  /** By message-id, in delivery order (the order `ack: client` acknowledges cumulatively). */
  unacked: Map<string, Unacked>;
  /** message-id by message key, to rebind a redelivered copy to the frame the client already has. */
  byKey: Map<string, string>;
  /** Keys the client NACKed: their next copy is wanted again, whatever the history says. */
  nacked: Set<string>;
}

/**
 * Plain STOMP relay, mapped as RabbitMQ Web-STOMP maps it: `/topic/x` through the relay topic exchange,
 * `/queue/x` a named queue with competing consumers, where `ack: client` / `client-individual` become broker
 * acks and NACK requeues.
 */
export class Relay {
  private readonly queueSubs = new Map<StompSession, Map<string, QueueSubscription>>();

  constructor(
    private readonly broker: Broker,
    private readonly fanout: Fanout,
    private readonly interceptor: OutboundInterceptor,
    private readonly options: RelayOptions,
    private readonly metrics: Metrics,
    private readonly audit: AuditLog,
  ) {}

  async send(session: StompSession, frame: Frame, kind: 'topic' | 'queue', name: string): Promise<void> {
    this.checkName(session, kind, name);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(frame.headers)) if (!FRAME_HEADERS.has(k)) headers[k] = v;
    // Header names travel as AMQP short strings too.
    if (Object.keys(headers).some((k) => Buffer.byteLength(k, 'utf8') > AMQP_NAME_MAX_BYTES)) this.refuse(session, 'amqp_name', `a header name is over AMQP's ${AMQP_NAME_MAX_BYTES} bytes`);
    headers.destination = `/${kind}/${name}`;
    headers['sender-session'] = session.id;
    headers['sender-seq'] = String(session.nextSenderSeq());
    const message: BrokerMessage = { headers, body: frame.body };
    if (kind === 'topic') return this.broker.publish('relay', name, message);
    try {
      await this.broker.sendToQueue(name, message);
    } catch (err) {
      if (!(err instanceof QueueFullError)) throw err;
      this.refuse(session, 'queue_length', `queue ${name} is full (${this.options.queueMaxLength} messages waiting); retry once its consumers catch up`, 'RATE_LIMITED');
    }
  }

  /** Subscribe to a topic pattern; returns the cleanup to run on UNSUBSCRIBE or disconnect. */
  async subscribeTopic(session: StompSession, sub: Subscription, pattern: string): Promise<() => Promise<void>> {
    this.checkName(session, 'topic', pattern);
    const target: FanoutTarget = {
      offer(m) {
        // Web-STOMP flags every MESSAGE; a topic copy is written at most once, so never as a redelivery.
        const message: BrokerMessage = { ...m, headers: { ...m.headers, redelivered: 'false' } };
        if (!originOf(m)) {
          // Published outside the gateways (RabbitMQ's own STOMP, AMQP clients): nothing to deduplicate by.
          session.sendMessage(sub, message);
          return [];
        }
        const copy = copyFor(session, sub, message);
        return copy ? [copy] : [];
      },
    };
    await this.fanout.add('relay', pattern, target);
    return () => this.fanout.remove('relay', pattern, target);
  }

  async subscribeQueue(session: StompSession, sub: Subscription, name: string): Promise<() => Promise<void>> {
    this.checkName(session, 'queue', name);
    const prefetch = Number(sub.headers['prefetch-count'] ?? this.options.defaultPrefetch);
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > PREFETCH_MAX) {
      this.refuse(session, 'prefetch', `prefetch-count must be an integer from 1 to ${PREFETCH_MAX}`);
    }
    const state: QueueSubscription = { sub, consumer: undefined!, unacked: new Map(), byKey: new Map(), nacked: new Set() };
    state.consumer = await this.broker.consume(name, prefetch, (d) => this.onQueueDelivery(session, sub, state, d));
    let subs = this.queueSubs.get(session);
    if (!subs) this.queueSubs.set(session, (subs = new Map()));
    subs.set(sub.id, state);
    return async () => {
      subs.delete(sub.id);
      if (subs.size === 0) this.queueSubs.delete(session);
      await state.consumer.cancel();
    };
  }

  /** ACK or NACK by message-id (`id` in 1.2, `message-id` in 1.1 and 1.0). */
  async ack(session: StompSession, frame: Frame, positive: boolean): Promise<void> {
    const id = frame.headers.id ?? frame.headers['message-id'];
    if (!id) throw new ChatError('BAD_REQUEST', `${frame.command} needs an id header`);
    const subs = this.queueSubs.get(session)?.values() ?? [];
    const state = [...subs].find((s) => s.unacked.has(id));
    // Topic messages are settled when written; their ACKs have nothing left to do.
    if (!state) return;
    const settle = (messageId: string, entry: Unacked): void => {
      state.unacked.delete(messageId);
      state.byKey.delete(entry.key);
      if (positive) entry.delivery.ack();
      else {
        state.nacked.add(entry.key);
        entry.delivery.nack(true);
      }
    };
    if (state.sub.ack === 'client') {
      // Cumulative: everything delivered up to and including this message.
      for (const [messageId, entry] of state.unacked) {
        settle(messageId, entry);
        if (messageId === id) break;
      }
    } else {
      settle(id, state.unacked.get(id)!);
    }
  }

  /** Names that could wedge or overload the broker never reach it. */
  private checkName(session: StompSession, kind: 'topic' | 'queue', name: string): void {
    const refusal = refuseRelayName(kind, name, this.options.topicBounds);
    if (refusal) this.refuse(session, refusal.limit, refusal.message);
  }

  private refuse(session: StompSession, limit: LimitName, message: string, code: 'BAD_REQUEST' | 'RATE_LIMITED' = 'BAD_REQUEST'): never {
    this.metrics.refused(limit);
    this.audit.record('limit_refused', { session: session.id, user: session.userId, limit, reason: message });
    throw new ChatError(code, message);
  }

  private onQueueDelivery(session: StompSession, sub: Subscription, state: QueueSubscription, d: Delivery): void {
    const origin = originOf(d.message);
    const key = origin ? `${origin.session}|${origin.seq}` : '';
    let written = false;
    const write = (): boolean => {
      const messageId = session.sendMessage(sub, { headers: { ...d.message.headers, redelivered: String(d.redelivered) }, body: d.message.body });
      if (messageId === null) return false;
      written = true;
      // Settled or registered as the frame goes out, not once the history has recorded it: the client may ACK at once.
      if (sub.ack === 'auto') d.ack();
      else {
        state.unacked.set(messageId, { delivery: d, key });
        state.byKey.set(key, messageId);
      }
      return true;
    };
    const unwritten = (): void => {
      if (written) return;
      // Dropped as already delivered: the client still holds the first frame, whose ACK now settles this copy.
      const earlier = sub.ack === 'auto' ? undefined : state.byKey.get(key);
      if (earlier) state.unacked.set(earlier, { delivery: d, key });
      else if (session.isOpen) d.ack();
      else d.nack(true);
    };
    if (!origin || state.nacked.delete(key)) {
      write();
      return unwritten();
    }
    const copy: OutboundCopy = { key: deliveryKey(session, sub, origin), write };
    // A frame already written stays with the client to settle, even if the history failed to record it.
    this.interceptor.deliver([copy]).then(unwritten, () => {
      if (!written) d.nack(true);
    });
  }
}
