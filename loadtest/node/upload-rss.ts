/**
 * One large upload through a gateway process: its RSS growth (sampled from /proc every 100 ms) and the throughput.
 * The body is generated as it is sent (one 1 MiB buffer, reused), never held whole in memory.
 *
 *   npx tsx loadtest/node/upload-rss.ts [bytes=1000000000] [url]
 *
 * Without `url`, starts a gateway on the embedded default (temporary DATA_DIR) and measures it; with `url`
 * (e.g. through nginx of `npm run cluster`), uploads there and reports RSS of the pid in GATEWAY_PID if set.
 */
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, startGatewayProcess } from '../../scripts/gateway-process.ts';
import { rssBytes } from './proc.ts';

const BOUNDARY = 'upload-rss-boundary';
const bytes = Number(process.argv[2] ?? 1e9);
const MiB = 1024 * 1024;

const dataDir = await mkdtemp(join(tmpdir(), 'upload-rss-'));
const gateway = process.argv[3]
  ? undefined
  : await startGatewayProcess('upload-rss', (await freePorts(1))[0]!, {
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      MAX_UPLOAD_BYTES: String(bytes),
    });
const url = process.argv[3] ?? gateway!.url;
const pid = gateway?.child.pid ?? (process.env.GATEWAY_PID ? Number(process.env.GATEWAY_PID) : undefined);

try {
  const post = async (path: string, body: unknown, token?: string) => {
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const username = `rss${Date.now().toString(36)}`;
  await post('/api/auth/signup', { username, password: 'upload-rss-password' });
  const { accessToken } = (await post('/api/auth/login', { username, password: 'upload-rss-password' })) as { accessToken: string };
  const room = (await post('/api/rooms', { kind: 'group', name: 'upload-rss' }, accessToken)) as { id: string };

  const head = Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  const chunk = Buffer.alloc(MiB, 0x5a);

  const baseline = pid ? rssBytes(pid) : 0;
  let peak = baseline;
  const sampler = pid ? setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 100) : undefined;
  const started = performance.now();
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(`${url}/api/rooms/${room.id}/files`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${accessToken}`,
        'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
        'content-length': String(head.length + bytes + tail.length),
      },
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    let sent = 0;
    const write = (): void => {
      while (sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', write);
      }
      req.end(tail);
    };
    req.write(head);
    write();
  });
  const seconds = (performance.now() - started) / 1000;
  if (sampler) clearInterval(sampler);
  console.log(
    JSON.stringify(
      {
        url,
        status: answer.status,
        answer: answer.body.slice(0, 200),
        bytes,
        seconds: Number(seconds.toFixed(2)),
        MBps: Number((bytes / 1e6 / seconds).toFixed(1)),
        rssBaselineMiB: Number((baseline / MiB).toFixed(1)),
        rssPeakMiB: Number((peak / MiB).toFixed(1)),
        rssGrowthMiB: Number(((peak - baseline) / MiB).toFixed(1)),
        loadavg: loadavg().map((l) => Number(l.toFixed(2))),
      },
      null,
      2,
    ),
  );
} finally {
  gateway?.kill();
  await gateway?.exited;
  await rm(dataDir, { recursive: true, force: true });
}
