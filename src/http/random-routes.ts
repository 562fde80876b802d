import { Router } from 'express';
import type { RandomChat } from '../app/random.ts';
import type { AuditLog } from '../audit.ts';
import type { TokenService } from '../auth/tokens.ts';
import { principalOf, requireUser } from './authenticate.ts';

export function randomRoutes(tokens: TokenService, random: RandomChat, audit: AuditLog): Router {
  const router = Router();
  router.use(requireUser(tokens, audit));

  /** Long poll: 200 {roomId} when paired, 408 at RANDOM_MATCH_TIMEOUT_S; a client that hangs up leaves the queue. */
  router.post('/match', async (_req, res) => {
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    const roomId = await random.match(principalOf(res).userId, gone.signal);
    if (gone.signal.aborted) return;
    if (roomId) res.json({ roomId });
    else res.status(408).json({ code: 'MATCH_TIMEOUT', message: 'no stranger within RANDOM_MATCH_TIMEOUT_S' });
  });

  return router;
}
