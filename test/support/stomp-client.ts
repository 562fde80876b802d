import { Client, type IFrame, type IMessage, type StompHeaders } from '@stomp/stompjs';
import WebSocket from 'ws';
import { RoomEvent } from '../../src/contract/events.ts';

/** A connected @stomp/stompjs client that records what it receives, for assertions. */
export class TestClient {
  /** Every MESSAGE received, by destination subscribed to. */
  readonly received = new Map<string, IMessage[]>();
  readonly errors: Array<{ code: string; message: string; clientRequestCode?: string; receiptId?: string }> = [];
  connectedHeaders: StompHeaders = {};
  private receiptSeq = 0;
  private waiters: Array<() => void> = [];

  constructor(readonly client: Client) {}

  subscribe(destination: string, headers: StompHeaders = {}): string {
    const list = this.received.get(destination) ?? [];
    this.received.set(destination, list);
    const sub = this.client.subscribe(
      destination,
      (m) => {
        list.push(m);
        this.wake();
      },
      headers,
    );
    return sub.id;
  }

  /** Subscribe and wait for the server's RECEIPT (so the subscription is live, replay included). */
  async subscribeConfirmed(destination: string, headers: StompHeaders = {}): Promise<string> {
    const receipt = `sub-${++this.receiptSeq}`;
    const done = this.receipt(receipt);
    const id = this.subscribe(destination, { ...headers, receipt });
    await done;
    return id;
  }

  /** Listen on /user/queue/errors and collect error events. */
  async watchErrors(): Promise<void> {
    const receipt = `errors-${++this.receiptSeq}`;
    const done = this.receipt(receipt);
    this.client.subscribe(
      '/user/queue/errors',
      (m) => {
        this.errors.push(JSON.parse(m.body));
        this.wake();
      },
      { receipt },
    );
    await done;
  }

  send(destination: string, body: unknown, headers: StompHeaders = {}): void {
    this.client.publish({ destination, body: typeof body === 'string' ? body : JSON.stringify(body), headers });
  }

  /** Send and resolve on RECEIPT; rejects when an error event names the receipt instead. */
  async sendConfirmed(destination: string, body: unknown, headers: StompHeaders = {}): Promise<void> {
    const receipt = `send-${++this.receiptSeq}`;
    const done = this.receipt(receipt);
    this.send(destination, body, { ...headers, receipt });
    await Promise.race([
      done,
      this.until(() => this.errors.some((e) => e.receiptId === receipt)).then(() => {
        const e = this.errors.find((x) => x.receiptId === receipt)!;
        throw new Error(`${e.code}: ${e.message}`);
      }),
    ]);
  }

  messages(destination: string): IMessage[] {
    return this.received.get(destination) ?? [];
  }

  events(destination: string): Array<Record<string, unknown>> {
    return this.messages(destination).map((m) => JSON.parse(m.body));
  }

  /** The room events that make up its history (each with its seq); PRESENCE, TYPING and READ left out. */
  logged(destination: string): Array<Record<string, unknown>> {
    return this.events(destination).filter((e) => RoomEvent.safeParse(e).success);
  }

  /** Resolve once `predicate` holds; reject after `timeoutMs`. */
  until(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error('timed out waiting for a condition'));
      }, timeoutMs);
      const check = (): void => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  async disconnect(): Promise<void> {
    await this.client.deactivate();
  }

  private receipt(id: string): Promise<void> {
    return new Promise((resolve) => this.client.watchForReceipt(id, () => resolve()));
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** Connect a STOMP client to `wsUrl` with the given CONNECT headers; rejects on an ERROR frame. */
export function connectStomp(wsUrl: string, connectHeaders: StompHeaders, heartbeatMs = 0): Promise<TestClient> {
  return new Promise((resolve, reject) => {
    const client = new Client({
      webSocketFactory: () => new WebSocket(wsUrl, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
      connectHeaders,
      reconnectDelay: 0,
      heartbeatIncoming: heartbeatMs,
      heartbeatOutgoing: heartbeatMs,
      debug: () => {},
    });
    const tc = new TestClient(client);
    client.onConnect = (frame: IFrame) => {
      tc.connectedHeaders = frame.headers;
      resolve(tc);
    };
    client.onStompError = (frame: IFrame) => reject(new Error(`STOMP ERROR: ${frame.headers.message}`));
    client.onWebSocketError = () => reject(new Error('websocket error'));
    client.activate();
  });
}
