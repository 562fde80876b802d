import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ChatError, type ErrorCode } from '../src/contract/errors.ts';
import { createLogger } from '../src/logger.ts';
import { openDatabase, type Database } from '../src/store/database.ts';
import type { Origin, StoredEvent } from '../src/store/event-log.ts';
import { MessageStore } from '../src/store/messages.ts';
import { MIGRATION_LOCK_KEY, migratePGlite, migratePostgres, readMigrations } from '../src/store/migrate.ts';
import { RoomStore } from '../src/store/rooms.ts';
import { UserStore, type User } from '../src/store/users.ts';
import { createTempPostgres } from '../scripts/temp-postgres.ts';

const log = createLogger('silent');

async function expectChatError(promise: Promise<unknown>, code: ErrorCode, message?: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ChatError);
  expect((err as ChatError).code).toBe(code);
  if (message !== undefined) expect((err as ChatError).message).toBe(message);
}

/** Where a database lives: a PGlite directory, or a fresh PostgreSQL database. */
interface Target {
  databaseUrl?: string;
  dataDir: string;
  /** Applies the migrations again, as a later start would; returns what it applied. */
  migrateAgain(): Promise<string[]>;
  remove(): Promise<void>;
}

async function newTarget(kind: 'pglite' | 'postgres'): Promise<Target> {
  const dataDir = await mkdtemp(join(tmpdir(), 'chat-store-'));
  const removeDir = () => rm(dataDir, { recursive: true, force: true });
  if (kind === 'pglite') {
    return {
      dataDir,
      migrateAgain: async () => {
        const db = await PGlite.create(join(dataDir, 'pglite'));
        try {
          return await migratePGlite(db, log);
        } finally {
          await db.close();
        }
      },
      remove: removeDir,
    };
  }
  const pg = await createTempPostgres();
  return {
    databaseUrl: pg.url,
    dataDir,
    migrateAgain: () => migratePostgres(pg.url, log),
    remove: async () => {
      await pg.drop();
      await removeDir();
    },
  };
}

type MigrationRow = { migration_name: string; finished: boolean; rolled_back: boolean };
const appliedMigrations = (db: Database) =>
  db.prisma.$queryRaw<MigrationRow[]>`
    SELECT migration_name, finished_at IS NOT NULL AS finished, rolled_back_at IS NOT NULL AS rolled_back
    FROM _prisma_migrations ORDER BY migration_name`;

describe.each([{ kind: 'pglite' as const }, { kind: 'postgres' as const }])('store on $kind', ({ kind }) => {
  let target: Target;
  let db: Database;
  let users: UserStore;
  let rooms: RoomStore;
  let messages: MessageStore;
  let migrationNames: string[];

  beforeAll(async () => {
    migrationNames = (await readMigrations()).migrationDirectories.map((d) => d.path);
    target = await newTarget(kind);
    db = await openDatabase({ databaseUrl: target.databaseUrl, dataDir: target.dataDir, log });
    users = new UserStore(db.prisma);
    rooms = new RoomStore(db.prisma);
    messages = new MessageStore(db.prisma);
  });

  afterAll(async () => {
    await db?.close();
    await target?.remove();
  });

  let userCount = 0;
  const newUser = (name = 'user'): Promise<User> => users.create(`${name}${++userCount}`, `hash-of-${name}`);
  const origin = (seq: number, session = 'session-1'): Origin => ({ session, seq });
  const chat = (roomId: string, sender: User, text: string, extra: { clientMsgId?: string; replyTo?: string } = {}) =>
    messages.append({ roomId, type: 'CHAT', sender: { id: sender.id, username: sender.username }, text, origin: origin(1), ...extra });
  const seqs = (events: StoredEvent[]) => events.map((e) => e.event.seq);

  test('migrations: the first open applies each once, a later start applies nothing', async () => {
    expect(migrationNames.length).toBeGreaterThan(0);
    expect(await appliedMigrations(db)).toEqual(
      migrationNames.map((migration_name) => ({ migration_name, finished: true, rolled_back: false })),
    );
    expect(db.kind).toBe(kind);

    const fresh = await newTarget(kind);
    try {
      const first = await openDatabase({ databaseUrl: fresh.databaseUrl, dataDir: fresh.dataDir, log });
      await first.prisma.user.create({ data: { username: 'survivor', usernameKey: 'survivor', passwordHash: 'h' } });
      await first.close();
      expect(await fresh.migrateAgain()).toEqual([]);
      const second = await openDatabase({ databaseUrl: fresh.databaseUrl, dataDir: fresh.dataDir, log });
      try {
        expect(await appliedMigrations(second)).toEqual(
          migrationNames.map((migration_name) => ({ migration_name, finished: true, rolled_back: false })),
        );
        expect((await second.prisma.user.findMany()).map((u) => u.username)).toEqual(['survivor']);
      } finally {
        await second.close();
      }
    } finally {
      await fresh.remove();
    }
  });

  test.runIf(kind === 'postgres')('three gateways opening one fresh PostgreSQL database at once all succeed', async () => {
    const fresh = await newTarget(kind);
    try {
      const opened = await Promise.all(
        [1, 2, 3].map(() => openDatabase({ databaseUrl: fresh.databaseUrl, dataDir: fresh.dataDir, log })),
      );
      try {
        expect(await appliedMigrations(opened[0]!)).toEqual(
          migrationNames.map((migration_name) => ({ migration_name, finished: true, rolled_back: false })),
        );
        expect(await Promise.all(opened.map((d) => d.prisma.room.count()))).toEqual([0, 0, 0]);
      } finally {
        await Promise.all(opened.map((d) => d.close()));
      }
    } finally {
      await fresh.remove();
    }
  });

  test.runIf(kind === 'postgres')('a start waits while another start holds the migration lock', async () => {
    const fresh = await newTarget(kind);
    const holder = new pg.Client({ connectionString: fresh.databaseUrl });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
      const migrating = migratePostgres(fresh.databaseUrl!, log);
      const waiters = async () =>
        (
          await holder.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_locks
             WHERE locktype = 'advisory' AND NOT granted AND objid = $1
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
            [MIGRATION_LOCK_KEY],
          )
        ).rows[0]!.n;
      for (let i = 0; (await waiters()) === 0; i++) {
        if (i === 500) throw new Error('the migration never queued on the lock');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const tables = await holder.query(`SELECT to_regclass('_prisma_migrations') AS t`);
      expect(tables.rows).toEqual([{ t: null }]);
      await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      expect(await migrating).toEqual(migrationNames);
    } finally {
      await holder.end();
      await fresh.remove();
    }
  });

  describe('users', () => {
    test('create, find, and CONFLICT on a taken username', async () => {
      const alice = await users.create('alice', 'h1');
      expect(alice).toMatchObject({ username: 'alice', passwordHash: 'h1' });
      await expectChatError(users.create('alice', 'h2'), 'CONFLICT', 'username alice is taken');
      expect(await users.findByUsername('alice')).toEqual(alice);
      expect(await users.findById(alice.id)).toEqual(alice);
      expect(await users.findByUsername('nobody')).toBeNull();
      expect(await users.findById('not-a-uuid')).toBeNull();
      expect(await users.findById('00000000-0000-4000-8000-000000000000')).toBeNull();
    });

    test('resolve takes ids and usernames, once each, and names the unknown ones', async () => {
      const a = await newUser();
      const b = await newUser();
      expect(await users.resolve([b.username, a.id, b.id, a.id.toUpperCase()])).toEqual([b, a]);
      expect(await users.resolve([])).toEqual([]);
      await expectChatError(
        users.resolve([a.id, 'ghost', '00000000-0000-4000-8000-000000000000']),
        'NOT_FOUND',
        'unknown users: ghost, 00000000-0000-4000-8000-000000000000',
      );
    });
  });

  describe('appends', () => {
    test('20 concurrent appends take seqs exactly 1..20, each logged as returned', async () => {
      const owner = await newUser();
      const room = await rooms.create({ kind: 'group', name: 'busy', ownerId: owner.id, memberIds: [] });
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          messages.append({
            roomId: room.id,
            type: 'CHAT',
            sender: { id: owner.id, username: owner.username },
            text: `m${i}`,
            origin: origin(i + 1, 'burst'),
          }),
        ),
      );
      expect(results.every((r) => !r.duplicate)).toBe(true);
      expect(seqs(results.map((r) => r.stored)).sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect((await rooms.get(room.id)).lastSeq).toBe(20);
      const logged = await messages.history(room.id, { limit: 100 });
      expect(logged).toEqual(results.map((r) => r.stored).sort((x, y) => x.event.seq - y.event.seq));
      const first = results[0]!.stored;
      expect(first).toEqual({
        event: {
          type: 'CHAT',
          id: first.event.type === 'CHAT' ? first.event.id : '',
          roomId: room.id,
          seq: first.event.seq,
          sender: { id: owner.id, username: owner.username },
          text: 'm0',
          createdAt: first.event.type === 'CHAT' ? first.event.createdAt : '',
        },
        senderSession: 'burst',
        senderSeq: 1,
      });
    });

    test('a repeated clientMsgId returns the first event and takes no seq, also when racing', async () => {
      const alice = await newUser();
      const bob = await newUser();
      const room = await rooms.create({ kind: 'group', name: 'retry', ownerId: alice.id, memberIds: [bob.id] });
      const first = await chat(room.id, alice, 'once', { clientMsgId: 'c-1' });
      expect(first.duplicate).toBe(false);
      expect(first.stored.event.seq).toBe(1);
      expect(await chat(room.id, alice, 'once, retried', { clientMsgId: 'c-1' })).toEqual({ stored: first.stored, duplicate: true });
      // Another sender's key is theirs.
      const bobs = await chat(room.id, bob, 'mine', { clientMsgId: 'c-1' });
      expect([bobs.duplicate, bobs.stored.event.seq]).toEqual([false, 2]);

      const racing = await Promise.all(Array.from({ length: 5 }, () => chat(room.id, alice, 'race', { clientMsgId: 'c-2' })));
      expect(racing.filter((r) => !r.duplicate)).toHaveLength(1);
      const winner = racing.find((r) => !r.duplicate)!.stored;
      expect(winner.event.seq).toBe(3);
      expect(racing.map((r) => r.stored)).toEqual(Array.from({ length: 5 }, () => winner));
      expect((await chat(room.id, alice, 'next')).stored.event.seq).toBe(4);
      expect(seqs(await messages.history(room.id, { limit: 100 }))).toEqual([1, 2, 3, 4]);
    });

    test('only members append, replies and files must be in the room', async () => {
      const alice = await newUser();
      const stranger = await newUser();
      const room = await rooms.create({ kind: 'group', name: 'closed', ownerId: alice.id, memberIds: [] });
      const other = await rooms.create({ kind: 'group', name: 'other', ownerId: alice.id, memberIds: [] });
      const elsewhere = await chat(other.id, alice, 'elsewhere');
      await expectChatError(chat(room.id, stranger, 'let me in'), 'FORBIDDEN', 'not a member of this room');
      await expectChatError(chat('00000000-0000-4000-8000-000000000000', alice, 'x'), 'NOT_FOUND', 'no such room');
      await expectChatError(chat('lobby', alice, 'x'), 'NOT_FOUND', 'no such room');
      const elsewhereId = elsewhere.stored.event.type === 'CHAT' ? elsewhere.stored.event.id : '';
      await expectChatError(chat(room.id, alice, 'x', { replyTo: elsewhereId }), 'NOT_FOUND', 'replyTo: no such message in this room');

      const original = await chat(room.id, alice, 'question');
      const originalId = original.stored.event.type === 'CHAT' ? original.stored.event.id : '';
      const reply = await chat(room.id, alice, 'answer', { replyTo: originalId });
      expect(reply.stored.event).toMatchObject({ seq: 2, text: 'answer', replyTo: originalId });

      const file = await db.prisma.file.create({
        data: { roomId: room.id, uploaderId: alice.id, name: 'a.txt', size: 12n, contentType: 'text/plain', storageKey: `k-${room.id}`, sha256: '0'.repeat(64) },
      });
      const withFile = await messages.append({
        roomId: room.id,
        type: 'RESOURCE',
        sender: { id: alice.id, username: alice.username },
        text: 'see file',
        fileId: file.id,
        origin: origin(9),
      });
      expect(withFile.stored.event).toMatchObject({
        type: 'RESOURCE',
        seq: 3,
        file: { fileId: file.id, name: 'a.txt', size: 12, contentType: 'text/plain' },
      });
      await expectChatError(
        messages.append({ roomId: other.id, type: 'RESOURCE', sender: alice, text: 'x', fileId: file.id, origin: origin(10) }),
        'BAD_REQUEST',
        'fileId: no such file in this room',
      );
      expect((await rooms.get(room.id)).lastSeq).toBe(3);
      expect((await rooms.get(other.id)).lastSeq).toBe(1);
    });
  });

  describe('edits and deletions', () => {
    test('own messages only, the room owner deletes any; each change takes the next seq', async () => {
      const owner = await newUser();
      const bob = await newUser();
      const carol = await newUser();
      const room = await rooms.create({ kind: 'group', name: 'edits', ownerId: owner.id, memberIds: [bob.id, carol.id] });
      const ownerMsg = await chat(room.id, owner, 'owner says');
      const bobMsg = await chat(room.id, bob, 'bob says');
      const ownerMsgId = ownerMsg.stored.event.type === 'CHAT' ? ownerMsg.stored.event.id : '';
      const bobMsgId = bobMsg.stored.event.type === 'CHAT' ? bobMsg.stored.event.id : '';

      await expectChatError(
        messages.edit({ roomId: room.id, messageId: ownerMsgId, userId: bob.id, text: 'hijack', origin: origin(2) }),
        'FORBIDDEN',
        'only its sender may edit a message',
      );
      const edited = await messages.edit({ roomId: room.id, messageId: bobMsgId, userId: bob.id, text: 'bob means', origin: origin(3, 'bob-s') });
      expect(edited).toEqual({
        event: {
          type: 'EDIT',
          roomId: room.id,
          seq: 3,
          messageId: bobMsgId,
          text: 'bob means',
          editedAt: edited.event.type === 'EDIT' ? edited.event.editedAt : '',
        },
        senderSession: 'bob-s',
        senderSeq: 3,
      });
      await expectChatError(
        messages.edit({ roomId: room.id, messageId: '00000000-0000-4000-8000-000000000000', userId: bob.id, text: 'x', origin: origin(4) }),
        'NOT_FOUND',
        'no such message',
      );

      await expectChatError(
        messages.delete({ roomId: room.id, messageId: ownerMsgId, userId: carol.id, isOwner: false, origin: origin(5) }),
        'FORBIDDEN',
        'only its sender or the room owner may delete a message',
      );
      const deleted = await messages.delete({ roomId: room.id, messageId: bobMsgId, userId: owner.id, isOwner: true, origin: origin(6, 'owner-s') });
      expect(deleted).toEqual({
        event: { type: 'DELETE', roomId: room.id, seq: 4, messageId: bobMsgId },
        senderSession: 'owner-s',
        senderSeq: 6,
      });
      await expectChatError(
        messages.edit({ roomId: room.id, messageId: bobMsgId, userId: bob.id, text: 'too late', origin: origin(7) }),
        'NOT_FOUND',
        'no such message',
      );
      await expectChatError(
        messages.delete({ roomId: room.id, messageId: bobMsgId, userId: bob.id, isOwner: false, origin: origin(8) }),
        'NOT_FOUND',
        'no such message',
      );
      const ownDelete = await messages.delete({ roomId: room.id, messageId: ownerMsgId, userId: owner.id, isOwner: false, origin: origin(9) });
      expect(ownDelete.event.seq).toBe(5);

      // Refused changes took no seq; deleted messages' text is not served again.
      const log = await messages.history(room.id, { limit: 100 });
      expect(log.map((e) => [e.event.seq, e.event.type, e.event.type === 'DELETE' ? '' : e.event.text, 'deleted' in e.event])).toEqual([
        [1, 'CHAT', undefined, true],
        [2, 'CHAT', undefined, true],
        [3, 'EDIT', 'bob means', false],
        [4, 'DELETE', '', false],
        [5, 'DELETE', '', false],
      ]);
      expect((await rooms.get(room.id)).lastSeq).toBe(5);
    });

    test('a member who left can no longer edit', async () => {
      const owner = await newUser();
      const bob = await newUser();
      const room = await rooms.create({ kind: 'group', name: 'gone', ownerId: owner.id, memberIds: [bob.id] });
      const msg = await chat(room.id, bob, 'hello');
      await rooms.leave(room.id, bob.id, origin(2));
      await expectChatError(
        messages.edit({ roomId: room.id, messageId: msg.stored.event.type === 'CHAT' ? msg.stored.event.id : '', userId: bob.id, text: 'x', origin: origin(3) }),
        'FORBIDDEN',
        'not a member of this room',
      );
    });
  });

  describe('history', () => {
    test('pages before, after and by limit, always ascending; since() returns what follows a seq', async () => {
      const owner = await newUser();
      const room = await rooms.create({ kind: 'open', name: 'paged', ownerId: owner.id, memberIds: [] });
      const sent: StoredEvent[] = [];
      for (let i = 1; i <= 10; i++) sent.push((await chat(room.id, owner, `m${i}`)).stored);
      const page = async (p: { before?: number; after?: number; limit: number }) => seqs(await messages.history(room.id, p));

      expect(await page({ limit: 3 })).toEqual([8, 9, 10]);
      expect(await page({ before: 8, limit: 3 })).toEqual([5, 6, 7]);
      expect(await page({ before: 3, limit: 5 })).toEqual([1, 2]);
      expect(await page({ after: 7, limit: 2 })).toEqual([8, 9]);
      expect(await page({ after: 2, before: 6, limit: 10 })).toEqual([3, 4, 5]);
      expect(await page({ after: 10, limit: 10 })).toEqual([]);
      expect(await messages.history(room.id, { before: 3, limit: 2 })).toEqual(sent.slice(0, 2));

      expect(await messages.since(room.id, 7, 100)).toEqual(sent.slice(7));
      expect(seqs(await messages.since(room.id, 0, 4))).toEqual([1, 2, 3, 4]);
      expect(await messages.since(room.id, 10, 100)).toEqual([]);
      expect(await messages.since('not-a-room', 0, 100)).toEqual([]);
    });

    test('serves each message as it is now (latest edit\'s text and editedAt; deleted without text), in every page; since() keeps the log', async () => {
      const owner = await newUser();
      const room = await rooms.create({ kind: 'open', name: 'current', ownerId: owner.id, memberIds: [] });
      const [one, two, three] = [(await chat(room.id, owner, 'one')).stored, (await chat(room.id, owner, 'two')).stored, (await chat(room.id, owner, 'three')).stored];
      const idOf = (s: StoredEvent) => (s.event.type === 'CHAT' ? s.event.id : '');
      const edit = (text: string, seq: number) => messages.edit({ roomId: room.id, messageId: idOf(one), userId: owner.id, text, origin: origin(seq) });
      const edit1 = await edit('one, edited', 4);
      const edit2 = await edit('one, final', 5);
      const del = await messages.delete({ roomId: room.id, messageId: idOf(two), userId: owner.id, isOwner: true, origin: origin(6) });
      const { text: _text, ...twoWithoutText } = two.event as typeof two.event & { text?: string };
      const editedAt = edit2.event.type === 'EDIT' ? edit2.event.editedAt : '';

      const now = [
        { ...one, event: { ...one.event, text: 'one, final', editedAt } },
        { ...two, event: { ...twoWithoutText, deleted: true } },
        three,
        edit1,
        edit2,
        del,
      ];
      expect(await messages.history(room.id, { limit: 100 })).toEqual(now);
      expect(await messages.history(room.id, { limit: 2 })).toEqual(now.slice(4));
      expect(await messages.history(room.id, { before: 3, limit: 2 })).toEqual(now.slice(0, 2));
      expect(await messages.history(room.id, { after: 1, limit: 2 })).toEqual(now.slice(1, 3));
      expect(await messages.history(room.id, { after: 0, before: 5, limit: 10 })).toEqual(now.slice(0, 4));
      // A resuming subscriber replays the log as it was sent (a deleted message's text scrubbed).
      expect(await messages.since(room.id, 0, 100)).toEqual([one, { ...two, event: { ...two.event, text: '' } }, three, edit1, edit2, del]);
    });
  });

  describe('rooms', () => {
    test('group and open rooms start with the right members', async () => {
      const owner = await newUser();
      const bob = await newUser();
      const carol = await newUser();
      const group = await rooms.create({ kind: 'group', name: ' team ', ownerId: owner.id, memberIds: [bob.id, carol.id, bob.id] });
      expect(group).toMatchObject({ name: 'team', kind: 'group', ownerId: owner.id, directKey: null, lastSeq: 0 });
      expect(await rooms.members(group.id)).toEqual(
        expect.arrayContaining([owner, bob, carol].map((u) => ({ id: u.id, username: u.username }))),
      );
      expect((await rooms.memberIds(group.id)).sort()).toEqual([owner.id, bob.id, carol.id].sort());
      const open = await rooms.create({ kind: 'open', name: 'lobby', ownerId: owner.id, memberIds: [bob.id] });
      expect(await rooms.memberIds(open.id)).toEqual([owner.id]);
      expect(await rooms.get(open.id)).toEqual(open);

      await expectChatError(rooms.create({ kind: 'group', ownerId: owner.id, memberIds: [] }), 'BAD_REQUEST', 'a group room needs a name');
      await expectChatError(
        rooms.create({ kind: 'group', name: 'x', ownerId: owner.id, memberIds: ['00000000-0000-4000-8000-000000000000'] }),
        'NOT_FOUND',
        'unknown user',
      );
      await expectChatError(rooms.get('00000000-0000-4000-8000-000000000000'), 'NOT_FOUND', 'no such room');
    });

    test('a pair has one direct room, whoever asks first and however many ask at once', async () => {
      const a = await newUser();
      const b = await newUser();
      const room = await rooms.findOrCreateDirect(a.id, b.id);
      expect(room).toMatchObject({ kind: 'direct', ownerId: a.id, directKey: [a.id, b.id].sort().join(':'), lastSeq: 0 });
      expect(await rooms.findOrCreateDirect(b.id, a.id)).toEqual(room);
      expect(await rooms.create({ kind: 'direct', ownerId: b.id, memberIds: [a.id, b.id] })).toEqual(room);
      expect((await rooms.memberIds(room.id)).sort()).toEqual([a.id, b.id].sort());
      await expectChatError(rooms.findOrCreateDirect(a.id, a.id), 'BAD_REQUEST');
      await expectChatError(rooms.create({ kind: 'direct', ownerId: a.id, memberIds: [] }), 'BAD_REQUEST');

      const c = await newUser();
      const d = await newUser();
      const raced = await Promise.all(
        Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? rooms.findOrCreateDirect(c.id, d.id) : rooms.findOrCreateDirect(d.id, c.id))),
      );
      expect(new Set(raced.map((r) => r.id)).size).toBe(1);
      expect(await db.prisma.room.count({ where: { directKey: [c.id, d.id].sort().join(':') } })).toBe(1);
      expect((await rooms.memberIds(raced[0]!.id)).sort()).toEqual([c.id, d.id].sort());
    });

    test('open rooms are listed and joined; joins and leaves are logged', async () => {
      const owner = await newUser();
      const bob = await newUser('bob');
      const lobby = await rooms.create({ kind: 'open', name: 'open-lobby', ownerId: owner.id, memberIds: [] });
      const team = await rooms.create({ kind: 'group', name: 'closed-team', ownerId: owner.id, memberIds: [] });
      const listed = await rooms.listOpen(1000);
      expect(listed.filter((r) => r.id === lobby.id || r.id === team.id)).toEqual([lobby]);

      const enter = await rooms.join(lobby.id, bob.id, origin(1, 'bob-s'));
      expect(enter).toEqual({
        event: {
          type: 'ENTER',
          id: enter?.event.type === 'ENTER' ? enter.event.id : '',
          roomId: lobby.id,
          seq: 1,
          sender: { id: bob.id, username: bob.username },
          text: `${bob.username} joined`,
          createdAt: enter?.event.type === 'ENTER' ? enter.event.createdAt : '',
        },
        senderSession: 'bob-s',
        senderSeq: 1,
      });
      expect(await rooms.join(lobby.id, bob.id, origin(2))).toBeNull();
      expect(await rooms.join(lobby.id, owner.id, origin(3))).toBeNull();
      expect(await rooms.isMember(lobby.id, bob.id)).toBe(true);
      expect(await rooms.members(lobby.id)).toEqual([owner, bob].map((u) => ({ id: u.id, username: u.username })));
      await expectChatError(rooms.join(team.id, bob.id, origin(4)), 'FORBIDDEN', 'only open rooms can be joined');
      await expectChatError(rooms.join('00000000-0000-4000-8000-000000000000', bob.id, origin(5)), 'NOT_FOUND');

      const leave = await rooms.leave(lobby.id, bob.id, origin(6, 'bob-s'));
      expect(leave.event).toMatchObject({ type: 'LEAVE', seq: 2, sender: { id: bob.id, username: bob.username }, text: `${bob.username} left` });
      expect(leave).toMatchObject({ senderSession: 'bob-s', senderSeq: 6 });
      expect(await rooms.isMember(lobby.id, bob.id)).toBe(false);
      await expectChatError(rooms.leave(lobby.id, bob.id, origin(7)), 'FORBIDDEN', 'not a member of this room');
      expect(await messages.history(lobby.id, { limit: 10 })).toEqual([enter, leave]);
      expect((await rooms.get(lobby.id)).lastSeq).toBe(2);
    });

    test('unread counts others\' live messages after the read mark, which only moves forward', async () => {
      const alice = await newUser('alice');
      const bob = await newUser('bob');
      const room = await rooms.create({ kind: 'group', name: 'chatty', ownerId: alice.id, memberIds: [bob.id] });
      const a1 = await chat(room.id, alice, 'a1'); // seq 1
      await chat(room.id, alice, 'a2'); // seq 2
      await chat(room.id, bob, 'b1'); // seq 3
      const a3 = await chat(room.id, alice, 'a3'); // seq 4
      const summary = async (user: User) => (await rooms.listForUser(user.id)).find((r) => r.id === room.id);

      expect(await summary(bob)).toEqual({
        id: room.id,
        name: 'chatty',
        kind: 'group',
        lastSeq: 4,
        readSeq: 0,
        unread: 3,
        lastMessage: a3.stored.event,
      });
      expect((await summary(alice))?.unread).toBe(1);

      const a1Id = a1.stored.event.type === 'CHAT' ? a1.stored.event.id : '';
      await messages.delete({ roomId: room.id, messageId: a1Id, userId: alice.id, isOwner: true, origin: origin(5) }); // seq 5
      expect((await summary(bob))?.unread).toBe(2);

      expect(await rooms.markRead(room.id, bob.id, 2)).toBe(2);
      expect((await summary(bob))?.unread).toBe(1);
      expect(await rooms.markRead(room.id, bob.id, 1)).toBe(2);
      expect(await rooms.markRead(room.id, bob.id, 1000)).toBe(5);
      expect(await summary(bob)).toMatchObject({ readSeq: 5, unread: 0 });
      await expectChatError(rooms.markRead(room.id, (await newUser()).id, 1), 'FORBIDDEN', 'not a member of this room');

      // The last message carries its current text; deleted ones are skipped.
      const a3Id = a3.stored.event.type === 'CHAT' ? a3.stored.event.id : '';
      await messages.edit({ roomId: room.id, messageId: a3Id, userId: alice.id, text: 'a3, edited', origin: origin(6) });
      expect((await summary(bob))?.lastMessage).toEqual({ ...a3.stored.event, text: 'a3, edited' });
      await messages.delete({ roomId: room.id, messageId: a3Id, userId: alice.id, isOwner: true, origin: origin(7) });
      expect((await summary(bob))?.lastMessage).toMatchObject({ seq: 3, text: 'b1' });
      expect((await summary(bob))?.unread).toBe(0);
    });

    test('direct rooms are listed under the other person\'s name; ENTER and LEAVE are not unread', async () => {
      const a = await newUser('dm');
      const b = await newUser('dm');
      const direct = await rooms.findOrCreateDirect(a.id, b.id);
      expect((await rooms.listForUser(a.id)).map((r) => [r.id, r.name, r.unread, r.lastMessage])).toEqual([[direct.id, b.username, 0, null]]);
      const lobby = await rooms.create({ kind: 'open', name: 'joinable', ownerId: a.id, memberIds: [] });
      await rooms.join(lobby.id, b.id, origin(1));
      expect((await rooms.listForUser(a.id)).find((r) => r.id === lobby.id)).toEqual({
        id: lobby.id,
        name: 'joinable',
        kind: 'open',
        lastSeq: 1,
        readSeq: 0,
        unread: 0,
        lastMessage: null,
      });
    });
  });
});
