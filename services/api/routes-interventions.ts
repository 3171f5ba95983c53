/** Manual intervention on runs (SPEC R5): cancel, retry a step, skip a step, resume. */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { NotFoundError } from '../../lib/index.js';
import { cancelRun, resumeRun, retryStep, skipStep, type Actor, type EngineDeps } from '../engine/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { runIdParam } from './routes-runs.js';
import { parseBody } from './validate.js';

const CancelBody = z.strictObject({ reason: z.string().min(1).max(2000).optional() });
const RetryBody = z.strictObject({ input: z.unknown().optional() });
const SkipBody = z.strictObject({ output: z.unknown().optional() });

function actorOf(req: Request): Actor {
  const principal = principalOf(req);
  return { organizationId: principal.organizationId, subject: principal.subject };
}

function stepIdParam(req: Request): string {
  const id = String(req.params.stepId ?? '');
  if (!/^[a-z][a-z0-9_]*$/.test(id)) throw new NotFoundError(`step ${id} not found`, { field: 'stepId' });
  return id;
}

export function interventionsRouter(deps: EngineDeps, auth: ApiKeyAuthenticator): Router {
  const router = Router();
  const write = requireApiKey(auth, 'runs:write');

  router.post('/v1/runs/:id/cancel', write, async (req, res) => {
    const body = parseBody(CancelBody, req.body);
    res.json(await cancelRun(deps, actorOf(req), runIdParam(req), body.reason));
  });

  router.post('/v1/runs/:id/steps/:stepId/retry', write, async (req, res) => {
    const body = parseBody(RetryBody, req.body);
    res.status(202).json(await retryStep(deps, actorOf(req), runIdParam(req), stepIdParam(req), body.input));
  });

  router.post('/v1/runs/:id/steps/:stepId/skip', write, async (req, res) => {
    const body = parseBody(SkipBody, req.body);
    res.json(await skipStep(deps, actorOf(req), runIdParam(req), stepIdParam(req), body.output));
  });

  router.post('/v1/runs/:id/resume', write, async (req, res) => {
    res.status(202).json(await resumeRun(deps, actorOf(req), runIdParam(req)));
  });

  return router;
}
