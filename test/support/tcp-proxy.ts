import net from 'node:net';

/** A TCP proxy on 127.0.0.1 that tests use to cut a service's connections on purpose. */
export interface TcpProxy {
  /** The port to connect to instead of the target's. */
  port: number;
  /** Destroy every live connection, both the client's side and the target's side. */
  dropAll(): void;
  /** Refuse new connections (accept and destroy at once) until resume(); live ones are left alone. */
  pause(): void;
  resume(): void;
  /** Stop forwarding what the target sends on every live connection, leaving it open: a service gone silent. New connections are not affected. */
  silence(): void;
  /** Stop forwarding what clients send on every live connection, keeping it buffered, until release(): a target that stops reading, as RabbitMQ does with a blocked connection. */
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let paused = false;

  const server = net.createServer((client) => {
    if (paused) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.setNoDelay(true);
      socket.on('error', drop);
      socket.on('close', drop);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });

  const dropAll = (): void => {
    for (const { client, upstream } of [...pairs]) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
  };

  return {
    port: (server.address() as net.AddressInfo).port,
    dropAll,
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
    },
    silence: () => {
      for (const { client, upstream } of pairs) upstream.unpipe(client);
    },
    hold: () => {
      for (const { client, upstream } of pairs) {
        client.unpipe(upstream);
        client.pause();
      }
    },
    release: () => {
      for (const { client, upstream } of pairs) client.pipe(upstream);
    },
    close: () => {
      dropAll();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
