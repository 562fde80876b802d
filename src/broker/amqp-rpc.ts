import type { Duplex } from 'node:stream';
import type { Channel, ChannelModel } from 'amqplib';
import { BrokerUnavailableError } from './broker.ts';

/**
 * Bounds on AMQP channel operations. amqplib gives an RPC no timeout, and when it cannot encode one (a name over
 * 255 bytes, a prefetch over 65535) it leaves the channel waiting for a reply forever: every operation needs a
 * deadline, and a channel that failed one is closed rather than used again.
 */

/** RabbitMQ's answer to a declaration whose arguments differ from the existing queue's. */
const PRECONDITION_FAILED = 406;

/** A channel operation that got no answer in time. */
export class RpcTimeoutError extends BrokerUnavailableError {
  constructor(what: string, ms: number) {
    super(`${what}: no answer from RabbitMQ within ${ms} ms`);
  }
}

/** `work`, or an RpcTimeoutError once `ms` have passed without it settling. */
export function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RpcTimeoutError(what, ms)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Whether RabbitMQ refused a declaration because the queue exists with other arguments (the cause of a wrapped error). */
export function isPreconditionFailed(err: unknown): boolean {
  const cause = err instanceof Error ? err.cause : undefined;
  return (cause as { code?: unknown } | undefined)?.code === PRECONDITION_FAILED;
}

/** Close a channel that is no longer trusted; one already closed has nothing left to do. */
export function closeQuietly(channel: Channel): void {
  try {
    channel.close().catch(() => {});
  } catch {
    // Closed already.
  }
}

/**
 * Close a connection, waiting at most `ms` for RabbitMQ's close-ok. amqplib waits for it forever, heart-beat timers
 * running, so from a silent peer the socket is dropped instead (an error on it is what makes amqplib tidy up).
 */
export async function closeConnection(conn: ChannelModel, ms: number): Promise<void> {
  try {
    await within(conn.close(), ms, 'closing the connection');
  } catch (err) {
    if (!(err instanceof RpcTimeoutError)) throw err;
    // amqplib keeps its socket out of its types.
    (conn.connection as unknown as { stream: Duplex }).stream.destroy(err);
  }
}
