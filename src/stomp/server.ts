import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { StompSession, type SessionContext, type SessionHandler, type SessionLimits } from './session.ts';
import { UserSessions } from './user-sessions.ts';

const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

export interface ServerLimits extends SessionLimits {
  /** Open WebSockets per gateway; past it an upgrade is refused with 503. */
  maxConnections: number;
  /**
   * One WebSocket message, which may carry several frames. Up to it, a frame over its limit is answered by the
   * parser's ERROR; past it `ws` closes the socket with 1009 before reading the message.
   */
  maxWsMessageBytes: number;
}

/** Accepts WebSocket upgrades on `/ws` and runs a StompSession on each. */
export class StompServer {
  readonly sessions = new Set<StompSession>();
  /** Sessions per user, as the sessions' identify() counted them. */
  readonly users = new UserSessions();
  private readonly wss: WebSocketServer;
  private accepting = true;

  constructor(http: Server, handler: SessionHandler, limits: ServerLimits, gateway: Omit<SessionContext, 'users'>) {
    const context: SessionContext = { ...gateway, users: this.users };
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.maxWsMessageBytes,
      perMessageDeflate: false,
      handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
    });
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/ws') return refuseUpgrade(socket, '404 Not Found');
      if (!this.accepting) return refuseUpgrade(socket, '503 Service Unavailable');
      if (this.sessions.size >= limits.maxConnections) {
        context.metrics.refused('connections');
        context.audit.record('limit_refused', { limit: 'connections', ip: req.socket.remoteAddress });
        return refuseUpgrade(socket, '503 Service Unavailable');
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        const session = new StompSession(ws, handler, limits, context);
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

function refuseUpgrade(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
