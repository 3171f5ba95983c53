/**
 * Bull Board at `/admin/queues`, behind API-key auth (Bearer, or the key as the Basic-auth
 * password so a browser can log in). `runs` and `checkpoints` are read-only: their jobs are
 * driven by Postgres, and a "promote" of a parked checkpoint must go through a decision.
 */
import type { NextFunction, Request, Response, Router } from 'express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queues } from '../../queues/index.js';
import { credentialFrom, type ApiKeyAuthenticator } from './auth.js';

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
    const key = credentialFrom(req);
    const principal = key ? await auth.resolve(key) : null;
    if (!principal || !principal.scopes.includes('admin')) {
      res
        .status(401)
        .set('www-authenticate', 'Basic realm="Baton queues", charset="UTF-8"')
        .json({ error: { code: 'UNAUTHORIZED', message: 'Bull Board needs an admin API key (Bearer, or as the Basic-auth password)' } });
      return;
    }
    next();
  };
  // @bull-board/express types its router as `any`; it is an express Router.
  return [guard, serverAdapter.getRouter() as Router] as const;
}
