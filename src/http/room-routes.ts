import { Router } from 'express';
import type { RoomService } from '../app/rooms.ts';
import type { AuditLog } from '../audit.ts';
import type { TokenService } from '../auth/tokens.ts';
import { CreateRoom, HistoryQuery } from '../contract/events.ts';
import type { RoomStore } from '../store/rooms.ts';
import { principalOf, requireUser } from './authenticate.ts';

/** Whether each user has a live session on some gateway. */
export type OnlineCheck = (userIds: string[]) => Promise<Set<string>>;

export function roomRoutes(tokens: TokenService, service: RoomService, rooms: RoomStore, online: OnlineCheck, audit: AuditLog): Router {
  const router = Router();
  router.use(requireUser(tokens, audit));
  const actor = (res: Parameters<typeof principalOf>[0]) => {
    const p = principalOf(res);
    return { userId: p.userId, username: p.username };
  };

  router.get('/', async (_req, res) => {
    res.json(await rooms.listForUser(principalOf(res).userId));
  });

  router.get('/open', async (_req, res) => {
    res.json(await rooms.listOpen());
  });

  router.post('/', async (req, res) => {
    const room = await service.create(actor(res), CreateRoom.parse(req.body));
    res.status(201).json(room);
  });

  router.post('/:id/join', async (req, res) => {
    await service.join(actor(res), req.params.id);
    res.status(204).end();
  });

  router.post('/:id/leave', async (req, res) => {
    await service.leave(actor(res), req.params.id);
    res.status(204).end();
  });

  router.get('/:id/members', async (req, res) => {
    await service.requireMember(req.params.id, principalOf(res).userId);
    const members = await rooms.members(req.params.id);
    const live = await online(members.map((m) => m.id));
    res.json(members.map((m) => ({ ...m, online: live.has(m.id) })));
  });

  router.get('/:id/messages', async (req, res) => {
    res.json(await service.history(actor(res), req.params.id, HistoryQuery.parse(req.query)));
  });

  return router;
}
