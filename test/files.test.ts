import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { api, connectAs, newUser, startTestGateway, type TestServer, type TestUser } from './support/gateway.ts';
import { VARIANTS } from './support/variants.ts';

const MAX_UPLOAD_BYTES = 4 * 1024 * 1024;
const ORPHAN_TTL_S = 3600;
/** Room for every earlier test's uploads by one user (about 7 MiB), and small enough for a test to reach. */
const QUOTA_BYTES = 10 * 1024 * 1024;
const UPLOADS_PER_MINUTE = 30;
const BOUNDARY = 'chat-test-boundary-7f3a';

/** Deterministic bytes, made chunk by chunk as the request is sent (never the whole file at once). */
function* generated(size: number, seed: number): Generator<Buffer> {
  const chunk = 64 * 1024;
  for (let at = 0; at < size; at += chunk) {
    const part = Buffer.alloc(Math.min(chunk, size - at));
    for (let i = 0; i < part.length; i++) part[i] = (at + i) * 31 + seed * 7 + ((at + i) >> 11);
    yield part;
  }
}

const sha256Of = (chunks: Iterable<Buffer>): string => {
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(c);
  return hash.digest('hex');
};

/** A multipart/form-data body with the field `file`, streamed from `chunks`; `stall` keeps it open after them. */
function multipart(name: string, contentType: string, chunks: Iterable<Buffer>, stall?: Promise<void>): ReadableStream<Uint8Array> {
  const head = Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: ${contentType}\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  async function* parts(): AsyncGenerator<Buffer> {
    yield head;
    yield* chunks;
    if (stall) await stall;
    yield tail;
  }
  const it = parts();
  return new ReadableStream({
    async pull(controller) {
      const next = await it.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
  });
}

/** The multipart framing `multipart` puts around a file. */
const multipartOverhead = (name: string, contentType: string): number =>
  Buffer.byteLength(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: ${contentType}\r\n\r\n`) +
  Buffer.byteLength(`\r\n--${BOUNDARY}--\r\n`);

function upload(
  server: TestServer,
  user: TestUser,
  roomId: string,
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
  contentLength?: number,
): Promise<Response> {
  return fetch(`${server.url}/api/rooms/${roomId}/files`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${user.accessToken}`,
      'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
      ...(contentLength !== undefined && { 'content-length': String(contentLength) }),
    },
    body,
    duplex: 'half',
    signal,
  } as RequestInit);
}

const download = (server: TestServer, user: TestUser, fileId: string, headers: Record<string, string> = {}) =>
  fetch(`${server.url}/api/files/${fileId}`, { headers: { authorization: `Bearer ${user.accessToken}`, ...headers } });

interface FileAnswer {
  fileId: string;
  name: string;
  size: number;
  contentType: string;
}

describe.each(VARIANTS)('files on $name', (variant) => {
  let tearDown: () => Promise<void>;
  let dataDir: string;
  let databaseUrl: string | undefined;
  /** Two gateways sharing DATA_DIR (and, on real services, everything else); on the embedded default, one. */
  let gateways: TestServer[];
  let alice: TestUser;
  let bob: TestUser;
  let stranger: TestUser;
  let roomId: string;
  /** The clock the gateways' orphan sweeps go by; a test moves it. */
  let now = Date.now();

  const stored = () => readdir(join(dataDir, 'files'));
  /** File rows, where the test can read the database (PostgreSQL); PGlite belongs to the gateway alone. */
  async function fileRows(): Promise<number | undefined> {
    if (!databaseUrl) return undefined;
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return Number((await client.query('SELECT count(*) AS n FROM "File"')).rows[0].n);
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    const setUp = await variant.setUp();
    tearDown = setUp.tearDown;
    databaseUrl = setUp.env.DATABASE_URL;
    dataDir = await mkdtemp(join(tmpdir(), 'chat-files-'));
    const env = { ...setUp.env, DATA_DIR: dataDir, MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES), UPLOAD_ORPHAN_TTL_S: String(ORPHAN_TTL_S),
      UPLOAD_QUOTA_BYTES: String(QUOTA_BYTES),
      UPLOADS_PER_MINUTE: String(UPLOADS_PER_MINUTE),
    };
    gateways = [await startTestGateway(env, { now: () => now })];
    if (variant.shared) gateways.push(await startTestGateway(env, { now: () => now }));
    const [a] = gateways;
    alice = await newUser(a!.url, 'fa');
    bob = await newUser(a!.url, 'fb');
    stranger = await newUser(a!.url, 'fs');
    const room = await api<{ id: string }>(a!.url, 'POST', '/api/rooms', { kind: 'group', name: 'files', members: [bob.username] }, alice.accessToken);
    expect(room.status).toBe(201);
    roomId = room.body.id;
  }, 60_000);
  afterAll(async () => {
    for (const g of gateways ?? []) await g.stop();
    await rm(dataDir, { recursive: true, force: true });
    await tearDown?.();
  });

  it('uploads a few MB as a stream and downloads them byte-identical, with its ETag, on every gateway', async () => {
    const size = 3 * 1024 * 1024 + 12_345;
    const res = await upload(gateways[0]!, alice, roomId, multipart('photo.bin', 'application/octet-stream', generated(size, 1)));
    expect(res.status).toBe(201);
    const file = (await res.json()) as FileAnswer;
    expect(file).toEqual({ fileId: expect.stringMatching(/^[0-9a-f-]{36}$/), name: 'photo.bin', size, contentType: 'application/octet-stream' });
    const expected = sha256Of(generated(size, 1));
    for (const g of gateways) {
      const got = await download(g, bob, file.fileId);
      expect(got.status).toBe(200);
      expect(got.headers.get('etag')).toBe(`"${expected}"`);
      expect(got.headers.get('content-length')).toBe(String(size));
      expect(got.headers.get('content-type')).toBe('application/octet-stream');
      expect(got.headers.get('x-content-type-options')).toBe('nosniff');
      expect(got.headers.get('accept-ranges')).toBe('bytes');
      const hash = createHash('sha256');
      for await (const chunk of got.body!) hash.update(chunk);
      expect(hash.digest('hex')).toBe(expected);
    }
  });

  it('serves one byte range as 206 with Content-Range, a suffix range, and 416 past the end', async () => {
    const content = Buffer.from('0123456789abcdefghij');
    const res = await upload(gateways[0]!, alice, roomId, multipart('r.txt', 'text/plain', [content]));
    const { fileId } = (await res.json()) as FileAnswer;
    const g = gateways[gateways.length - 1]!;

    const middle = await download(g, bob, fileId, { range: 'bytes=2-5' });
    expect([middle.status, middle.headers.get('content-range'), middle.headers.get('content-length'), await middle.text()]).toEqual([
      206,
      'bytes 2-5/20',
      '4',
      '2345',
    ]);
    const suffix = await download(g, bob, fileId, { range: 'bytes=-3' });
    expect([suffix.status, suffix.headers.get('content-range'), await suffix.text()]).toEqual([206, 'bytes 17-19/20', 'hij']);
    const open = await download(g, bob, fileId, { range: 'bytes=18-' });
    expect([open.status, open.headers.get('content-range'), await open.text()]).toEqual([206, 'bytes 18-19/20', 'ij']);

    const past = await download(g, bob, fileId, { range: 'bytes=20-30' });
    expect([past.status, past.headers.get('content-range')]).toEqual([416, 'bytes */20']);
    expect(await past.json()).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('answers 304 to If-None-Match with the ETag, and the whole file to another tag', async () => {
    const res = await upload(gateways[0]!, alice, roomId, multipart('e.txt', 'text/plain', [Buffer.from('etag me')]));
    const { fileId } = (await res.json()) as FileAnswer;
    const first = await download(gateways[0]!, alice, fileId);
    const etag = first.headers.get('etag')!;
    expect(etag).toBe(`"${createHash('sha256').update('etag me').digest('hex')}"`);
    const again = await download(gateways[gateways.length - 1]!, alice, fileId, { 'if-none-match': etag });
    expect([again.status, again.headers.get('etag'), await again.text()]).toEqual([304, etag, '']);
    const other = await download(gateways[0]!, alice, fileId, { 'if-none-match': '"something-else"' });
    expect([other.status, await other.text()]).toEqual([200, 'etag me']);
  });

  it('names the download safely: attachment, a sanitised ASCII filename and the exact name in filename*', async () => {
    const cases = [
      ['r\u00e9sum\u00e9;100%.html', 'r\u00e9sum\u00e9;100%.html', `attachment; filename="r_sum__100_.html"; filename*=UTF-8''r%C3%A9sum%C3%A9%3B100%25.html`],
      ['../../etc/passwd', 'passwd', `attachment; filename="passwd"; filename*=UTF-8''passwd`],
      ["it's (1).txt", "it's (1).txt", `attachment; filename="it's (1).txt"; filename*=UTF-8''it%27s%20%281%29.txt`],
    ] as const;
    for (const [sent, name, disposition] of cases) {
      const res = await upload(gateways[0]!, alice, roomId, multipart(sent, 'text/html', [Buffer.from('<script>1</script>')]));
      const file = (await res.json()) as FileAnswer;
      expect([res.status, file.name]).toEqual([201, name]);
      const got = await download(gateways[0]!, alice, file.fileId);
      expect([got.headers.get('content-disposition'), got.headers.get('content-type'), got.headers.get('x-content-type-options')]).toEqual([
        disposition,
        'text/html',
        'nosniff',
      ]);
    }
  });

  it('refuses a non-member with 403 on upload and on download, and an unknown file with 404', async () => {
    const before = await stored();
    const refused = await upload(gateways[0]!, stranger, roomId, multipart('x.txt', 'text/plain', [Buffer.from('nope')]));
    expect([refused.status, await refused.json()]).toEqual([403, { code: 'FORBIDDEN', message: `not a member of room ${roomId}` }]);
    expect(await stored()).toEqual(before);

    const ok = await upload(gateways[0]!, alice, roomId, multipart('m.txt', 'text/plain', [Buffer.from('members only')]));
    const { fileId } = (await ok.json()) as FileAnswer;
    const forbidden = await download(gateways[gateways.length - 1]!, stranger, fileId);
    expect([forbidden.status, await forbidden.json()]).toEqual([403, { code: 'FORBIDDEN', message: `not a member of room ${roomId}` }]);
    const unknown = await download(gateways[0]!, alice, '00000000-0000-4000-8000-000000000000');
    expect(unknown.status).toBe(404);
    expect((await api(gateways[0]!.url, 'GET', `/api/files/${fileId}`)).status).toBe(401);
  });

  it('refuses a file over MAX_UPLOAD_BYTES with 413 TOO_LARGE, leaving no file and no row, and counts it', async () => {
    const before = await stored();
    const rowsBefore = await fileRows();
    const res = await upload(gateways[0]!, alice, roomId, multipart('big.bin', 'application/octet-stream', generated(MAX_UPLOAD_BYTES + 1, 2)));
    expect([res.status, await res.json()]).toEqual([413, { code: 'TOO_LARGE', message: `file over ${MAX_UPLOAD_BYTES} bytes` }]);
    expect(await stored()).toEqual(before);
    expect(await fileRows()).toBe(rowsBefore);

    // Answered as the bytes pass the limit, while the client still holds the rest of its body back.
    const stalled = await upload(
      gateways[0]!,
      alice,
      roomId,
      multipart('bigger.bin', 'application/octet-stream', generated(MAX_UPLOAD_BYTES + 256 * 1024, 3), new Promise<void>(() => {})),
    );
    expect([stalled.status, stalled.headers.get('connection'), await stalled.json()]).toEqual([
      413,
      'close',
      { code: 'TOO_LARGE', message: `file over ${MAX_UPLOAD_BYTES} bytes` },
    ]);
    expect(await stored()).toEqual(before);
    expect(await fileRows()).toBe(rowsBefore);
    const metrics = await (await fetch(`${gateways[0]!.url}/metrics`)).text();
    expect(metrics).toMatch(/chat_limit_refusals_total\{[^}]*limit="upload_bytes"[^}]*\} 2\n/);

    const exact = await upload(gateways[0]!, alice, roomId, multipart('edge.bin', 'application/octet-stream', generated(MAX_UPLOAD_BYTES, 2)));
    expect(exact.status).toBe(201);
  });

  it('leaves nothing behind when the client goes away mid-upload', async () => {
    const before = await stored();
    const rowsBefore = await fileRows();
    const abort = new AbortController();
    let release!: () => void;
    const stall = new Promise<void>((resolve) => (release = resolve));
    const sending = upload(gateways[0]!, alice, roomId, multipart('gone.bin', 'application/octet-stream', generated(256 * 1024, 3), stall), abort.signal);
    // The server has started writing it…
    await vi.waitFor(async () => expect((await stored()).filter((f) => f.endsWith('.part'))).toHaveLength(1), { timeout: 10_000 });
    abort.abort();
    await expect(sending).rejects.toThrow();
    release();
    // …and removes it once the connection is gone.
    await vi.waitFor(async () => expect(await stored()).toEqual(before), { timeout: 10_000 });
    expect(await fileRows()).toBe(rowsBefore);
  });

  it('carries the file in a RESOURCE event; a fileId of another room or an unknown one is BAD_REQUEST', async () => {
    const res = await upload(gateways[0]!, alice, roomId, multipart('doc.pdf', 'application/pdf', [Buffer.from('%PDF-1.7')]));
    const file = (await res.json()) as FileAnswer;
    const otherRoom = await api<{ id: string }>(gateways[0]!.url, 'POST', '/api/rooms', { kind: 'group', name: 'other' }, alice.accessToken);
    const elsewhere = (await (await upload(gateways[0]!, alice, otherRoom.body.id, multipart('o.txt', 'text/plain', [Buffer.from('o')]))).json()) as FileAnswer;

    const reader = await connectAs(gateways[gateways.length - 1]!, bob);
    const sender = await connectAs(gateways[0]!, alice);
    try {
      await reader.subscribeConfirmed(`/topic/rooms.${roomId}`);
      await sender.watchErrors();
      await sender.sendConfirmed(`/app/rooms.${roomId}.send`, { type: 'RESOURCE', fileId: file.fileId });
      await reader.until(() => reader.events(`/topic/rooms.${roomId}`).some((e) => e.type === 'RESOURCE'));
      const events = reader.events(`/topic/rooms.${roomId}`).filter((e) => e.type === 'RESOURCE');
      expect(events).toEqual([expect.objectContaining({ type: 'RESOURCE', roomId, sender: { id: alice.id, username: alice.username }, file })]);

      const refused = [
        ['other-room', { type: 'RESOURCE', fileId: elsewhere.fileId }],
        ['unknown', { type: 'RESOURCE', fileId: '00000000-0000-4000-8000-000000000000' }],
        ['not-an-id', { type: 'RESOURCE', fileId: 'x' }],
      ] as const;
      for (const [code, body] of refused) sender.send(`/app/rooms.${roomId}.send`, body, { 'client-request-code': code });
      await sender.until(() => sender.errors.length === refused.length);
      expect(sender.errors.map((e) => [e.code, e.clientRequestCode])).toEqual(refused.map(([code]) => ['BAD_REQUEST', code]));
    } finally {
      await reader.disconnect();
      await sender.disconnect();
    }
  });

  it('removes the file (row and bytes) once no live RESOURCE message references it any more', async () => {
    const res = await upload(gateways[0]!, alice, roomId, multipart('shared.txt', 'text/plain', [Buffer.from('sent twice')]));
    const file = (await res.json()) as FileAnswer;
    const before = await stored();
    const rowsBefore = await fileRows();
    const reader = await connectAs(gateways[gateways.length - 1]!, bob);
    const sender = await connectAs(gateways[0]!, alice);
    try {
      await reader.subscribeConfirmed(`/topic/rooms.${roomId}`);
      const sent = () => reader.events(`/topic/rooms.${roomId}`).filter((e) => e.type === 'RESOURCE' && (e.file as FileAnswer | undefined)?.fileId === file.fileId);
      await sender.sendConfirmed(`/app/rooms.${roomId}.send`, { type: 'RESOURCE', fileId: file.fileId });
      await sender.sendConfirmed(`/app/rooms.${roomId}.send`, { type: 'RESOURCE', fileId: file.fileId });
      await reader.until(() => sent().length === 2);
      const [first, second] = sent().map((e) => e.id as string);

      // Still referenced by the second message: kept.
      await sender.sendConfirmed(`/app/rooms.${roomId}.delete`, { messageId: first });
      expect((await download(gateways[gateways.length - 1]!, bob, file.fileId)).status).toBe(200);
      expect(await stored()).toEqual(before);

      await sender.sendConfirmed(`/app/rooms.${roomId}.delete`, { messageId: second });
      for (const g of gateways) {
        const gone = await download(g, bob, file.fileId);
        expect([gone.status, await gone.json()]).toEqual([404, { code: 'NOT_FOUND', message: `no such file ${file.fileId}` }]);
      }
      expect(await stored()).toHaveLength(before.length - 1);
      expect(await fileRows()).toBe(rowsBefore === undefined ? undefined : rowsBefore - 1);
    } finally {
      await reader.disconnect();
      await sender.disconnect();
    }
  });

  it('refuses the upload past UPLOADS_PER_MINUTE per user with 429 RATE_LIMITED (on any gateway), storing nothing', async () => {
    const carol = await newUser(gateways[0]!.url, 'fc');
    const { body: own } = await api<{ id: string }>(gateways[0]!.url, 'POST', '/api/rooms', { kind: 'group', name: 'carol' }, carol.accessToken);
    for (let i = 0; i < UPLOADS_PER_MINUTE; i++) {
      const ok = await upload(gateways[i % gateways.length]!, carol, own.id, multipart(`n${i}.txt`, 'text/plain', [Buffer.from(`${i}`)]));
      expect(ok.status).toBe(201);
    }
    const before = await stored();
    const rowsBefore = await fileRows();
    const last = gateways[gateways.length - 1]!;
    // Refused before the body is read: the client still holds it back.
    const refused = await upload(last, carol, own.id, multipart('one-more.txt', 'text/plain', [Buffer.from('x')], new Promise<void>(() => {})));
    expect([refused.status, refused.headers.get('retry-after'), await refused.json()]).toEqual([
      429,
      expect.stringMatching(/^[1-9][0-9]*$/),
      { code: 'RATE_LIMITED', message: expect.stringMatching(/^too many attempts; retry in [1-9][0-9]* s$/) },
    ]);
    expect(await stored()).toEqual(before);
    expect(await fileRows()).toBe(rowsBefore);
    expect(await (await fetch(`${last.url}/metrics`)).text()).toMatch(/chat_limit_refusals_total\{[^}]*limit="upload_rate"[^}]*\} 1\n/);
  });

  it('refuses an upload past UPLOAD_QUOTA_BYTES per user with 413 TOO_LARGE: by Content-Length first, else as bytes arrive', async () => {
    const dave = await newUser(gateways[0]!.url, 'fd');
    const { body: own } = await api<{ id: string }>(gateways[0]!.url, 'POST', '/api/rooms', { kind: 'group', name: 'dave' }, dave.accessToken);
    const g = gateways[0]!;
    for (const seed of [4, 5]) {
      const ok = await upload(g, dave, own.id, multipart(`q${seed}.bin`, 'application/octet-stream', generated(MAX_UPLOAD_BYTES, seed)));
      expect(ok.status).toBe(201);
    }
    const left = QUOTA_BYTES - 2 * MAX_UPLOAD_BYTES;
    const before = await stored();
    const rowsBefore = await fileRows();
    const quota = { code: 'TOO_LARGE', message: `upload quota of ${QUOTA_BYTES} bytes reached` };

    // Content-Length says too much: refused before a byte of the body is read (the client holds it all back).
    const declared = await upload(
      g,
      dave,
      own.id,
      multipart('declared.bin', 'application/octet-stream', [], new Promise<void>(() => {})),
      undefined,
      left + 1 + multipartOverhead('declared.bin', 'application/octet-stream'),
    );
    expect([declared.status, declared.headers.get('connection'), await declared.json()]).toEqual([413, 'close', quota]);
    // No Content-Length (chunked): refused as the bytes pass what is left.
    const streamed = await upload(g, dave, own.id, multipart('streamed.bin', 'application/octet-stream', generated(left + 1, 6)));
    expect([streamed.status, await streamed.json()]).toEqual([413, quota]);
    expect(await stored()).toEqual(before);
    expect(await fileRows()).toBe(rowsBefore);
    expect(await (await fetch(`${g.url}/metrics`)).text()).toMatch(/chat_limit_refusals_total\{[^}]*limit="upload_quota"[^}]*\} 2\n/);

    const fits = await upload(g, dave, own.id, multipart('fits.bin', 'application/octet-stream', generated(left, 7)));
    expect(fits.status).toBe(201);
    const full = await upload(g, dave, own.id, multipart('one.bin', 'application/octet-stream', [Buffer.from('1')]));
    expect([full.status, await full.json()]).toEqual([413, quota]);
  });

  it('sweeps uploads no message references once UPLOAD_ORPHAN_TTL_S old (row and bytes), on any gateway, twice harmlessly', async () => {
    const orphan = (await (await upload(gateways[0]!, alice, roomId, multipart('never-sent.txt', 'text/plain', [Buffer.from('orphan')]))).json()) as FileAnswer;
    const kept = (await (await upload(gateways[0]!, alice, roomId, multipart('sent.txt', 'text/plain', [Buffer.from('kept')]))).json()) as FileAnswer;
    const sender = await connectAs(gateways[0]!, alice);
    try {
      await sender.sendConfirmed(`/app/rooms.${roomId}.send`, { type: 'RESOURCE', fileId: kept.fileId });
    } finally {
      await sender.disconnect();
    }
    const last = gateways[gateways.length - 1]!;
    // Not yet old enough.
    now = Date.now();
    await last.gateway.files.sweep();
    expect((await download(last, bob, orphan.fileId)).status).toBe(200);

    now = Date.now() + ORPHAN_TTL_S * 1000 + 1000;
    await last.gateway.files.sweep();
    await gateways[0]!.gateway.files.sweep();
    const gone = await download(gateways[0]!, bob, orphan.fileId);
    expect([gone.status, await gone.json()]).toEqual([404, { code: 'NOT_FOUND', message: `no such file ${orphan.fileId}` }]);
    expect([(await download(gateways[0]!, bob, kept.fileId)).status]).toEqual([200]);
    // Every earlier test's unsent upload went too: left are the files of live RESOURCE messages ('doc.pdf' and this one).
    expect(await stored()).toHaveLength(2);
    expect(await fileRows()).toBe(databaseUrl ? 2 : undefined);
  });
});
