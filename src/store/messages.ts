import { randomUUID } from 'node:crypto';
import { ChatError } from '../contract/errors.ts';
import type { MESSAGE_TYPES, UserRef } from '../contract/events.ts';
import { Prisma, type PrismaClient } from '../generated/prisma/client.ts';
import { isDriverError } from './driver-errors.ts';
import { logEventCtes, SELECT_LOGGED, toStoredEvent, type LoggedRow, type Origin, type StoredEvent } from './event-log.ts';
import { isUuid } from './uuid.ts';

export type { Origin, StoredEvent };

export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface AppendInput {
  roomId: string;
  type: MessageType;
  sender: UserRef;
  text: string;
  replyTo?: string;
  fileId?: string;
  /** The sender's idempotency key: a second append with it returns the first one's event and takes no seq. */
  clientMsgId?: string;
  origin: Origin;
}

export interface EditInput {
  roomId: string;
  messageId: string;
  userId: string;
  text: string;
  origin: Origin;
}

export interface DeleteInput {
  roomId: string;
  messageId: string;
  userId: string;
  /** The user owns the room, and so may delete anyone's message. */
  isOwner: boolean;
  origin: Origin;
}

export interface HistoryPage {
  /** Only events with a smaller seq. Without `after`, the page is the newest such events. */
  before?: number;
  /** Only events with a greater seq; the page starts right after it. */
  after?: number;
  limit: number;
}

const isMember = (roomId: string, userId: string) =>
  Prisma.sql`EXISTS (SELECT 1 FROM "Membership" WHERE "roomId" = ${roomId}::uuid AND "userId" = ${userId}::uuid)`;
const messageInRoom = (roomId: string, messageId: string | null) =>
  Prisma.sql`EXISTS (SELECT 1 FROM "Message" WHERE id = ${messageId}::uuid AND "roomId" = ${roomId}::uuid)`;
const fileInRoom = (roomId: string, fileId: string | null) =>
  Prisma.sql`EXISTS (SELECT 1 FROM "File" WHERE id = ${fileId}::uuid AND "roomId" = ${roomId}::uuid)`;
/** The event's `file` (FileRef), as jsonb. */
const fileRef = (fileId: string) => Prisma.sql`(
  SELECT jsonb_build_object('file', jsonb_build_object(
    'fileId', f.id, 'name', f.name, 'size', f.size, 'contentType', f."contentType"))
  FROM "File" f WHERE f.id = ${fileId}::uuid)`;

/**
 * Event `e`'s body with its message's current state from "Message" (which edits and deletes keep up to date);
 * events that are not messages (EDIT, DELETE, ENTER, LEAVE) as logged. `editedAt` is written as EDIT events write it.
 */
const CURRENT_STATE = Prisma.sql`COALESCE((
  SELECT CASE
    WHEN m."deletedAt" IS NOT NULL THEN (e.payload - 'text' - 'file') || '{"deleted": true}'::jsonb
    WHEN m."editedAt" IS NOT NULL THEN e.payload || jsonb_build_object(
      'text', m.text, 'editedAt', to_char(m."editedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
    ELSE e.payload
  END
  FROM "Message" m WHERE m."roomId" = e."roomId" AND m.seq = e.seq
), e.payload)`;

/** Messages and their edits and deletions, each logged as a room event (see event-log.ts). */
export class MessageStore {
  constructor(private readonly prisma: PrismaClient) {}

  /**
   * Stores a message and logs its event in one statement (the hot path: one round trip).
   * @throws ChatError NOT_FOUND (room or reply target not in the room), BAD_REQUEST (fileId names no file of the room), FORBIDDEN (sender not a member).
   */
  async append(input: AppendInput): Promise<{ stored: StoredEvent; duplicate: boolean }> {
    const { roomId, type, sender, text, origin } = input;
    const replyTo = input.replyTo ?? null;
    const fileId = input.fileId ?? null;
    const clientMsgId = input.clientMsgId ?? null;
    if (!isUuid(roomId)) throw new ChatError('NOT_FOUND', 'no such room');
    if (replyTo !== null && !isUuid(replyTo)) throw new ChatError('NOT_FOUND', 'replyTo: no such message in this room');
    if (fileId !== null && !isUuid(fileId)) throw new ChatError('BAD_REQUEST', 'fileId: no such file in this room');

    const id = randomUUID();
    const at = new Date();
    const event = {
      type,
      id,
      roomId,
      sender: { id: sender.id, username: sender.username },
      text,
      ...(replyTo !== null && { replyTo }),
      createdAt: at.toISOString(),
    };
    let rows: LoggedRow[];
    try {
      rows = await this.prisma.$queryRaw<LoggedRow[]>`
        WITH ${logEventCtes({
          roomId,
          type,
          event,
          origin,
          at,
          // Plain messages, the most common, get the shortest statement.
          guard: Prisma.join(
            [
              isMember(roomId, sender.id),
              ...(replyTo === null ? [] : [messageInRoom(roomId, replyTo)]),
              ...(fileId === null ? [] : [fileInRoom(roomId, fileId)]),
            ],
            ' AND ',
          ),
          ...(fileId !== null && { extra: fileRef(fileId) }),
        })},
        message AS (
          INSERT INTO "Message" (id, "roomId", seq, "senderId", type, text, "replyToId", "fileId", "clientMsgId", "createdAt")
          SELECT ${id}::uuid, ${roomId}::uuid, next.seq, ${sender.id}::uuid, ${type}::"EventType", ${text},
                 ${replyTo}::uuid, ${fileId}::uuid, ${clientMsgId}, ${at.toISOString()}::timestamptz
          FROM next
        )
        ${SELECT_LOGGED}`;
    } catch (err) {
      // A retried send breaks (roomId, senderId, clientMsgId) unique: the statement, its seq included, rolled back;
      // the answer is the original.
      const original = clientMsgId !== null && isDriverError(err, 'UniqueConstraintViolation')
        ? await this.findByClientMsgId(roomId, sender.id, clientMsgId)
        : null;
      if (original === null) throw err;
      return { stored: original, duplicate: true };
    }
    const row = rows[0];
    if (row !== undefined) return { stored: toStoredEvent(row), duplicate: false };
    throw await this.whyNotAppended(roomId, sender.id, replyTo, fileId);
  }

  /**
   * Changes the text of one's own message and logs an EDIT.
   * @throws ChatError NOT_FOUND (no such message, or deleted), FORBIDDEN (not the sender, or not a member).
   */
  async edit(input: EditInput): Promise<StoredEvent> {
    const { roomId, messageId, userId, text, origin } = input;
    if (!isUuid(roomId) || !isUuid(messageId)) throw new ChatError('NOT_FOUND', 'no such message');
    const at = new Date();
    const rows = await this.prisma.$queryRaw<LoggedRow[]>`
      WITH target AS (
        UPDATE "Message" SET text = ${text}, "editedAt" = ${at.toISOString()}::timestamptz
        WHERE id = ${messageId}::uuid AND "roomId" = ${roomId}::uuid AND "deletedAt" IS NULL
          AND "senderId" = ${userId}::uuid AND ${isMember(roomId, userId)}
        RETURNING id
      ),
      ${logEventCtes({
        roomId,
        type: 'EDIT',
        guard: Prisma.sql`EXISTS (SELECT 1 FROM target)`,
        event: { type: 'EDIT', roomId, messageId, text, editedAt: at.toISOString() },
        origin,
        at,
      })}
      ${SELECT_LOGGED}`;
    const row = rows[0];
    if (row !== undefined) return toStoredEvent(row);
    throw await this.whyNotChanged(roomId, messageId, userId, 'only its sender may edit a message');
  }

  /**
   * Deletes one's own message (any message, for the room owner) and logs a DELETE. The text is not served again:
   * the message's original event keeps its identity but loses its text and file.
   * @throws ChatError NOT_FOUND (no such message, or already deleted), FORBIDDEN (not allowed, or not a member).
   */
  async delete(input: DeleteInput): Promise<StoredEvent> {
    const { roomId, messageId, userId, isOwner, origin } = input;
    if (!isUuid(roomId) || !isUuid(messageId)) throw new ChatError('NOT_FOUND', 'no such message');
    const at = new Date();
    const rows = await this.prisma.$queryRaw<LoggedRow[]>`
      WITH target AS (
        UPDATE "Message" SET text = '', "deletedAt" = ${at.toISOString()}::timestamptz
        WHERE id = ${messageId}::uuid AND "roomId" = ${roomId}::uuid AND "deletedAt" IS NULL
          AND ("senderId" = ${userId}::uuid OR ${isOwner}::boolean) AND ${isMember(roomId, userId)}
        RETURNING seq
      ),
      scrubbed AS (
        UPDATE "RoomEvent" e SET payload = (e.payload - 'file') || '{"text": ""}'::jsonb
        FROM target WHERE e."roomId" = ${roomId}::uuid AND e.seq = target.seq
      ),
      ${logEventCtes({
        roomId,
        type: 'DELETE',
        guard: Prisma.sql`EXISTS (SELECT 1 FROM target)`,
        event: { type: 'DELETE', roomId, messageId },
        origin,
        at,
      })}
      ${SELECT_LOGGED}`;
    const row = rows[0];
    if (row !== undefined) return toStoredEvent(row);
    throw await this.whyNotChanged(roomId, messageId, userId, 'only its sender or the room owner may delete a message');
  }

  /**
   * A page of the room's events, in ascending seq, as people read them: each message as it is now (its latest text
   * and `editedAt` once edited; `deleted: true` and neither text nor file once deleted). EDIT and DELETE events stay
   * in the page, at their seqs.
   */
  history(roomId: string, page: HistoryPage): Promise<StoredEvent[]> {
    return this.page(roomId, page, CURRENT_STATE);
  }

  /** Up to `limit` events with a seq greater than `seq`, ascending, as they were sent: what a resuming subscriber missed. */
  since(roomId: string, seq: number, limit: number): Promise<StoredEvent[]> {
    return this.page(roomId, { after: seq, limit }, Prisma.sql`e.payload`);
  }

  /** One bounded statement; `payload` is the SQL for each event `e`'s body. */
  private async page(roomId: string, page: HistoryPage, payload: Prisma.Sql): Promise<StoredEvent[]> {
    if (!isUuid(roomId)) return [];
    const { before, after, limit } = page;
    const newestFirst = after === undefined;
    const rows = await this.prisma.$queryRaw<LoggedRow[]>`
      SELECT ${payload} AS payload, e."senderSession", e."senderSeq"
      FROM "RoomEvent" e
      WHERE e."roomId" = ${roomId}::uuid
        ${after === undefined ? Prisma.empty : Prisma.sql`AND e.seq > ${after}::int`}
        ${before === undefined ? Prisma.empty : Prisma.sql`AND e.seq < ${before}::int`}
      ORDER BY e.seq ${newestFirst ? Prisma.sql`DESC` : Prisma.sql`ASC`}
      LIMIT ${limit}::int`;
    if (newestFirst) rows.reverse();
    return rows.map(toStoredEvent);
  }

  private async findByClientMsgId(roomId: string, senderId: string, clientMsgId: string): Promise<StoredEvent | null> {
    const rows = await this.prisma.$queryRaw<LoggedRow[]>`
      SELECT e.payload, e."senderSession", e."senderSeq"
      FROM "Message" m JOIN "RoomEvent" e ON e."roomId" = m."roomId" AND e.seq = m.seq
      WHERE m."roomId" = ${roomId}::uuid AND m."senderId" = ${senderId}::uuid AND m."clientMsgId" = ${clientMsgId}`;
    return rows[0] === undefined ? null : toStoredEvent(rows[0]);
  }

  private async whyNotAppended(roomId: string, senderId: string, replyTo: string | null, fileId: string | null): Promise<ChatError> {
    const [state] = await this.prisma.$queryRaw<{ room: boolean; member: boolean; reply: boolean; file: boolean }[]>`
      SELECT EXISTS (SELECT 1 FROM "Room" WHERE id = ${roomId}::uuid) AS room,
             ${isMember(roomId, senderId)} AS member,
             ${messageInRoom(roomId, replyTo)} AS reply,
             ${fileInRoom(roomId, fileId)} AS file`;
    if (!state?.room) return new ChatError('NOT_FOUND', 'no such room');
    if (!state.member) return new ChatError('FORBIDDEN', 'not a member of this room');
    if (replyTo !== null && !state.reply) return new ChatError('NOT_FOUND', 'replyTo: no such message in this room');
    if (fileId !== null && !state.file) return new ChatError('BAD_REQUEST', 'fileId: no such file in this room');
    return new ChatError('CONFLICT', 'the room changed meanwhile; try again');
  }

  private async whyNotChanged(roomId: string, messageId: string, userId: string, notAllowed: string): Promise<ChatError> {
    const [state] = await this.prisma.$queryRaw<{ live: boolean; member: boolean }[]>`
      SELECT EXISTS (SELECT 1 FROM "Message" WHERE id = ${messageId}::uuid AND "roomId" = ${roomId}::uuid
                     AND "deletedAt" IS NULL) AS live,
             ${isMember(roomId, userId)} AS member`;
    if (!state?.live) return new ChatError('NOT_FOUND', 'no such message');
    if (!state.member) return new ChatError('FORBIDDEN', 'not a member of this room');
    return new ChatError('FORBIDDEN', notAllowed);
  }
}
