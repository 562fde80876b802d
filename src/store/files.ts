import { ChatError } from '../contract/errors.ts';
import type { FileRef } from '../contract/events.ts';
import { Prisma, type PrismaClient } from '../generated/prisma/client.ts';
import { isUuid } from './uuid.ts';
import type { z } from 'zod';

/** A `File` row: what a client named and declared, and where and what the bytes are in the FileStore. */
export interface FileRecord {
  id: string;
  roomId: string;
  name: string;
  size: number;
  contentType: string;
  storageKey: string;
  sha256: string;
}

export type NewFile = Omit<FileRecord, 'id'> & { uploaderId: string };

/** The `file` of a RESOURCE event and the upload's answer. */
export const fileRef = (f: FileRecord): z.infer<typeof FileRef> => ({ fileId: f.id, name: f.name, size: f.size, contentType: f.contentType });

/** Uploaded files' rows; their bytes are in the FileStore under `storageKey`. */
export class FileRecordStore {
  constructor(private readonly prisma: PrismaClient) {}

  async create(input: NewFile): Promise<FileRecord> {
    return toRecord(await this.prisma.file.create({ data: { ...input, size: BigInt(input.size) } }));
  }

  /** @throws ChatError NOT_FOUND when there is no such file. */
  async get(id: string): Promise<FileRecord> {
    const row = isUuid(id) ? await this.prisma.file.findUnique({ where: { id } }) : null;
    if (!row) throw new ChatError('NOT_FOUND', `no such file ${id}`);
    return toRecord(row);
  }

  /** The file of deleted message `messageId`, once no live message references it any more. */
  async releasedBy(messageId: string): Promise<StoredFile[]> {
    if (!isUuid(messageId)) return [];
    return this.prisma.$queryRaw<StoredFile[]>`
      SELECT f.id, f."storageKey" FROM "File" f JOIN "Message" m ON m."fileId" = f.id
      WHERE m.id = ${messageId}::uuid AND m."deletedAt" IS NOT NULL AND ${UNREFERENCED}`;
  }

  /** Up to `limit` files created before `before` that no live message references (never sent, or their messages deleted). */
  orphans(before: Date, limit: number): Promise<StoredFile[]> {
    return this.prisma.$queryRaw<StoredFile[]>`
      SELECT f.id, f."storageKey" FROM "File" f
      WHERE f."createdAt" < ${before.toISOString()}::timestamptz AND ${UNREFERENCED}
      LIMIT ${limit}::int`;
  }

  /** Bytes of the files `uploaderId` has stored. */
  async bytesOf(uploaderId: string): Promise<number> {
    const sum = await this.prisma.file.aggregate({ where: { uploaderId }, _sum: { size: true } });
    return Number(sum._sum.size ?? 0n);
  }

  /** Deleting rows already gone is not an error (another gateway may have removed them first). */
  async remove(ids: string[]): Promise<void> {
    if (ids.length > 0) await this.prisma.file.deleteMany({ where: { id: { in: ids } } });
  }
}

/** A file's row id and where its bytes are. */
export interface StoredFile {
  id: string;
  storageKey: string;
}

/** File `f` is referenced by no message that is not deleted. */
const UNREFERENCED = Prisma.sql`NOT EXISTS (SELECT 1 FROM "Message" o WHERE o."fileId" = f.id AND o."deletedAt" IS NULL)`;

const toRecord = (row: Omit<FileRecord, 'size'> & { size: bigint }): FileRecord => ({
  id: row.id,
  roomId: row.roomId,
  name: row.name,
  size: Number(row.size),
  contentType: row.contentType,
  storageKey: row.storageKey,
  sha256: row.sha256,
});
