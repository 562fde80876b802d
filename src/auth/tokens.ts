import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, jwtVerify, errors } from 'jose';
import { ChatError } from '../contract/errors.ts';

export interface Principal {
  userId: string;
  username: string;
  /** Expiry of the access token, in ms since the epoch. */
  expiresAt: number;
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  /** Seconds until the access token expires. */
  expiresIn: number;
}

type TokenKind = 'access' | 'refresh' | 'resume';

/** A refresh token's id (its JWT `jti`): the key of its row in the refresh token store. */
export const newRefreshId = (): string => randomBytes(16).toString('base64url');

/** Issues and checks HS256 JWTs: access and refresh tokens, and the opaque session-resume token. */
export class TokenService {
  private readonly key: Uint8Array;

  constructor(
    secret: string,
    private readonly accessTtlS: number,
    readonly refreshTtlS: number,
  ) {
    this.key = new TextEncoder().encode(secret);
  }

  /** The refresh token is good only once the store holds `refreshId` (see RefreshTokenStore). */
  async issuePair(user: { id: string; username: string }, refreshId: string = newRefreshId()): Promise<TokenPair> {
    const [accessToken, refreshToken] = await Promise.all([
      this.sign('access', { sub: user.id, name: user.username }, this.accessTtlS),
      this.sign('refresh', { sub: user.id, name: user.username }, this.refreshTtlS, refreshId),
    ]);
    return { accessToken, refreshToken, expiresIn: this.accessTtlS };
  }

  /** Throws ChatError UNAUTHORIZED for a missing, forged or wrong-kind token, TOKEN_EXPIRED for an expired one. */
  async verifyAccess(token: string): Promise<Principal> {
    return (await this.verify(token, 'access')).principal;
  }

  /** The principal and the token's id, which the refresh token store decides on. */
  async verifyRefresh(token: string): Promise<Principal & { refreshId: string }> {
    const { principal, jti } = await this.verify(token, 'refresh');
    return { ...principal, refreshId: jti };
  }

  /** The session-resume token names a delivery history and the user it belongs to. */
  async issueResume(historyId: string, userId: string, ttlS: number): Promise<string> {
    return this.sign('resume', { sub: userId, hid: historyId }, ttlS);
  }

  /** The history id in a resume token, or null when the token is not a valid one for this user. */
  async verifyResume(token: string, userId: string): Promise<string | null> {
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] });
      if (payload.kind !== 'resume' || payload.sub !== userId || typeof payload.hid !== 'string') return null;
      return payload.hid;
    } catch {
      return null;
    }
  }

  private sign(kind: TokenKind, claims: Record<string, string>, ttlS: number, jti = randomBytes(9).toString('base64url')): Promise<string> {
    return new SignJWT({ ...claims, kind })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS)
      .setJti(jti)
      .sign(this.key);
  }

  private async verify(token: string, kind: TokenKind): Promise<{ principal: Principal; jti: string }> {
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] });
      const { sub, name, exp, jti } = payload;
      if (payload.kind !== kind || typeof sub !== 'string' || typeof name !== 'string' || !exp || typeof jti !== 'string') {
        throw new ChatError('UNAUTHORIZED', `not a valid ${kind} token`);
      }
      return { principal: { userId: sub, username: name, expiresAt: exp * 1000 }, jti };
    } catch (err) {
      if (err instanceof ChatError) throw err;
      if (err instanceof errors.JWTExpired) throw new ChatError('TOKEN_EXPIRED', `${kind} token expired`);
      throw new ChatError('UNAUTHORIZED', `invalid ${kind} token`);
    }
  }
}

/** JWT_SECRET if set, otherwise a secret generated once and kept in `<dataDir>/jwt-secret`, so tokens survive restarts. */
export async function loadJwtSecret(configured: string | undefined, dataDir: string): Promise<string> {
  if (configured) return configured;
  const file = join(dataDir, 'jwt-secret');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true });
  const secret = randomBytes(48).toString('base64url');
  // 'wx' fails if another gateway wrote it first; then read theirs.
  await writeFile(file, secret, { flag: 'wx', mode: 0o600 }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  return (await readFile(file, 'utf8')).trim();
}
