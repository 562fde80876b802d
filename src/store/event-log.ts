import type { RoomEvent } from '../contract/events.ts';
import { Prisma, type EventType } from '../generated/prisma/client.ts';

/**
 * The room event log: every event that changes a room's history takes the room's next seq in the same statement
 * that stores it, so seqs are gap-free and unique however many senders race (the room row is locked until commit,
 * and a failing statement takes no seq).
 */

/** The STOMP session and its per-session seq that caused an event; replayed copies carry it as live ones do. */
export type Origin = { session: string; seq: number };

export type StoredEvent = { event: RoomEvent; senderSession: string; senderSeq: number };

/** What a logging statement returns, and what `toStoredEvent` reads. */
export type LoggedRow = { payload: unknown; senderSession: string; senderSeq: number };

export interface LogEvent {
  roomId: string;
  type: EventType;
  /** SQL condition; no seq is taken and nothing is logged unless it holds. */
  guard: Prisma.Sql;
  /** The event without `seq` (added here) and without what `extra` adds. */
  event: Record<string, unknown>;
  /** A jsonb expression merged into the event, for fields only the database knows. */
  extra?: Prisma.Sql;
  origin: Origin;
  at: Date;
}

/**
 * Two CTEs for a `WITH` list: `next` (the seq taken) and `logged` (the stored event, as `LoggedRow`).
 * Statements end with `SELECT payload, "senderSession", "senderSeq" FROM logged`.
 */
export function logEventCtes(e: LogEvent): Prisma.Sql {
  return Prisma.sql`
    next AS (
      UPDATE "Room" SET "lastSeq" = "lastSeq" + 1
      WHERE id = ${e.roomId}::uuid AND ${e.guard}
      RETURNING "lastSeq" AS seq
    ),
    logged AS (
      INSERT INTO "RoomEvent" ("roomId", seq, type, payload, "senderSession", "senderSeq", "createdAt")
      SELECT ${e.roomId}::uuid, next.seq, ${e.type}::"EventType",
             ${JSON.stringify(e.event)}::jsonb || jsonb_build_object('seq', next.seq) || ${e.extra ?? Prisma.sql`'{}'::jsonb`},
             ${e.origin.session}, ${e.origin.seq}::int, ${e.at.toISOString()}::timestamptz
      FROM next
      RETURNING payload, "senderSession", "senderSeq"
    )`;
}

export const SELECT_LOGGED = Prisma.sql`SELECT payload, "senderSession", "senderSeq" FROM logged`;

export function toStoredEvent(row: LoggedRow): StoredEvent {
  return { event: row.payload as RoomEvent, senderSession: row.senderSession, senderSeq: row.senderSeq };
}
