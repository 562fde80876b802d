import { roomAction, roomTopic } from '../../src/contract/destinations.ts';
import { inBatches } from './batches.ts';
import { createGroupRoom, createUsers, runPrefix } from './rest.ts';

/**
 * What the generator talks to: the chat gateway (PROTOCOL.md: REST sign-up and rooms, `/topic/rooms.{id}`,
 * `/app/rooms.{id}.send`) or a plain STOMP broker (RabbitMQ Web-STOMP, the echo relay), where a room is just
 * a topic and a message is relayed without being stored or de-duplicated.
 */
export type Target =
  | { kind: 'gateway'; name: string; httpUrl: string; wsUrl: string; pid?: number }
  | { kind: 'stomp'; name: string; wsUrl: string; login: string; passcode: string; pid?: number };

/** One load client, as the orchestrator hands it to a worker process. */
export interface ClientSpec {
  /** Its index among all clients: the sender id in every load message it sends. */
  index: number;
  room: number;
  connectHeaders: Record<string, string>;
  roomDestination: string;
  sendDestination: string;
  /** Gateway: the body is a chat `SendBody` and errors arrive on /user/queue/errors. Broker: the body is the load text. */
  chat: boolean;
  /** Sender indices of everyone in the room, itself included: whose messages it must receive. */
  peers: number[];
}

/**
 * Users, rooms and client specs for `rooms` rooms of `members` clients each. Every client is its own STOMP
 * session; on the gateway they are sessions of `users` distinct accounts (client i is user i mod users, so a
 * room's members are distinct as long as users >= members), because each sign-up and login costs an argon2 hash.
 */
export async function roomClients(target: Target, rooms: number, members: number, tag: string, users = rooms * members): Promise<ClientSpec[]> {
  const peersOf = (room: number): number[] => Array.from({ length: members }, (_, m) => room * members + m);
  if (target.kind === 'stomp') {
    const run = runPrefix(tag).slice(0, -1);
    return Array.from({ length: rooms * members }, (_, index) => {
      const room = Math.floor(index / members);
      const topic = `/topic/lt.${run}.${room}`;
      return {
        index,
        room,
        connectHeaders: { login: target.login, passcode: target.passcode, host: '/' },
        roomDestination: topic,
        sendDestination: topic,
        chat: false,
        peers: peersOf(room),
      };
    });
  }
  if (users < members) throw new Error(`${users} users cannot fill rooms of ${members} distinct members`);
  const accounts = await createUsers(target.httpUrl, Math.min(users, rooms * members), runPrefix(tag));
  const userOf = (index: number) => accounts[index % accounts.length]!;
  const roomIds = await inBatches(rooms, 8, (r) => createGroupRoom(target.httpUrl, `${tag} room ${r}`, peersOf(r).map(userOf)));
  return Array.from({ length: rooms * members }, (_, index) => {
    const room = Math.floor(index / members);
    const user = userOf(index);
    return {
      index,
      room,
      connectHeaders: { Authorization: `Bearer ${user.accessToken}` },
      roomDestination: roomTopic(roomIds[room]!),
      sendDestination: roomAction(roomIds[room]!, 'send'),
      chat: true,
      peers: peersOf(room),
    };
  });
}
