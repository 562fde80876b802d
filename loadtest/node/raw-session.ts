import WebSocket from 'ws';
import { encodeFrame, FrameDecoder, type StompFrame } from '../common/stomp.ts';

/** How the server ended a connection: it refused the upgrade, sent an ERROR frame (then closed), or just closed. */
export type Ending = 'refused-upgrade' | 'error-frame' | 'closed';

/** An error event as PROTOCOL.md's "Errors" section describes it. */
export interface ErrorEvent {
  code: string;
  message: string;
  clientRequestCode?: string;
  receiptId?: string;
}

/** Receipt ids longer than this are counted, not kept. */
const SHORT_ID = 64;

/** The subscription id a RawSession uses for /user/queue/errors. */
const ERRORS_SUB = 'errors';

/**
 * One STOMP connection that does exactly what it is told, however wrong, and records everything the server
 * does to it: frames, error events, RECEIPTs and how the connection ended. Unlike StompLink it never gives up on
 * the server's behalf; the misbehaving sessions of the soak scenario are built on it.
 */
export class RawSession {
  readonly errorEvents: ErrorEvent[] = [];
  /** Receipt ids of the RECEIPTs received (short ones only: a flood of huge ids is only counted). */
  readonly receipts = new Set<string>();
  receiptCount = 0;
  /** Set once the server ended the connection (our own close does not count). */
  ending: Ending | undefined;
  /** The ERROR frame's `message`, or the close code and reason. */
  endDetail = '';
  connected: Record<string, string> | undefined;
  private readonly decoder = new FrameDecoder();
  private waiters: Array<() => void> = [];
  private closing = false;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      for (const frame of this.decoder.push(data.toString('utf8'))) this.onFrame(frame);
      this.wake();
    });
    let error = '';
    let opened = false;
    ws.once('open', () => (opened = true));
    ws.on('close', (code, reason) => {
      // Before the upgrade was answered, open() tells a refusal from no answer.
      if (opened && !this.closing && !this.ending) {
        this.ending = 'closed';
        this.endDetail = `close ${code} ${reason.toString()} ${error}`.trim();
      }
      this.wake();
    });
    ws.on('error', (err) => {
      error = err.message;
      this.wake();
    });
  }

  /**
   * Open the WebSocket; resolves once it is open, with `ending: 'refused-upgrade'` when the server refused it, or
   * closed with no ending when the upgrade was not answered in time.
   */
  static async open(wsUrl: string, timeoutMs: number): Promise<RawSession> {
    const ws = new WebSocket(wsUrl, ['v12.stomp'], { perMessageDeflate: false, handshakeTimeout: timeoutMs });
    const session = new RawSession(ws);
    await new Promise<void>((resolve) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => {
        session.ending = 'refused-upgrade';
        session.endDetail = `HTTP ${res.statusCode}`;
        res.resume();
        ws.terminate();
        resolve();
      });
      ws.once('error', (err) => {
        // A server too busy to answer refused nothing; one that dropped the connection did.
        if (!/timed out/.test(err.message)) session.ending ??= 'refused-upgrade';
        session.endDetail ||= err.message;
        resolve();
      });
    });
    return session;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** One WebSocket message; resolves once the socket took it (so a flood never piles up in this process). */
  sendRaw(data: string | Buffer): Promise<void> {
    if (!this.isOpen) return Promise.resolve();
    return new Promise((resolve) => this.ws.send(data, () => resolve()));
  }

  /** One frame in its own WebSocket message. */
  send(command: string, headers: Record<string, string>, body = ''): Promise<void> {
    return this.sendRaw(encodeFrame(command, headers, body));
  }

  /** CONNECT with these headers (an access token, heart-beat...); resolves true on CONNECTED. */
  async connect(headers: Record<string, string>, timeoutMs: number): Promise<boolean> {
    await this.send('CONNECT', { 'accept-version': '1.2', host: 'soak', 'heart-beat': '0,0', ...headers });
    await this.until(() => this.connected !== undefined, timeoutMs);
    return this.connected !== undefined;
  }

  /** Subscribe to /user/queue/errors and wait for its RECEIPT. */
  async watchErrors(timeoutMs: number): Promise<boolean> {
    await this.send('SUBSCRIBE', { id: ERRORS_SUB, destination: '/user/queue/errors', receipt: ERRORS_SUB });
    await this.until(() => this.receipts.has(ERRORS_SUB), timeoutMs);
    return this.receipts.has(ERRORS_SUB);
  }

  /** The error event carrying this client-request-code, if any. */
  errorFor(requestCode: string): ErrorEvent | undefined {
    return this.errorEvents.find((e) => e.clientRequestCode === requestCode);
  }

  /** Whether a frame sent with `receipt` and `client-request-code` both set to `id` got its RECEIPT or its error event. */
  answered(id: string): boolean {
    return this.receipts.has(id) || this.errorFor(id) !== undefined;
  }

  /** Resolves once `predicate` holds, the server ended the connection, or `timeoutMs` passed (never rejects). */
  until(predicate: () => boolean, timeoutMs: number): Promise<void> {
    if (predicate() || this.ending || this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      const check = (): void => {
        if (predicate() || this.ending || this.ws.readyState === WebSocket.CLOSED) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.push(check);
    });
  }

  /** Stop reading the TCP socket: whatever the server sends stays in the kernel's buffers and then in its own. */
  pauseReading(): void {
    this.ws.pause();
  }

  resumeReading(): void {
    this.ws.resume();
  }

  /** Our own goodbye: not counted as the server ending the session. */
  close(): void {
    this.closing = true;
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.terminate();
  }

  private onFrame(frame: StompFrame): void {
    switch (frame.command) {
      case 'CONNECTED':
        this.connected = frame.headers;
        break;
      case 'RECEIPT': {
        const id = frame.headers['receipt-id'] ?? '';
        this.receiptCount++;
        if (id.length <= SHORT_ID) this.receipts.add(id);
        break;
      }
      case 'ERROR':
        if (!this.closing && !this.ending) {
          this.ending = 'error-frame';
          this.endDetail = frame.headers.message ?? '';
        }
        break;
      case 'MESSAGE':
        if (frame.headers.subscription === ERRORS_SUB) this.errorEvents.push(JSON.parse(frame.body) as ErrorEvent);
        break;
    }
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
