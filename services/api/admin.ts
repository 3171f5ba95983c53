/**
 * Bull Board at `/admin/queues`, for the platform administrator only: it shows every
 * organization's jobs and failure messages, so it takes the platform-admin key
 * (`BATON_ADMIN_API_KEY`), as Bearer or as the Basic-auth password so a browser can log in; an
 * organization's key gets 403. `runs` and `checkpoints` are read-only: their jobs are
 * driven by Postgres, and a "promote" of a parked checkpoint must go through a decision.
 */
import type { NextFunction, Request, Response, Router } from 'express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queues } from '../../queues/index.js';
import { credentialFrom, platformRefusal, type ApiKeyAuthenticator } from './auth.js';

export const ADMIN_PATH = '/admin/queues';

const READ_ONLY = new Set(['runs', 'checkpoints']);

/** The Bull Board router with its auth guard, to mount at {@link ADMIN_PATH}. */
export function adminRouter(queues: Queues, auth: ApiKeyAuthenticator) {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(ADMIN_PATH);
  createBullBoard({
    queues: queues.all().map((q) => new BullMQAdapter(q, { readOnlyMode: READ_ONLY.has(q.name) })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Baton' } },
  });
  const guard = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const refusal = await platformRefusal(auth, credentialFrom(req));
    if (!refusal) return next();
    // A browser asks for the Basic-auth password (the platform-admin key) on a 401.
    if (refusal.httpStatus === 401) res.set('www-authenticate', 'Basic realm="Baton queues", charset="UTF-8"');
    res.status(refusal.httpStatus).json({ error: { code: refusal.code, message: `Bull Board: ${refusal.message}` } });
  };
  // @bull-board/express types its router as `any`; it is an express Router.
  return [guard, serverAdapter.getRouter() as Router] as const;
}
