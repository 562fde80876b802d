import type { z } from 'zod';
import type { RoomAction } from '../contract/destinations.ts';
import { ChatError } from '../contract/errors.ts';
import { DeleteBody, EditBody, ReadBody, SendBody, TypingBody } from '../contract/events.ts';
import type { Frame } from '../stomp/frame.ts';
import type { StompSession } from '../stomp/session.ts';
import type { RoomService } from './rooms.ts';

/** A SEND to `/app/rooms.{roomId}.{action}`: its JSON body checked, then the room operation, named by this session's next sender seq. */
export async function roomAction(rooms: RoomService, session: StompSession, frame: Frame, roomId: string, action: RoomAction): Promise<void> {
  const actor = { userId: session.userId, username: session.username };
  const origin = { session: session.id, seq: session.nextSenderSeq() };
  switch (action) {
    case 'send': {
      const body = parseBody(SendBody, frame);
      await rooms.send(actor, roomId, body, origin, frame.headers['client-msg-id']);
      return;
    }
    case 'edit': {
      const body = parseBody(EditBody, frame);
      await rooms.edit(actor, roomId, body.messageId, body.text, origin);
      return;
    }
    case 'delete':
      await rooms.delete(actor, roomId, parseBody(DeleteBody, frame).messageId, origin);
      return;
    case 'read':
      await rooms.read(actor, roomId, parseBody(ReadBody, frame).seq, origin);
      return;
    case 'typing':
      return rooms.typing(actor, roomId, parseBody(TypingBody, frame).typing, origin);
  }
}

function parseBody<T extends z.ZodType>(schema: T, frame: Frame): z.infer<T> {
  let json: unknown;
  try {
    json = frame.body.length ? JSON.parse(frame.body.toString('utf8')) : {};
  } catch {
    throw new ChatError('BAD_REQUEST', 'body is not valid JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new ChatError('BAD_REQUEST', parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  }
  return parsed.data;
}
