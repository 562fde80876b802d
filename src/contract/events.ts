import { z } from 'zod';

/** Payload schemas of PROTOCOL.md: request bodies clients send, and the events they receive. */

export const Credentials = z.object({
  username: z.string().trim().min(3).max(32).regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
  password: z.string().min(8).max(256),
});
/** Login takes any strings up to a bound: a wrong password is 401 whatever its shape, never 400. */
export const LoginRequest = z.object({ username: z.string().max(64), password: z.string().max(256) });
export const RefreshRequest = z.object({ refreshToken: z.string().min(1) });
/** The current password is bounded as a login's is; the new one follows the sign-up rules. */
export const ChangePasswordRequest = z.object({ currentPassword: z.string().max(256), newPassword: Credentials.shape.password });

/** Kinds a client may create; `random` rooms are made only by pairing two strangers. */
export const CREATABLE_ROOM_KINDS = ['direct', 'group', 'open'] as const;
export const ROOM_KINDS = [...CREATABLE_ROOM_KINDS, 'random'] as const;
export const RoomKind = z.enum(ROOM_KINDS);
export type RoomKind = z.infer<typeof RoomKind>;

export const CreateRoom = z.object({
  name: z.string().trim().min(1).max(100).optional(),
  kind: z.enum(CREATABLE_ROOM_KINDS),
  /** User ids or usernames to add. */
  members: z.array(z.string().min(1)).max(1000).optional(),
});

export const HistoryQuery = z.object({
  before: z.coerce.number().int().positive().optional(),
  after: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const MESSAGE_TYPES = ['CHAT', 'NOTICE', 'RESOURCE'] as const;
export const SendBody = z.object({
  type: z.enum(MESSAGE_TYPES).default('CHAT'),
  text: z.string().max(16_000).default(''),
  replyTo: z.string().min(1).optional(),
  fileId: z.string().min(1).optional(),
});
export const EditBody = z.object({ messageId: z.string().min(1), text: z.string().min(1).max(16_000) });
export const DeleteBody = z.object({ messageId: z.string().min(1) });
export const ReadBody = z.object({ seq: z.number().int().nonnegative() });
export const TypingBody = z.object({ typing: z.boolean() });

export const UserRef = z.object({ id: z.string(), username: z.string() });
export type UserRef = z.infer<typeof UserRef>;

export const FileRef = z.object({ fileId: z.string(), name: z.string(), size: z.number(), contentType: z.string() });

/**
 * Live frames and since-seq replays carry a message as it was sent. REST history carries it as it is now: the latest
 * edit's `text` and its `editedAt`, or `deleted: true` with no `text` (and no `file`).
 */
export const MessageEvent = z
  .object({
    type: z.enum(['CHAT', 'NOTICE', 'RESOURCE', 'ENTER', 'LEAVE']),
    id: z.string(),
    roomId: z.string(),
    seq: z.number().int().positive(),
    sender: UserRef,
    text: z.string().optional(),
    replyTo: z.string().optional(),
    file: FileRef.optional(),
    createdAt: z.string(),
    editedAt: z.string().optional(),
    deleted: z.literal(true).optional(),
  })
  .refine((e) => (e.deleted === true) === (e.text === undefined), { message: 'text is absent exactly when deleted' });
export const EditEvent = z.object({
  type: z.literal('EDIT'),
  roomId: z.string(),
  seq: z.number().int().positive(),
  messageId: z.string(),
  text: z.string(),
  editedAt: z.string(),
});
export const DeleteEvent = z.object({
  type: z.literal('DELETE'),
  roomId: z.string(),
  seq: z.number().int().positive(),
  messageId: z.string(),
});
export const ReadEvent = z.object({ type: z.literal('READ'), roomId: z.string(), userId: z.string(), seq: z.number() });
export const TypingEvent = z.object({ type: z.literal('TYPING'), roomId: z.string(), userId: z.string(), typing: z.boolean() });
export const PresenceEvent = z.object({ type: z.literal('PRESENCE'), userId: z.string(), online: z.boolean() });
export const NotifyEvent = z.object({
  type: z.literal('NOTIFY'),
  roomId: z.string(),
  messageId: z.string(),
  preview: z.string(),
  unread: z.number(),
});
export const MatchedEvent = z.object({ type: z.literal('MATCHED'), roomId: z.string() });
export const MatchTimeoutEvent = z.object({ type: z.literal('MATCH_TIMEOUT') });
export const InvitedEvent = z.object({ type: z.literal('INVITED'), roomId: z.string() });
export const HealthEvent = z.object({ type: z.literal('HEALTH'), broker: z.enum(['up', 'down']), at: z.string() });
export const ResyncEvent = z.object({ type: z.literal('RESYNC'), roomId: z.string(), fromSeq: z.number() });

export const RoomEvent = z.discriminatedUnion('type', [MessageEvent, EditEvent, DeleteEvent]);
export type RoomEvent = z.infer<typeof RoomEvent>;
export type MessageEvent = z.infer<typeof MessageEvent>;

export const Event = z.discriminatedUnion('type', [
  MessageEvent,
  EditEvent,
  DeleteEvent,
  ReadEvent,
  TypingEvent,
  PresenceEvent,
  NotifyEvent,
  MatchedEvent,
  MatchTimeoutEvent,
  InvitedEvent,
  HealthEvent,
  ResyncEvent,
]);
export type Event = z.infer<typeof Event>;

export const ErrorEvent = z.object({
  code: z.string(),
  message: z.string(),
  clientRequestCode: z.string().optional(),
});
export type ErrorEvent = z.infer<typeof ErrorEvent>;
