import type { PrismaClient } from '../generated/prisma/client.ts';

/**
 * What presenting a refresh token came to: `rotated` (its successor is stored), `unknown`, `revoked` (its family
 * was revoked before), `reused` (retired past the grace: its family is revoked now).
 */
export type RotateOutcome = 'rotated' | 'unknown' | 'revoked' | 'reused';

/**
 * Refresh token families: a login starts one, each refresh retires the token presented and stores its successor
 * in the same family. A retired token presented again after the grace is taken as stolen: its family is revoked,
 * and every token of it refused from then on.
 */
export class RefreshTokenStore {
  constructor(private readonly prisma: PrismaClient) {}

  /** A new family with its first token; the user's expired tokens, and families left empty, go. */
  async startFamily(userId: string, tokenId: string, expiresAt: Date, now = new Date()): Promise<void> {
    await this.prisma.refreshToken.deleteMany({ where: { family: { userId }, expiresAt: { lt: now } } });
    await this.prisma.refreshFamily.deleteMany({ where: { userId, tokens: { none: {} } } });
    await this.prisma.refreshFamily.create({ data: { userId, tokens: { create: { id: tokenId, expiresAt } } } });
  }

  /** Revokes every family of the user: each of its logins must log in again (after a password change). */
  async revokeAll(userId: string, now = new Date()): Promise<void> {
    await this.prisma.refreshFamily.updateMany({ where: { userId, revokedAt: null }, data: { revokedAt: now } });
  }

  /**
   * Retires `tokenId` and stores `successorId` in its family. A token already retired less than `graceMs` ago
   * (two tabs refreshing at once) gets a successor too; one retired longer ago revokes its family.
   */
  async rotate(tokenId: string, successorId: string, expiresAt: Date, graceMs: number, now = new Date()): Promise<RotateOutcome> {
    // One statement decides which of two concurrent refreshes retired the token.
    const retired = await this.prisma.refreshToken.updateMany({
      where: { id: tokenId, retiredAt: null, family: { revokedAt: null } },
      data: { retiredAt: now },
    });
    const token = await this.prisma.refreshToken.findUnique({ where: { id: tokenId }, include: { family: true } });
    if (!token) return 'unknown';
    if (token.family.revokedAt) return 'revoked';
    if (retired.count === 0 && now.getTime() - token.retiredAt!.getTime() >= graceMs) {
      await this.prisma.refreshFamily.update({ where: { id: token.familyId }, data: { revokedAt: now } });
      return 'reused';
    }
    await this.prisma.refreshToken.create({ data: { id: successorId, familyId: token.familyId, expiresAt } });
    return 'rotated';
  }
}
