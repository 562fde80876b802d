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

/** Issues and checks HS256 JWTs: access and refresh tokens, and the opaque session-resume token. */
export class TokenService {
  private readonly key: Uint8Array;

  constructor(
    secret: string,
    private readonly accessTtlS: number,
    private readonly refreshTtlS: number,
  ) {
    this.key = new TextEncoder().encode(secret);
  }

  async issuePair(user: { id: string; username: string }): Promise<TokenPair> {
    const [accessToken, refreshToken] = await Promise.all([
      this.sign('access', { sub: user.id, name: user.username }, this.accessTtlS),
      this.sign('refresh', { sub: user.id, name: user.username }, this.refreshTtlS),
    ]);
    return { accessToken, refreshToken, expiresIn: this.accessTtlS };
  }

  /** Throws ChatError UNAUTHORIZED for a missing, forged or wrong-kind token, TOKEN_EXPIRED for an expired one. */
  async verifyAccess(token: string): Promise<Principal> {
    return this.verify(token, 'access');
  }

  async verifyRefresh(token: string): Promise<Principal> {
    return this.verify(token, 'refresh');
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

  private sign(kind: TokenKind, claims: Record<string, string>, ttlS: number): Promise<string> {
    return new SignJWT({ ...claims, kind })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS)
      .setJti(randomBytes(9).toString('base64url'))
      .sign(this.key);
  }

  private async verify(token: string, kind: TokenKind): Promise<Principal> {
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] });
      if (payload.kind !== kind || typeof payload.sub !== 'string' || typeof payload.name !== 'string' || !payload.exp) {
        throw new ChatError('UNAUTHORIZED', `not a valid ${kind} token`);
      }
      return { userId: payload.sub, username: payload.name, expiresAt: payload.exp * 1000 };
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
