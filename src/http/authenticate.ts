import type { NextFunction, Request, Response } from 'express';
import type { Principal, TokenService } from '../auth/tokens.ts';
import { ChatError } from '../contract/errors.ts';

/** The principal `requireUser` attached to an authenticated request. */
export const principalOf = (res: Response): Principal => res.locals.principal as Principal;

/** Express middleware: `Authorization: Bearer <access token>` or 401. */
export function requireUser(tokens: TokenService) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const auth = req.get('authorization');
    if (!auth?.startsWith('Bearer ')) throw new ChatError('UNAUTHORIZED', 'missing Authorization: Bearer <token>');
    res.locals.principal = await tokens.verifyAccess(auth.slice(7).trim());
    next();
  };
}
