import { randomUUID } from 'node:crypto';
import { ChatError } from '../contract/errors.ts';
import type { MessageEvent, RoomKind, UserRef } from '../contract/events.ts';
import { Prisma, type PrismaClient, type Room } from '../generated/prisma/client.ts';
import { isDriverError } from './driver-errors.ts';
import { logEventCtes, SELECT_LOGGED, toStoredEvent, type LoggedRow, type Origin, type StoredEvent } from './event-log.ts';
import { isUuid } from './uuid.ts';

export type { Room };

export interface CreateRoomInput {
  kind: Exclude<RoomKind, 'random'>;
  /** Required for group and open rooms; direct rooms have none (listForUser names them after the other person). */
  name?: string;
  ownerId: string;
  /** Invited users (group), the other person (direct); ignored for open rooms, which people join. */
  memberIds: string[];
}

/** A room as its member sees it in `GET /api/rooms`. */
export interface RoomSummary {
  id: string;
  name: string;
  kind: RoomKind;
  lastSeq: number;
  readSeq: number;
  /** CHAT, NOTICE and RESOURCE messages after readSeq, not the member's own, not deleted. */
  unread: number;
  /** The newest message that is not deleted, with its current text. */
  lastMessage: MessageEvent | null;
}

const NO_ROOM = () => new ChatError('NOT_FOUND', 'no such room');
const NOT_MEMBER = () => new ChatError('FORBIDDEN', 'not a member of this room');

/** `sender` and `text` of an ENTER or LEAVE event, which only the database knows. */
const membershipChange = (userId: string, verb: string) => Prisma.sql`(
  SELECT jsonb_build_object('sender', jsonb_build_object('id', u.id, 'username', u.username),
                            'text', u.username || ${` ${verb}`})
  FROM "User" u WHERE u.id = ${userId}::uuid)`;

export class RoomStore {
  constructor(private readonly prisma: PrismaClient) {}

  /**
   * Creates a room with its owner as a member: group rooms also with the invited, open rooms with the owner only;
   * a direct room is the pair's one room (see findOrCreateDirect).
   * @throws ChatError BAD_REQUEST (no name; direct room not with exactly one other person), NOT_FOUND (unknown user).
   */
  async create(input: CreateRoomInput): Promise<Room> {
    const { kind, ownerId } = input;
    if (kind === 'direct') {
      const others = [...new Set(input.memberIds)].filter((id) => id !== ownerId);
      if (others.length !== 1) throw new ChatError('BAD_REQUEST', 'a direct room is for exactly two people');
      return this.findOrCreateDirect(ownerId, others[0]!);
    }
    const name = input.name?.trim();
    if (!name) throw new ChatError('BAD_REQUEST', `a ${kind} room needs a name`);
    const memberIds = kind === 'group' ? [...new Set([ownerId, ...input.memberIds])] : [ownerId];
    if (!memberIds.every(isUuid)) throw new ChatError('NOT_FOUND', 'unknown user');
    return this.withKnownUsers(() =>
      this.prisma.room.create({
        data: { name, kind, ownerId, members: { createMany: { data: memberIds.map((userId) => ({ userId })) } } },
      }),
    );
  }

  /**
   * The pair's direct room, created on first use. Two concurrent calls return the same room: the pair's directKey
   * is unique, so the second insert fails and reads the first one's room.
   * @throws ChatError BAD_REQUEST (one person twice), NOT_FOUND (unknown user).
   */
  async findOrCreateDirect(userA: string, userB: string): Promise<Room> {
    if (!isUuid(userA) || !isUuid(userB)) throw new ChatError('NOT_FOUND', 'unknown user');
    const [low, high] = [userA.toLowerCase(), userB.toLowerCase()].sort() as [string, string];
    if (low === high) throw new ChatError('BAD_REQUEST', 'a direct room is for two different people');
    const directKey = `${low}:${high}`;
    for (let attempt = 1; ; attempt++) {
      const existing = await this.prisma.room.findUnique({ where: { directKey } });
      if (existing) return existing;
      try {
        return await this.withKnownUsers(() =>
          this.prisma.room.create({
            data: {
              name: '',
              kind: 'direct',
              ownerId: userA,
              directKey,
              members: { createMany: { data: [{ userId: low }, { userId: high }] } },
            },
          }),
        );
      } catch (err) {
        // Another call created it first; read that one (once: a second clash is not a race).
        if (attempt > 1 || !isDriverError(err, 'UniqueConstraintViolation')) throw err;
      }
    }
  }

  /** A fresh room of kind `random` for two paired strangers, both members. @throws ChatError NOT_FOUND (unknown user). */
  createRandom(userA: string, userB: string): Promise<Room> {
    if (!isUuid(userA) || !isUuid(userB)) throw new ChatError('NOT_FOUND', 'unknown user');
    return this.withKnownUsers(() =>
      this.prisma.room.create({
        data: { name: 'Random chat', kind: 'random', ownerId: userA, members: { createMany: { data: [{ userId: userA }, { userId: userB }] } } },
      }),
    );
  }

  /** @throws ChatError NOT_FOUND. */
  async get(roomId: string): Promise<Room> {
    const room = isUuid(roomId) ? await this.prisma.room.findUnique({ where: { id: roomId } }) : null;
    if (room === null) throw NO_ROOM();
    return room;
  }

  /** The seq of the room's newest event (0 for none). @throws ChatError NOT_FOUND. */
  async lastSeq(roomId: string): Promise<number> {
    return (await this.get(roomId)).lastSeq;
  }

  async isMember(roomId: string, userId: string): Promise<boolean> {
    if (!isUuid(roomId) || !isUuid(userId)) return false;
    const found = await this.prisma.membership.findUnique({
      where: { roomId_userId: { roomId, userId } },
      select: { roomId: true },
    });
    return found !== null;
  }

  /**
   * Joins an open room and logs an ENTER event; null when already a member.
   * @throws ChatError NOT_FOUND, FORBIDDEN (not an open room).
   */
  async join(roomId: string, userId: string, origin: Origin): Promise<StoredEvent | null> {
    if (!isUuid(roomId)) throw NO_ROOM();
    const at = new Date();
    const rows = await this.prisma.$queryRaw<LoggedRow[]>`
      WITH joined AS (
        INSERT INTO "Membership" ("roomId", "userId")
        SELECT id, ${userId}::uuid FROM "Room" WHERE id = ${roomId}::uuid AND kind = 'open'
        ON CONFLICT DO NOTHING
        RETURNING "userId"
      ),
      ${logEventCtes({
        roomId,
        type: 'ENTER',
        guard: Prisma.sql`EXISTS (SELECT 1 FROM joined)`,
        event: { type: 'ENTER', id: randomUUID(), roomId, createdAt: at.toISOString() },
        extra: membershipChange(userId, 'joined'),
        origin,
        at,
      })}
      ${SELECT_LOGGED}`;
    if (rows[0] !== undefined) return toStoredEvent(rows[0]);
    const room = await this.prisma.room.findUnique({ where: { id: roomId }, select: { kind: true } });
    if (room === null) throw NO_ROOM();
    if (await this.isMember(roomId, userId)) return null;
    if (room.kind !== 'open') throw new ChatError('FORBIDDEN', 'only open rooms can be joined');
    throw new ChatError('CONFLICT', 'the membership changed meanwhile; try again');
  }

  /**
   * Leaves a room and logs a LEAVE event.
   * @throws ChatError NOT_FOUND, FORBIDDEN (not a member).
   */
  async leave(roomId: string, userId: string, origin: Origin): Promise<StoredEvent> {
    if (!isUuid(roomId)) throw NO_ROOM();
    const at = new Date();
    const rows = await this.prisma.$queryRaw<LoggedRow[]>`
      WITH gone AS (
        DELETE FROM "Membership" WHERE "roomId" = ${roomId}::uuid AND "userId" = ${userId}::uuid
        RETURNING "userId"
      ),
      ${logEventCtes({
        roomId,
        type: 'LEAVE',
        guard: Prisma.sql`EXISTS (SELECT 1 FROM gone)`,
        event: { type: 'LEAVE', id: randomUUID(), roomId, createdAt: at.toISOString() },
        extra: membershipChange(userId, 'left'),
        origin,
        at,
      })}
      ${SELECT_LOGGED}`;
    if (rows[0] !== undefined) return toStoredEvent(rows[0]);
    await this.get(roomId);
    throw NOT_MEMBER();
  }

  /** Members in the order they joined. @throws ChatError NOT_FOUND. */
  async members(roomId: string): Promise<UserRef[]> {
    await this.get(roomId);
    const rows = await this.prisma.membership.findMany({
      where: { roomId },
      orderBy: [{ joinedAt: 'asc' }, { userId: 'asc' }],
      select: { user: { select: { id: true, username: true } } },
    });
    return rows.map((r) => r.user);
  }

  async memberIds(roomId: string): Promise<string[]> {
    if (!isUuid(roomId)) return [];
    const rows = await this.prisma.membership.findMany({ where: { roomId }, select: { userId: true } });
    return rows.map((r) => r.userId);
  }

  /** Ids of the rooms the user belongs to (no summaries: for fan-out to all of a user's rooms). */
  async roomIdsOf(userId: string): Promise<string[]> {
    if (!isUuid(userId)) return [];
    const rows = await this.prisma.membership.findMany({ where: { userId }, select: { roomId: true } });
    return rows.map((r) => r.roomId);
  }

  /** The user's rooms, most recently active first. */
  async listForUser(userId: string): Promise<RoomSummary[]> {
    if (!isUuid(userId)) return [];
    const rows = await this.prisma.$queryRaw<(RoomSummary & { peer: string | null })[]>`
      SELECT r.id, r.name, r.kind::text AS kind, r."lastSeq", m."readSeq",
             (SELECT count(*)::int FROM "Message" x
              WHERE x."roomId" = r.id AND x.seq > m."readSeq" AND x."senderId" <> m."userId" AND x."deletedAt" IS NULL
             ) AS unread,
             last.payload AS "lastMessage",
             CASE WHEN r.kind = 'direct' THEN (
               SELECT u.username FROM "Membership" o JOIN "User" u ON u.id = o."userId"
               WHERE o."roomId" = r.id AND o."userId" <> m."userId" LIMIT 1
             ) END AS peer
      FROM "Membership" m
      JOIN "Room" r ON r.id = m."roomId"
      LEFT JOIN LATERAL (
        SELECT e.payload || jsonb_build_object('text', x.text) AS payload, x."createdAt"
        FROM "Message" x JOIN "RoomEvent" e ON e."roomId" = x."roomId" AND e.seq = x.seq
        WHERE x."roomId" = r.id AND x."deletedAt" IS NULL
        ORDER BY x.seq DESC
        LIMIT 1
      ) last ON true
      WHERE m."userId" = ${userId}::uuid
      ORDER BY COALESCE(last."createdAt", r."createdAt") DESC, r.id`;
    return rows.map(({ peer, ...room }) => ({ ...room, name: peer ?? room.name }));
  }

  /** Open rooms, newest first. */
  listOpen(limit = 100): Promise<Room[]> {
    return this.prisma.room.findMany({ where: { kind: 'open' }, orderBy: [{ createdAt: 'desc' }, { id: 'asc' }], take: limit });
  }

  /**
   * Moves the member's read mark forward to `seq` (never back, never past the room's lastSeq).
   * @returns the read mark now. @throws ChatError NOT_FOUND, FORBIDDEN (not a member).
   */
  async markRead(roomId: string, userId: string, seq: number): Promise<number> {
    if (!isUuid(roomId)) throw NO_ROOM();
    const upTo = Math.max(0, Math.min(Math.trunc(seq), 2 ** 31 - 1));
    const rows = await this.prisma.$queryRaw<{ readSeq: number }[]>`
      UPDATE "Membership" m SET "readSeq" = GREATEST(m."readSeq", LEAST(${upTo}::int, r."lastSeq"))
      FROM "Room" r
      WHERE r.id = m."roomId" AND m."roomId" = ${roomId}::uuid AND m."userId" = ${userId}::uuid
      RETURNING m."readSeq"`;
    if (rows[0] !== undefined) return rows[0].readSeq;
    await this.get(roomId);
    throw NOT_MEMBER();
  }

  /** Runs a write that names users; an unknown one is NOT_FOUND. */
  private async withKnownUsers<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if (isDriverError(err, 'ForeignKeyConstraintViolation')) throw new ChatError('NOT_FOUND', 'unknown user');
      throw err;
    }
  }
}
