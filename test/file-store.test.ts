import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiskFileStore } from '../src/files/disk-file-store.ts';
import type { FileStore } from '../src/files/file-store.ts';

const bytesOf = async (stream: Readable): Promise<Buffer> => Buffer.concat(await stream.toArray());

/** The FileStore contract, over the disk engine in a fresh directory. */
describe('DiskFileStore', () => {
  let dir: string;
  let store: FileStore;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chat-files-'));
    store = await DiskFileStore.open(join(dir, 'files'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('stores a stream under a new key with its size and SHA-256, and reads it back whole', async () => {
    const content = randomBytes(300_000);
    const chunks = [content.subarray(0, 1000), content.subarray(1000, 200_000), content.subarray(200_000)];
    const stored = await store.write(Readable.from(chunks));
    expect(stored).toEqual({ key: expect.stringMatching(/^[0-9a-f-]{36}$/), size: content.length, sha256: createHash('sha256').update(content).digest('hex') });
    expect((await bytesOf(store.read(stored.key))).equals(content)).toBe(true);
    const other = await store.write(Readable.from([content]));
    expect(other.key).not.toBe(stored.key);
  });

  it('reads a byte range, both ends included', async () => {
    const { key } = await store.write(Readable.from([Buffer.from('0123456789')]));
    expect(await text(store.read(key, { start: 2, end: 5 }))).toBe('2345');
    expect(await text(store.read(key, { start: 9, end: 9 }))).toBe('9');
  });

  it('stores an empty stream as an empty file', async () => {
    const stored = await store.write(Readable.from([]));
    expect(stored.size).toBe(0);
    expect((await bytesOf(store.read(stored.key))).length).toBe(0);
  });

  it('leaves nothing behind when the source fails midway', async () => {
    const before = await readdir(join(dir, 'files'));
    async function* failing() {
      yield randomBytes(64 * 1024);
      throw new Error('client went away');
    }
    await expect(store.write(Readable.from(failing()))).rejects.toThrow('client went away');
    expect(await readdir(join(dir, 'files'))).toEqual(before);
  });

  it('deletes, after which reading fails with ENOENT; deleting again is fine', async () => {
    const { key } = await store.write(Readable.from([Buffer.from('bye')]));
    await store.delete(key);
    await expect(bytesOf(store.read(key))).rejects.toMatchObject({ code: 'ENOENT' });
    await store.delete(key);
  });

  it('refuses a key it did not make (no path from outside)', async () => {
    expect(() => store.read('../../etc/passwd')).toThrow('not a file store key');
    await expect(store.delete('../x')).rejects.toThrow('not a file store key');
  });
});
