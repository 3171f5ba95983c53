/** Manual intervention on runs (SPEC R5): cancel, retry a step, skip a step, resume. */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { NotFoundError } from '../../lib/index.js';
import { cancelRun, resumeRun, retryStep, skipStep, type Actor, type EngineDeps } from '../engine/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { runIdParam } from './routes-runs.js';
import { parseBody } from './validate.js';
import { documentRoute, AnyObject } from './openapi.js';

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

  documentRoute({ method: 'post', path: '/v1/runs/:id/cancel', summary: 'Cancel a run', tags: ['interventions'], scope: 'runs:write', body: CancelBody, responses: { 200: { description: 'Cancelled (or cancelling)', schema: AnyObject }, 404: { description: 'No such run' }, 409: { description: 'The run is finished' } } });
  router.post('/v1/runs/:id/cancel', write, async (req, res) => {
    const body = parseBody(CancelBody, req.body);
    res.json(await cancelRun(deps, actorOf(req), runIdParam(req), body.reason));
  });

  documentRoute({ method: 'post', path: '/v1/runs/:id/steps/:stepId/retry', summary: 'Re-run a step (and what follows it)', tags: ['interventions'], scope: 'runs:write', body: RetryBody, responses: { 202: { description: 'Re-queued', schema: AnyObject }, 404: { description: 'No such run or step' }, 409: { description: 'The step cannot be retried now' } } });
  router.post('/v1/runs/:id/steps/:stepId/retry', write, async (req, res) => {
    const body = parseBody(RetryBody, req.body);
    res.status(202).json(await retryStep(deps, actorOf(req), runIdParam(req), stepIdParam(req), body.input));
  });

  documentRoute({ method: 'post', path: '/v1/runs/:id/steps/:stepId/skip', summary: 'Mark a step done with an output', tags: ['interventions'], scope: 'runs:write', body: SkipBody, responses: { 200: { description: 'Skipped', schema: AnyObject }, 404: { description: 'No such run or step' }, 409: { description: 'The step cannot be skipped now' } } });
  router.post('/v1/runs/:id/steps/:stepId/skip', write, async (req, res) => {
    const body = parseBody(SkipBody, req.body);
    res.json(await skipStep(deps, actorOf(req), runIdParam(req), stepIdParam(req), body.output));
  });

  documentRoute({ method: 'post', path: '/v1/runs/:id/resume', summary: 'Continue a failed run from its failed steps', tags: ['interventions'], scope: 'runs:write', responses: { 202: { description: 'Resumed', schema: AnyObject }, 404: { description: 'No such run' }, 409: { description: 'The run is not failed' } } });
  router.post('/v1/runs/:id/resume', write, async (req, res) => {
    res.status(202).json(await resumeRun(deps, actorOf(req), runIdParam(req)));
  });

  return router;
}
