import { Router } from 'express';
import type { Metrics } from '../metrics.ts';

export interface HealthProbe {
  /** Whether the database answers and the broker link is up. */
  ready(): Promise<{ database: boolean; broker: boolean }>;
  metrics: Metrics;
}

export function healthRoutes(probe: HealthProbe): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const checks = await probe.ready();
    const ok = checks.database && checks.broker;
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not ready', ...checks });
  });
  router.get('/metrics', async (_req, res) => {
    res.type(probe.metrics.contentType).send(await probe.metrics.text());
  });
  return router;
}
