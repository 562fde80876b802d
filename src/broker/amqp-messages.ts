import { type Channel, type ConsumeMessage, IllegalOperationError, type Options } from 'amqplib';
import type { BrokerMessage, Delivery, Exchange } from './broker.ts';

/** Between the Broker's messages and deliveries and amqplib's: STOMP headers as RabbitMQ Web-STOMP maps them, idempotent settlement. */

/** Build a Delivery whose settlement is idempotent and a no-op once its channel is gone. */
export function toDelivery(
  channel: Channel,
  msg: ConsumeMessage,
  exchange: Exchange | 'queue',
  routingKey: string,
  unsettled?: Set<ConsumeMessage>,
): Delivery {
  unsettled?.add(msg);
  let settled = false;
  const settle = (send: () => void): void => {
    if (settled) return;
    settled = true;
    // Already handed back by a cancel: settling it again would settle someone else's copy.
    if (unsettled && !unsettled.delete(msg)) return;
    settleQuietly(send);
  };
  return {
    message: fromAmqp(msg),
    exchange,
    routingKey,
    redelivered: msg.fields.redelivered,
    ack: () => settle(() => channel.ack(msg)),
    nack: (requeue = true) => settle(() => channel.nack(msg, false, requeue)),
  };
}

/** Ack or nack; on a closed channel this throws, and there is nothing to do: the broker redelivers it. */
export function settleQuietly(send: () => void): void {
  try {
    send();
  } catch (err) {
    if (!(err instanceof IllegalOperationError)) throw err;
  }
}

/** STOMP headers to AMQP properties, as Web-STOMP maps them. */
export function toPublishOptions(headers: Record<string, string>): Options.Publish {
  const { 'content-type': contentType, persistent, ...rest } = headers;
  const options: Options.Publish = { headers: rest };
  if (contentType !== undefined) options.contentType = contentType;
  if (persistent === 'true') options.deliveryMode = 2;
  return options;
}

function fromAmqp(msg: ConsumeMessage): BrokerMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(msg.properties.headers ?? {})) {
    const text = headerText(value);
    if (text !== undefined) headers[name] = text;
  }
  if (msg.properties.contentType) headers['content-type'] = String(msg.properties.contentType);
  if (msg.properties.deliveryMode === 2) headers.persistent = 'true';
  return { headers, body: msg.content };
}

/** AMQP header values from other clients may be any table type; tables and arrays (x-death...) are not STOMP headers. */
function headerText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
}
