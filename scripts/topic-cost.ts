import { connect } from 'amqplib';

/**
 * What one publish costs RabbitMQ's own topic matching at given bounds:
 * `npx tsx scripts/topic-cost.ts <words> <hashes> [amqp url]`. It binds, on a throwaway topic exchange, one pattern
 * per placement of `hashes` `#` words among `words` words (the others `*`, the last a word no key has), then times
 * five confirmed publishes of a `words`-word key that makes RabbitMQ try every placement. README, "Limits", quotes it.
 */
const [words = 16, hashes = 1] = process.argv.slice(2, 4).map(Number);
const url = process.argv[4] ?? 'amqp://guest:guest@127.0.0.1:5672';

const conn = await connect(url);
const ch = await conn.createConfirmChannel();
const exchange = `topic-cost-${process.pid}`;
await ch.assertExchange(exchange, 'topic', { durable: false, autoDelete: true });
const { queue } = await ch.assertQueue('', { exclusive: true });
let bindings = 0;
async function place(pattern: string[], from: number, left: number): Promise<void> {
  if (left === 0) {
    await ch.bindQueue(queue, exchange, [...pattern, 'z'].join('.'));
    bindings++;
    return;
  }
  for (let i = from; i < words - 1; i++) await place(pattern.map((w, j) => (j === i ? '#' : w)), i + 1, left - 1);
}
await place(Array<string>(words - 1).fill('*'), 0, hashes);
const key = Array<string>(words).fill('a').join('.');
const ms: string[] = [];
for (let i = 0; i < 5; i++) {
  const start = process.hrtime.bigint();
  ch.publish(exchange, key, Buffer.from('x'));
  await ch.waitForConfirms();
  ms.push((Number(process.hrtime.bigint() - start) / 1e6).toFixed(2));
}
console.log(JSON.stringify({ words, hashes, bindings, publishMs: ms }));
await ch.deleteExchange(exchange);
await conn.close();
