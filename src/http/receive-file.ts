import busboy from 'busboy';
import type { Request } from 'express';
import type { Readable } from 'node:stream';
import { ChatError } from '../contract/errors.ts';
import type { FileStore, StoredContent } from '../files/file-store.ts';

/** One file received from a multipart body: the client's name and type for it (metadata only) and what was stored. */
export interface ReceivedFile {
  name: string;
  contentType: string;
  stored: StoredContent;
}

/** Longest file name kept; longer ones are cut (it is a label, and it goes into a header on download). */
const MAX_NAME_CHARS = 255;

/**
 * Stream the multipart field `file` of `req` into `store`, never whole in memory. Past `maxBytes` the upload stops as
 * the bytes arrive (TOO_LARGE); a client gone mid-upload, a malformed body or no `file` field: BAD_REQUEST. On any
 * failure nothing stays in the store. Other fields and files are read and dropped.
 */
export async function receiveFile(req: Request, store: FileStore, maxBytes: number): Promise<ReceivedFile> {
  let parser: busboy.Busboy;
  try {
    // busboy signals `limit` on reaching fileSize, so one byte more: a file of exactly maxBytes is allowed. Browsers
    // send file names as raw UTF-8; busboy keeps only their last path segment.
    parser = busboy({ headers: req.headers, limits: { fileSize: maxBytes + 1, files: 1 }, defParamCharset: 'utf8' });
  } catch {
    throw new ChatError('BAD_REQUEST', 'expected a multipart/form-data body with a field "file"');
  }
  let current: Readable | undefined;
  let writing: Promise<ReceivedFile> | undefined;
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on('file', (field, stream, info) => {
      if (field !== 'file' || writing) return void stream.resume();
      current = stream;
      // busboy would cut the file short and go on: stop instead, so the store drops what it has.
      stream.on('limit', () => reject(new ChatError('TOO_LARGE', `file over ${maxBytes} bytes`)));
      const name = (info.filename ?? 'file').slice(0, MAX_NAME_CHARS);
      const contentType = info.mimeType || 'application/octet-stream';
      writing = store.write(stream).then((stored) => ({ name, contentType, stored }));
      writing.catch(reject);
    });
    parser.on('close', resolve);
    parser.on('error', (err: Error) => reject(new ChatError('BAD_REQUEST', `malformed multipart body: ${err.message}`)));
    req.on('close', () => {
      if (!req.complete) reject(new ChatError('BAD_REQUEST', 'upload aborted'));
    });
  });
  req.pipe(parser);
  try {
    await parsed;
    if (!writing) throw new ChatError('BAD_REQUEST', 'no multipart field "file"');
    return await writing;
  } catch (err) {
    req.unpipe(parser);
    current?.destroy(err as Error);
    // A write that finished before the failure (a bad part after the file) is removed; one that did not cleans itself.
    await writing?.then(({ stored }) => store.delete(stored.key), () => {});
    throw err;
  }
}
