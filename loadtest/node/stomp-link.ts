import WebSocket from 'ws';
import { encodeFrame, FrameDecoder, type StompFrame } from '../common/stomp.ts';

export interface LinkOptions {
  /** Heart-beat both ways, ms (0: none). The worker's clock sends ours; the server's are only counted. */
  heartbeatMs: number;
  timeoutMs: number;
}

/**
 * One STOMP 1.2 connection over `ws`, kept lean for load: string frames, no per-frame promises, receipts
 * only where a caller waits for one. Incoming MESSAGE frames go to `onMessage`; an ERROR frame or an unasked
 * close goes to `onFailure` once.
 */
export class StompLink {
  onMessage: (frame: StompFrame) => void = () => {};
  onFailure: (reason: string) => void = () => {};
  /** Headers of the CONNECTED frame. */
  connected: Record<string, string> = {};
  lastSent = 0;
  private readonly decoder = new FrameDecoder();
  private readonly receipts = new Map<string, () => void>();
  private receiptSeq = 0;
  private closing = false;
  private failed = false;

  private constructor(
    private readonly ws: WebSocket,
    readonly heartbeatMs: number,
  ) {}

  /** Open the socket, CONNECT, and resolve on CONNECTED; rejects on ERROR, close or timeout. */
  static open(url: string, connectHeaders: Record<string, string>, options: LinkOptions): Promise<StompLink> {
    const ws = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: options.timeoutMs });
    const link = new StompLink(ws, options.heartbeatMs);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error('timed out waiting for CONNECTED'));
        ws.terminate();
      }, options.timeoutMs);
      const fail = (reason: string): void => {
        clearTimeout(timer);
        reject(new Error(reason));
      };
      ws.on('open', () => {
        const hb = `${options.heartbeatMs},${options.heartbeatMs}`;
        link.write(encodeFrame('CONNECT', { 'accept-version': '1.2', host: new URL(url).hostname, 'heart-beat': hb, ...connectHeaders }));
      });
      ws.on('error', (err) => (link.connected.version ? link.fail(`socket error: ${err.message}`) : fail(`socket error: ${err.message}`)));
      ws.on('close', () => (link.connected.version ? link.fail('socket closed') : fail('socket closed before CONNECTED')));
      ws.on('message', (data: Buffer) => {
        for (const frame of link.decoder.push(data.toString('utf8'))) {
          switch (frame.command) {
            case 'MESSAGE':
              link.onMessage(frame);
              break;
            case 'RECEIPT': {
              const id = frame.headers['receipt-id'] ?? '';
              link.receipts.get(id)?.();
              link.receipts.delete(id);
              break;
            }
            case 'CONNECTED':
              clearTimeout(timer);
              link.connected = frame.headers;
              resolve(link);
              break;
            case 'ERROR':
              if (!link.connected.version) fail(`ERROR: ${frame.headers.message ?? ''} ${frame.body}`.trim());
              else link.fail(`ERROR: ${frame.headers.message ?? ''}`);
              break;
          }
        }
      });
    });
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN && !this.closing;
  }

  /** Heart-beats received from the server so far. */
  get heartbeatsIn(): number {
    return this.decoder.heartbeats;
  }

  subscribe(id: string, destination: string, headers: Record<string, string> = {}): void {
    this.write(encodeFrame('SUBSCRIBE', { id, destination, ack: 'auto', ...headers }));
  }

  send(destination: string, body: string, headers: Record<string, string> = {}): void {
    this.write(encodeFrame('SEND', { destination, ...headers }, body));
  }

  /** Send `command` with a receipt header and resolve when the RECEIPT comes (reject after `timeoutMs`). */
  confirmed(command: 'SUBSCRIBE' | 'SEND', headers: Record<string, string>, body = '', timeoutMs = 30_000): Promise<void> {
    const receipt = `r${++this.receiptSeq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.receipts.delete(receipt);
        reject(new Error(`no RECEIPT for ${command} ${headers.destination ?? ''} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.receipts.set(receipt, () => {
        clearTimeout(timer);
        resolve();
      });
      this.write(encodeFrame(command, { ...headers, receipt }, body));
    });
  }

  /** Send a heart-beat EOL if nothing else went out for a heart-beat interval. */
  heartbeat(now: number): void {
    if (this.heartbeatMs > 0 && now - this.lastSent >= this.heartbeatMs && this.isOpen) this.write('\n');
  }

  /** A polite goodbye: DISCONNECT, then close. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(encodeFrame('DISCONNECT', {}));
    this.ws.close(1000);
  }

  /** The connection dies without a goodbye, as when a phone loses its network. */
  drop(): void {
    this.closing = true;
    this.ws.terminate();
  }

  private write(text: string): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(text);
    this.lastSent = performance.now();
  }

  private fail(reason: string): void {
    if (this.closing || this.failed) return;
    this.failed = true;
    this.onFailure(reason);
  }
}
