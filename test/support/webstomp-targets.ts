import { connect } from 'amqplib';
import type { StompHeaders } from '@stomp/stompjs';
import { newUser, startTestGateway, type TestServer } from './gateway.ts';

export const RABBITMQ_URL = 'amqp://guest:guest@127.0.0.1:5672';
/** RabbitMQ's Web-STOMP plugin (`rabbitmq-plugins enable rabbitmq_web_stomp`). */
export const WEB_STOMP_URL = 'ws://127.0.0.1:15674/ws';

/** A server a Web-STOMP client can talk to: where it listens and what CONNECT carries there. */
export interface WebStompTarget {
  wsUrl: string;
  /** The only thing a client changes between targets. */
  connectHeaders: StompHeaders;
  /** Stop what was started and delete the RabbitMQ queues named by `/queue/{name}` destinations used on it. */
  stop(queues: readonly string[]): Promise<void>;
}

export interface WebStompTargetSpec {
  name: string;
  start(): Promise<WebStompTarget>;
}

/** Delete named queues on the machine's RabbitMQ (deleting one that does not exist is not an error). */
export async function deleteRabbitQueues(queues: readonly string[]): Promise<void> {
  if (queues.length === 0) return;
  const conn = await connect(RABBITMQ_URL);
  try {
    const ch = await conn.createChannel();
    for (const queue of queues) await ch.deleteQueue(queue);
    await ch.close();
  } finally {
    await conn.close();
  }
}

/** A gateway with a fresh user whose access token goes in `passcode`, as a Web-STOMP client sends its password. */
export async function gatewayTarget(env: Record<string, string>, onRabbit: boolean): Promise<WebStompTarget> {
  const server: TestServer = await startTestGateway(env);
  const user = await newUser(server.url, 'webstomp');
  return {
    wsUrl: server.wsUrl,
    connectHeaders: { login: 'guest', passcode: user.accessToken },
    async stop(queues) {
      await server.stop();
      // The gateway's own topic queue would otherwise linger until its x-expires.
      if (onRabbit) await deleteRabbitQueues([...queues, `gateway.${server.gateway.id}`]);
    },
  };
}

/** The reference: RabbitMQ's own Web-STOMP plugin. */
export const WEB_STOMP_PLUGIN: WebStompTargetSpec = {
  name: 'RabbitMQ Web-STOMP plugin',
  start: async () => ({
    wsUrl: WEB_STOMP_URL,
    connectHeaders: { login: 'guest', passcode: 'guest' },
    stop: (queues) => deleteRabbitQueues(queues),
  }),
};

export const GATEWAY_ON_RABBITMQ: WebStompTargetSpec = {
  name: 'gateway on RabbitMQ',
  start: () => gatewayTarget({ BROKER_URL: RABBITMQ_URL }, true),
};

export const GATEWAY_EMBEDDED: WebStompTargetSpec = {
  name: 'gateway on the embedded broker',
  start: () => gatewayTarget({}, false),
};

/** The reference and the two gateway set-ups that must behave like it. */
export const WEB_STOMP_TARGETS: WebStompTargetSpec[] = [WEB_STOMP_PLUGIN, GATEWAY_ON_RABBITMQ, GATEWAY_EMBEDDED];
