import { ChatError } from '../contract/errors.ts';
import type { PrismaClient, User } from '../generated/prisma/client.ts';
import { isDriverError } from './driver-errors.ts';
import { isUuid } from './uuid.ts';

export type { User };

/** What makes two usernames the same account: `Alice` and `alice` are one. */
export const usernameKey = (username: string): string => username.toLowerCase();

export class UserStore {
  constructor(private readonly prisma: PrismaClient) {}

  /** @throws ChatError CONFLICT when the username is taken, in any case. */
  async create(username: string, passwordHash: string): Promise<User> {
    try {
      return await this.prisma.user.create({ data: { username, usernameKey: usernameKey(username), passwordHash } });
    } catch (err) {
      if (isDriverError(err, 'UniqueConstraintViolation')) throw new ChatError('CONFLICT', `username ${username} is taken`);
      throw err;
    }
  }

  /** The user whose name is `username` in any case. */
  findByUsername(username: string): Promise<User | null> {
    return this.prisma.user.findUnique({ where: { usernameKey: usernameKey(username) } });
  }

  async setPasswordHash(id: string, passwordHash: string): Promise<void> {
    await this.prisma.user.update({ where: { id }, data: { passwordHash } });
  }

  async findById(id: string): Promise<User | null> {
    return isUuid(id) ? this.prisma.user.findUnique({ where: { id } }) : null;
  }

  /**
   * The users named by ids or usernames in any case (a username never looks like a UUID), once each, in the order
   * first named.
   * @throws ChatError NOT_FOUND naming every unknown one.
   */
  async resolve(idsOrUsernames: string[]): Promise<User[]> {
    // Ids and usernames both compare case-insensitively; the first spelling is the one an error names.
    const named = new Map<string, string>();
    for (const n of idsOrUsernames) if (!named.has(n.toLowerCase())) named.set(n.toLowerCase(), n);
    const names = [...named.keys()];
    if (names.length === 0) return [];
    const ids = names.filter(isUuid);
    const usernames = names.filter((n) => !isUuid(n));
    const found = await this.prisma.user.findMany({ where: { OR: [{ id: { in: ids } }, { usernameKey: { in: usernames } }] } });
    const byName = new Map<string, User>();
    for (const user of found) {
      byName.set(user.id, user);
      byName.set(user.usernameKey, user);
    }
    const unknown = names.filter((n) => !byName.has(n)).map((n) => named.get(n)!);
    if (unknown.length > 0) throw new ChatError('NOT_FOUND', `unknown users: ${unknown.join(', ')}`);
    return [...new Set(names.map((n) => byName.get(n)!))];
  }
}
