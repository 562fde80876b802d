/**
 * A trivial STOMP-over-WebSocket relay: CONNECT is accepted as it is, SEND goes to every SUBSCRIBE of the same
 * destination, nothing is stored or checked. It exists to measure what the generator itself can drive.
 * Run: node --import tsx loadtest/node/echo-server.ts [port]  (prints `listening <port>`).
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { encodeFrame, FrameDecoder } from '../common/stomp.ts';

interface Subscriber {
  ws: WebSocket;
  id: string;
}

export function startEchoServer(port: number): Promise<WebSocketServer> {
  const topics = new Map<string, Subscriber[]>();
  let messageSeq = 0;
  const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, handleProtocols: () => 'v12.stomp' });
  wss.on('connection', (ws) => {
    const decoder = new FrameDecoder();
    const mine: Array<[string, Subscriber]> = [];
    ws.on('message', (data: Buffer) => {
      for (const f of decoder.push(data.toString('utf8'))) {
        switch (f.command) {
          case 'CONNECT':
          case 'STOMP':
            ws.send(encodeFrame('CONNECTED', { version: '1.2', 'heart-beat': '0,0' }));
            break;
          case 'SUBSCRIBE': {
            const dest = f.headers.destination ?? '';
            const sub = { ws, id: f.headers.id ?? '' };
            const list = topics.get(dest) ?? [];
            list.push(sub);
            topics.set(dest, list);
            mine.push([dest, sub]);
            break;
          }
          case 'SEND': {
            const dest = f.headers.destination ?? '';
            // One encoding per subscription id: load clients all use the same id, so usually one in all.
            const encoded = new Map<string, string>();
            for (const s of topics.get(dest) ?? []) {
              let text = encoded.get(s.id);
              if (!text) {
                text = encodeFrame('MESSAGE', { subscription: s.id, 'message-id': String(++messageSeq), destination: dest }, f.body);
                encoded.set(s.id, text);
              }
              s.ws.send(text);
            }
            break;
          }
        }
        if (f.headers.receipt) ws.send(encodeFrame('RECEIPT', { 'receipt-id': f.headers.receipt }));
      }
    });
    ws.on('close', () => {
      for (const [dest, sub] of mine) topics.set(dest, (topics.get(dest) ?? []).filter((s) => s !== sub));
    });
  });
  return new Promise((resolve) => wss.on('listening', () => resolve(wss)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const wss = await startEchoServer(Number(process.argv[2] ?? 0));
  console.log(`listening ${(wss.address() as { port: number }).port}`);
}
