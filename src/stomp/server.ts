import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Logger } from '../logger.ts';
import { StompSession, type SessionHandler, type SessionLimits } from './session.ts';

const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

/** Accepts WebSocket upgrades on `/ws` and runs a StompSession on each. */
export class StompServer {
  readonly sessions = new Set<StompSession>();
  private readonly wss: WebSocketServer;
  private accepting = true;

  constructor(
    http: Server,
    handler: SessionHandler,
    limits: SessionLimits,
    private readonly log: Logger,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      // A WebSocket message may carry several frames; the parser enforces the per-frame limit.
      maxPayload: limits.maxFrameBytes * 4,
      perMessageDeflate: false,
      handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
    });
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/ws' || !this.accepting) {
        socket.end(`HTTP/1.1 ${this.accepting ? '404 Not Found' : '503 Service Unavailable'}\r\nConnection: close\r\n\r\n`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        const session = new StompSession(ws, handler, limits, log);
        this.sessions.add(session);
        ws.on('close', () => this.sessions.delete(session));
      });
    });
  }

  /** What every session has queued, inbound frames and outbound bytes: the sum and the largest one (for /metrics). */
  backlog(): { queuedFrames: number; maxQueuedFrames: number; pendingBytes: number; maxPendingBytes: number } {
    const b = { queuedFrames: 0, maxQueuedFrames: 0, pendingBytes: 0, maxPendingBytes: 0 };
    for (const s of this.sessions) {
      b.queuedFrames += s.queuedFrames;
      b.maxQueuedFrames = Math.max(b.maxQueuedFrames, s.queuedFrames);
      b.pendingBytes += s.pendingBytes;
      b.maxPendingBytes = Math.max(b.maxPendingBytes, s.pendingBytes);
    }
    return b;
  }

  /** Refuse new connections (graceful shutdown). */
  stopAccepting(): void {
    this.accepting = false;
  }

  async close(): Promise<void> {
    this.stopAccepting();
    for (const s of this.sessions) s.close();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
