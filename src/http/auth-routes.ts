import { Router } from 'express';
import { hashPassword, verifyPassword } from '../auth/passwords.ts';
import type { TokenService } from '../auth/tokens.ts';
import { ChatError } from '../contract/errors.ts';
import { Credentials, RefreshRequest } from '../contract/events.ts';
import type { UserStore } from '../store/users.ts';

export function authRoutes(users: UserStore, tokens: TokenService): Router {
  const router = Router();

  router.post('/signup', async (req, res) => {
    const { username, password } = Credentials.parse(req.body);
    const user = await users.create(username, await hashPassword(password));
    res.status(201).json({ id: user.id, username: user.username });
  });

  router.post('/login', async (req, res) => {
    const { username, password } = Credentials.parse(req.body);
    const user = await users.findByUsername(username);
    // Verify against something even for unknown users, so timing does not tell which usernames exist.
    const ok = await verifyPassword(user?.passwordHash ?? DUMMY_HASH, password);
    if (!user || !ok) throw new ChatError('UNAUTHORIZED', 'wrong username or password');
    res.json({ ...(await tokens.issuePair(user)), user: { id: user.id, username: user.username } });
  });

  router.post('/refresh', async (req, res) => {
    const { refreshToken } = RefreshRequest.parse(req.body);
    const principal = await tokens.verifyRefresh(refreshToken);
    const user = await users.findById(principal.userId);
    if (!user) throw new ChatError('UNAUTHORIZED', 'user no longer exists');
    res.json({ ...(await tokens.issuePair(user)), user: { id: user.id, username: user.username } });
  });

  return router;
}

const DUMMY_HASH = '$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$2aO7MVlpSmHgaGyzYD8yLLz2Oa0r2e1wvcVzW8s1Zpg';
