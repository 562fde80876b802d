import type { PrismaClient } from '../generated/prisma/client.ts';
import { toStoredEvent, type LoggedRow, type StoredEvent } from './event-log.ts';

/** A room event's key in the log. */
export interface EventKey {
  roomId: string;
  seq: number;
}

/**
 * Which room events the broker has confirmed. Every event is logged unpublished (`published` defaults to false);
 * confirms are marked in batches, one statement per batch, so the hot path stays one statement per event. Only
 * unpublished rows are in the partial index the sweep reads.
 */
export class OutboxStore {
  constructor(private readonly prisma: PrismaClient) {}

  /** Marks `keys` published, in one statement however many. */
  async markPublished(keys: readonly EventKey[]): Promise<void> {
    if (keys.length === 0) return;
    await this.prisma.$executeRaw`
      UPDATE "RoomEvent" e SET published = true
      FROM unnest(${keys.map((k) => k.roomId)}::uuid[], ${keys.map((k) => k.seq)}::int[]) AS k("roomId", seq)
      WHERE e."roomId" = k."roomId" AND e.seq = k.seq AND NOT e.published`;
  }

  /** Up to `limit` unpublished events stored before `storedBefore`, in seq order within each room. */
  async unpublished(storedBefore: Date, limit: number): Promise<StoredEvent[]> {
    const rows = await this.prisma.$queryRaw<LoggedRow[]>`
      SELECT payload, "senderSession", "senderSeq" FROM "RoomEvent"
      WHERE NOT published AND "createdAt" < ${storedBefore.toISOString()}::timestamptz
      ORDER BY "roomId", seq
      LIMIT ${limit}::int`;
    return rows.map(toStoredEvent);
  }
}
