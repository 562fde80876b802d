import { ChatError } from '../contract/errors.ts';
import type { PrismaClient, User } from '../generated/prisma/client.ts';
import { isDriverError } from './driver-errors.ts';
import { isUuid } from './uuid.ts';

export type { User };

export class UserStore {
  constructor(private readonly prisma: PrismaClient) {}

  /** @throws ChatError CONFLICT when the username is taken. */
  async create(username: string, passwordHash: string): Promise<User> {
    try {
      return await this.prisma.user.create({ data: { username, passwordHash } });
    } catch (err) {
      if (isDriverError(err, 'UniqueConstraintViolation')) throw new ChatError('CONFLICT', `username ${username} is taken`);
      throw err;
    }
  }

  findByUsername(username: string): Promise<User | null> {
    return this.prisma.user.findUnique({ where: { username } });
  }

  async findById(id: string): Promise<User | null> {
    return isUuid(id) ? this.prisma.user.findUnique({ where: { id } }) : null;
  }

  /**
   * The users named by ids or usernames (a username never looks like a UUID), once each, in the order first named.
   * @throws ChatError NOT_FOUND naming every unknown one.
   */
  async resolve(idsOrUsernames: string[]): Promise<User[]> {
    const names = [...new Set(idsOrUsernames.map((n) => (isUuid(n) ? n.toLowerCase() : n)))];
    if (names.length === 0) return [];
    const ids = names.filter(isUuid);
    const usernames = names.filter((n) => !isUuid(n));
    const found = await this.prisma.user.findMany({ where: { OR: [{ id: { in: ids } }, { username: { in: usernames } }] } });
    const byName = new Map<string, User>();
    for (const user of found) {
      byName.set(user.id, user);
      byName.set(user.username, user);
    }
    const unknown = names.filter((n) => !byName.has(n));
    if (unknown.length > 0) throw new ChatError('NOT_FOUND', `unknown users: ${unknown.join(', ')}`);
    return [...new Set(names.map((n) => byName.get(n)!))];
  }
}
