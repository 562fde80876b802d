import { describe, expect, it } from 'vitest';
import type { BrokerMessage, Delivery } from '../src/broker/broker.ts';
import { MemoryBroker } from '../src/broker/memory-broker.ts';
import { originOf } from '../src/broker/messages.ts';
import { Fanout } from '../src/delivery/fanout.ts';
import { OutboundInterceptor, type OutboundCopy } from '../src/delivery/interceptor.ts';
import { MemoryHistory } from '../src/delivery/memory-history.ts';
import { createLogger } from '../src/logger.ts';

const KEY = 'room.r1';
const message = (seq: number): BrokerMessage => ({ headers: { 'sender-session': 's1', 'sender-seq': String(seq) }, body: Buffer.from(`m${seq}`) });

/**
 * A fan-out with one local subscriber that writes what it gets to `written` (its copies keyed as copyFor keys them).
 * `release` says which messages the subscriber writes for one it is offered (a room feed closing a gap releases the
 * ones it held before it).
 */
async function harness(release: (m: BrokerMessage) => BrokerMessage[] = (m) => [m]) {
  const interceptor = new OutboundInterceptor(new MemoryHistory({ window: 1024 }));
  const fanout = new Fanout(new MemoryBroker({ queueMaxLength: 100 }), interceptor, createLogger('silent'));
  const written: string[] = [];
  const copy = (m: BrokerMessage): OutboundCopy => {
    const origin = originOf(m)!;
    return { key: { receiver: 'r', sender: `${origin.session}>/topic/rooms.r1`, seq: origin.seq }, write: () => written.push(m.body.toString()) > 0 };
  };
  await fanout.add('chat', KEY, { offer: (m) => release(m).map(copy) });
  /** Hand the fan-out one delivery and resolve once it is acked. */
  const deliver = (m: BrokerMessage, redelivered: boolean) =>
    new Promise<void>((resolve, reject) => {
      const delivery: Delivery = { message: m, exchange: 'chat', routingKey: KEY, redelivered, ack: resolve, nack: () => reject(new Error('nacked')) };
      fanout.onDelivery(delivery);
    });
  return { interceptor, fanout, deliver, written };
}

describe('Fanout', () => {
  it('counts a dropped copy of a broker redelivery apart from other dropped copies', async () => {
    const h = await harness();
    await h.deliver(message(1), false);
    await h.deliver(message(1), true); // RabbitMQ hands it out again: its ack was lost
    await h.deliver(message(1), false); // the same event published again (an outbox sweep), not a redelivery
    await h.deliver(message(2), true); // redelivered, but never written before: it is written
    expect(h.written).toEqual(['m1', 'm2']);
    expect(h.interceptor.stats).toEqual({ written: 2, dropped: 2, abandoned: 0 });
    expect(h.fanout.stats).toEqual({ redeliveredDropped: 1 });
  });

  it('counts only the copy of the redelivered message, not an earlier one released along with it', async () => {
    const h = await harness((m) => (m.headers['sender-seq'] === '2' ? [message(1), m] : [m]));
    await h.deliver(message(1), false);
    await h.deliver(message(2), true); // its subscriber releases m1 again with it: that drop is no redelivery's
    expect(h.written).toEqual(['m1', 'm2']);
    expect(h.interceptor.stats).toEqual({ written: 2, dropped: 1, abandoned: 0 });
    expect(h.fanout.stats).toEqual({ redeliveredDropped: 0 });
  });
});
