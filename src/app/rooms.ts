import type { Broker, BrokerMessage } from '../broker/broker.ts';
import { eventMessage, type Origin } from '../broker/messages.ts';
import { ChatError } from '../contract/errors.ts';
import type { CreateRoom, RoomEvent, SendBody } from '../contract/events.ts';
import type { z } from 'zod';
import type { FileJanitor } from '../files/file-janitor.ts';
import type { Outbox } from '../outbox/outbox.ts';
import type { MessageStore, StoredEvent } from '../store/messages.ts';
import type { RoomStore } from '../store/rooms.ts';
import type { UserStore } from '../store/users.ts';
import type { GatewayOrigin } from './origin.ts';

export interface Actor {
  userId: string;
  username: string;
}

export const roomKey = (roomId: string): string => `rooms.${roomId}`;
export const userKey = (userId: string): string => `users.${userId}`;

/**
 * Room operations shared by the STOMP handlers and the REST API: check membership, store, then publish to
 * the room's topic. An operation that stores an event succeeds once it is stored: the outbox publishes it, now or,
 * should the broker not confirm it, later. One that stores nothing (READ, TYPING, PRESENCE) needs the broker's confirm.
 */
export class RoomService {
  constructor(
    private readonly users: UserStore,
    private readonly rooms: RoomStore,
    private readonly messages: MessageStore,
    private readonly broker: Broker,
    private readonly outbox: Outbox,
    private readonly gateway: GatewayOrigin,
    private readonly files: Pick<FileJanitor, 'releaseFileOf'>,
  ) {}

  async create(actor: Actor, input: z.infer<typeof CreateRoom>) {
    const invited = input.members?.length ? await this.users.resolve(input.members) : [];
    const others = invited.filter((u) => u.id !== actor.userId);
    if (input.kind === 'direct') {
      if (others.length !== 1) throw new ChatError('BAD_REQUEST', 'a direct room has exactly one other member');
      return this.rooms.findOrCreateDirect(actor.userId, others[0]!.id);
    }
    const room = await this.rooms.create({
      kind: input.kind,
      name: input.name ?? `${actor.username}'s room`,
      ownerId: actor.userId,
      memberIds: input.kind === 'group' ? others.map((u) => u.id) : [],
    });
    if (input.kind === 'group') {
      await Promise.all(others.map((u) => this.notifyUser(u.id, { type: 'INVITED', roomId: room.id })));
    }
    return room;
  }

  /** Throws FORBIDDEN unless `userId` belongs to the room (NOT_FOUND when there is no such room). */
  async requireMember(roomId: string, userId: string): Promise<void> {
    if (await this.rooms.isMember(roomId, userId)) return;
    await this.rooms.get(roomId); // NOT_FOUND when there is no such room
    throw new ChatError('FORBIDDEN', `not a member of room ${roomId}`);
  }

  /** The store checks membership in the same statement that appends (one round trip on the hot path). */
  async send(actor: Actor, roomId: string, body: z.infer<typeof SendBody>, origin: Origin, clientMsgId?: string): Promise<StoredEvent> {
    if (body.type !== 'RESOURCE' && body.text.trim() === '') throw new ChatError('BAD_REQUEST', 'text is empty');
    const { stored } = await this.messages.append({
      roomId,
      type: body.type,
      sender: { id: actor.userId, username: actor.username },
      text: body.text,
      replyTo: body.replyTo,
      fileId: body.fileId,
      clientMsgId,
      origin,
    });
    // A retried send (same client-msg-id) publishes the stored event again under its first identity: if the
    // first publish was lost it lands now (before the sweep would), and if not, the outbound interceptor drops the copy.
    await this.publishRoomEvent(stored);
    return stored;
  }

  async edit(actor: Actor, roomId: string, messageId: string, text: string, origin: Origin): Promise<StoredEvent> {
    const stored = await this.messages.edit({ roomId, messageId, userId: actor.userId, text, origin });
    await this.publishRoomEvent(stored);
    return stored;
  }

  async delete(actor: Actor, roomId: string, messageId: string, origin: Origin): Promise<StoredEvent> {
    const isOwner = (await this.rooms.get(roomId)).ownerId === actor.userId;
    const stored = await this.messages.delete({ roomId, messageId, userId: actor.userId, isOwner, origin });
    await this.publishRoomEvent(stored);
    await this.files.releaseFileOf(messageId);
    return stored;
  }

  async read(actor: Actor, roomId: string, seq: number, origin: Origin): Promise<number> {
    await this.requireMember(roomId, actor.userId);
    const readSeq = await this.rooms.markRead(roomId, actor.userId, seq);
    await this.publish(roomKey(roomId), eventMessage({ type: 'READ', roomId, userId: actor.userId, seq: readSeq }, origin));
    return readSeq;
  }

  async typing(actor: Actor, roomId: string, typing: boolean, origin: Origin): Promise<void> {
    await this.requireMember(roomId, actor.userId);
    await this.publish(roomKey(roomId), eventMessage({ type: 'TYPING', roomId, userId: actor.userId, typing }, origin));
  }

  async join(actor: Actor, roomId: string): Promise<void> {
    const stored = await this.rooms.join(roomId, actor.userId, this.gateway.next());
    if (stored) await this.publishRoomEvent(stored);
  }

  async leave(actor: Actor, roomId: string): Promise<void> {
    await this.requireMember(roomId, actor.userId);
    const stored = await this.rooms.leave(roomId, actor.userId, this.gateway.next());
    await this.publishRoomEvent(stored);
  }

  async history(actor: Actor, roomId: string, query: { before?: number; after?: number; limit: number }): Promise<RoomEvent[]> {
    await this.requireMember(roomId, actor.userId);
    return (await this.messages.history(roomId, query)).map((s) => s.event);
  }

  /** Tells every room of the user that they came online or went offline (not history: no seq, not stored). */
  async publishPresence(userId: string, online: boolean): Promise<void> {
    const roomIds = await this.rooms.roomIdsOf(userId);
    // An origin seq per publish: one receiver may be in several of these rooms, and each copy must reach it.
    await Promise.all(
      roomIds.map((id) => this.publish(roomKey(id), eventMessage({ type: 'PRESENCE', userId, online }, this.gateway.next()))),
    );
  }

  notifyUser(userId: string, event: { type: string; [field: string]: unknown }): Promise<void> {
    return this.publish(userKey(userId), eventMessage(event, this.gateway.next()));
  }

  /** Never fails: the event is stored, and what the broker does not confirm now the outbox sweep publishes later. */
  private async publishRoomEvent(stored: StoredEvent): Promise<void> {
    await this.outbox.publish(stored);
  }

  /** Fails with BROKER_UNAVAILABLE when the broker is down. */
  private publish(routingKey: string, message: BrokerMessage): Promise<void> {
    return this.broker.publish('chat', routingKey, message);
  }
}
