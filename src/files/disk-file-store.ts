import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ByteRange, FileStore, StoredContent } from './file-store.ts';

/** Keys this store makes: a UUID, so a key read back from the database can never name a path outside `dir`. */
const KEY = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Files under one directory (DATA_DIR/files), one file per key. A write goes to `<key>.part` and is renamed to
 * `<key>` only when complete, so a reader (on any gateway sharing the directory) never sees half a file.
 */
export class DiskFileStore implements FileStore {
  private constructor(private readonly dir: string) {}

  static async open(dir: string): Promise<DiskFileStore> {
    await mkdir(dir, { recursive: true });
    return new DiskFileStore(dir);
  }

  async write(content: Readable): Promise<StoredContent> {
    const key = randomUUID();
    const partial = join(this.dir, `${key}.part`);
    const hash = createHash('sha256');
    let size = 0;
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    try {
      await pipeline(content, hashing, createWriteStream(partial, { flags: 'wx' }));
      await rename(partial, this.path(key));
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    return { key, size, sha256: hash.digest('hex') };
  }

  read(key: string, range?: ByteRange): Readable {
    return createReadStream(this.path(key), range && { start: range.start, end: range.end });
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  private path(key: string): string {
    if (!KEY.test(key)) throw new Error(`not a file store key: ${key}`);
    return join(this.dir, key);
  }
}
