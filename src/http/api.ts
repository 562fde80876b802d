import express, { type ErrorRequestHandler, type Request, type Router } from 'express';
import { ZodError } from 'zod';
import { ChatError, HTTP_STATUS } from '../contract/errors.ts';
import type { Logger } from '../logger.ts';

/** The client's address: the socket's peer, or what a proxy that TRUST_PROXY names put in X-Forwarded-For. */
export const clientAddress = (req: Request): string => req.ip ?? req.socket.remoteAddress ?? 'unknown';

/**
 * The REST app: JSON in and out, every error as `{code, message}` with its status. `trustProxy` (TRUST_PROXY) is
 * express's `trust proxy`: false (the default) believes no X-Forwarded-For, which any client can write.
 */
export function createApi(routes: Record<string, Router>, log: Logger, trustProxy: boolean | number | string): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', trustProxy);
  app.use(express.json({ limit: '64kb' }));
  for (const [path, router] of Object.entries(routes)) app.use(path, router);
  app.use((_req, res) => {
    res.status(404).json({ code: 'NOT_FOUND', message: 'no such endpoint' });
  });
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    if (err instanceof ChatError) return void res.status(HTTP_STATUS[err.code]).json({ code: err.code, message: err.message });
    if (err instanceof ZodError) {
      const message = err.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
      return void res.status(400).json({ code: 'BAD_REQUEST', message });
    }
    // body-parser's own errors (malformed JSON, too large) carry a status.
    const status = (err as { status?: number }).status;
    if (status === 413) return void res.status(413).json({ code: 'TOO_LARGE', message: 'request body too large' });
    if (status && status >= 400 && status < 500) return void res.status(status).json({ code: 'BAD_REQUEST', message: String((err as Error).message) });
    log.error({ err }, 'request failed');
    res.status(500).json({ code: 'INTERNAL', message: 'internal error' });
  };
  app.use(onError);
  return app;
}
