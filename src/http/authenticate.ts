import type { NextFunction, Request, Response } from 'express';
import type { AuditLog } from '../audit.ts';
import type { Principal, TokenService } from '../auth/tokens.ts';
import { ChatError } from '../contract/errors.ts';
import { clientAddress } from './api.ts';

/** The principal `requireUser` attached to an authenticated request. */
export const principalOf = (res: Response): Principal => res.locals.principal as Principal;

/** Express middleware: `Authorization: Bearer <access token>` or 401, logged to the audit log. */
export function requireUser(tokens: TokenService, audit: AuditLog) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const auth = req.get('authorization');
      if (!auth?.startsWith('Bearer ')) throw new ChatError('UNAUTHORIZED', 'missing Authorization: Bearer <token>');
      res.locals.principal = await tokens.verifyAccess(auth.slice(7).trim());
    } catch (err) {
      if (err instanceof ChatError) audit.record('token_refused', { ip: clientAddress(req), reason: err.message });
      throw err;
    }
    next();
  };
}
