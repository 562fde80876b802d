import { Router, type Request, type Response } from 'express';
import { pipeline } from 'node:stream/promises';
import type { RoomService } from '../app/rooms.ts';
import type { AuditLog } from '../audit.ts';
import { RateLimited } from '../auth/auth-limits.ts';
import type { TokenService } from '../auth/tokens.ts';
import { ChatError } from '../contract/errors.ts';
import type { FileStore } from '../files/file-store.ts';
import type { UploadLimits } from '../files/upload-limits.ts';
import type { LimitName, Metrics } from '../metrics.ts';
import { fileRef, type FileRecordStore } from '../store/files.ts';
import { clientAddress } from './api.ts';
import { principalOf, requireUser } from './authenticate.ts';
import { receiveFile } from './receive-file.ts';

export interface FileRoutesOptions {
  tokens: TokenService;
  service: RoomService;
  files: FileRecordStore;
  store: FileStore;
  maxUploadBytes: number;
  /** Bytes one user's stored files may add up to. */
  quotaBytes: number;
  limits: UploadLimits;
  metrics: Metrics;
  audit: AuditLog;
}

/**
 * `POST /rooms/:id/files` (upload into a room) and `GET /files/:id` (download), both for the room's members only.
 * Mounted at /api; each route authenticates itself, so other /api paths pass through untouched.
 */
export function fileRoutes(o: FileRoutesOptions): Router {
  const router = Router();
  const auth = requireUser(o.tokens, o.audit);

  router.post('/rooms/:id/files', auth, async (req, res) => {
    const roomId = req.params.id as string;
    const { userId, username } = principalOf(res);
    /** Counted, logged, and answered with the connection closed: the rest of the body is not read. */
    const refuse = (limit: LimitName, err: ChatError): ChatError => {
      o.metrics.refused(limit);
      o.audit.record('limit_refused', { user: username, ip: clientAddress(req), limit, reason: err.message });
      res.set('Connection', 'close');
      if (err instanceof RateLimited) res.set('Retry-After', String(err.retryAfterS));
      return err;
    };
    await o.limits.start(userId).catch((err: unknown) => {
      throw err instanceof RateLimited ? refuse('upload_rate', err) : err;
    });
    await o.service.requireMember(roomId, userId);
    const left = o.quotaBytes - (await o.files.bytesOf(userId));
    const overQuota = () => new ChatError('TOO_LARGE', `upload quota of ${o.quotaBytes} bytes reached`);
    // Content-Length counts the multipart framing too (a few hundred bytes): close to the quota, a file that would
    // just fit is refused.
    if (left <= 0 || declaredLength(req) > left) throw refuse('upload_quota', overQuota());
    const quotaBinds = left < o.maxUploadBytes;
    const received = await receiveFile(req, o.store, Math.min(o.maxUploadBytes, left)).catch((err: unknown) => {
      if (err instanceof ChatError && err.code === 'TOO_LARGE') throw quotaBinds ? refuse('upload_quota', overQuota()) : refuse('upload_bytes', err);
      throw err;
    });
    const { name, contentType, stored } = received;
    const row = await o.files
      .create({ roomId, uploaderId: userId, name, size: stored.size, contentType, storageKey: stored.key, sha256: stored.sha256 })
      .catch(async (err: unknown) => {
        await o.store.delete(stored.key);
        throw err;
      });
    res.status(201).json(fileRef(row));
  });

  router.get('/files/:id', auth, async (req, res) => {
    const file = await o.files.get(req.params.id as string);
    await o.service.requireMember(file.roomId, principalOf(res).userId);
    const etag = `"${file.sha256}"`;
    res.set({ ETag: etag, 'Cache-Control': 'private, no-cache', 'Accept-Ranges': 'bytes', 'X-Content-Type-Options': 'nosniff' });
    if (matchesEtag(req.get('if-none-match'), etag)) return void res.status(304).end();
    const ranges = req.get('range') === undefined ? undefined : req.range(file.size);
    if (ranges === -1) {
      res.status(416).set('Content-Range', `bytes */${file.size}`);
      return void res.json({ code: 'BAD_REQUEST', message: `the range starts past the file's ${file.size} bytes` });
    }
    // One range is served as 206; a malformed header or several ranges get the whole file (RFC 9110 allows it).
    const range = Array.isArray(ranges) && ranges.type === 'bytes' && ranges.length === 1 ? ranges[0]! : undefined;
    if (range) res.status(206).set('Content-Range', `bytes ${range.start}-${range.end}/${file.size}`);
    res.set({
      'Content-Length': String(range ? range.end - range.start + 1 : file.size),
      'Content-Disposition': attachment(file.name),
    });
    // As uploaded: res.set would append a charset to text types, claiming an encoding nobody checked.
    res.setHeader('Content-Type', file.contentType);
    await send(res, o.store.read(file.storageKey, range));
  });

  return router;
}

/** The request's Content-Length, or 0 when it sends none (chunked): then only the bytes as they arrive count. */
function declaredLength(req: Request): number {
  const n = Number(req.get('content-length'));
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

/** Stream a body; an error before the first byte goes to the error mapping, one after it cuts the response. */
async function send(res: Response, body: NodeJS.ReadableStream): Promise<void> {
  try {
    await pipeline(body, res);
  } catch (err) {
    if (!res.headersSent) throw err;
    res.destroy();
  }
}

/** `If-None-Match` as a list of entity tags (weak ones compare equal by their opaque part). */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === etag;
  });
}

/**
 * `Content-Disposition: attachment` naming the file safely: an ASCII `filename` with anything that could break out
 * of the quoted string or name a path replaced, and the exact name in RFC 5987 `filename*` for clients that read it.
 */
export function attachment(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\/%;]/g, '_').trim() || 'file';
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
