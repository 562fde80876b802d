import type { Readable } from 'node:stream';

/** What `write` stored: the key to read it by, its length and the hex SHA-256 of its bytes. */
export interface StoredContent {
  key: string;
  size: number;
  sha256: string;
}

/** Bytes `start` to `end`, both included (as in an HTTP `Range`). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Where uploaded files' bytes live. Keys are made here, never from a client's file name (names are metadata in the
 * `File` row), so no client string ever becomes a path.
 */
export interface FileStore {
  /**
   * Store `content` under a new key, hashing it as it streams (never whole in memory). Resolves once every byte is
   * durable and readable by `read`. If `content` errors or is destroyed first (a refused or aborted upload), rejects
   * with that error and leaves nothing stored.
   */
  write(content: Readable): Promise<StoredContent>;
  /** The stored bytes of `key`, or only `range` of them; the stream errors (ENOENT) when there is no such key. */
  read(key: string, range?: ByteRange): Readable;
  /** Remove `key`'s bytes; removing a missing key is not an error. */
  delete(key: string): Promise<void>;
}
