/** `/v1/approvals`: the inbox, and decisions by signed link (`?token=`) or API key. */
import { Router } from 'express';
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../../lib/index.js';
import { approvalSummary, decideApproval, getApproval, listApprovals, type DecisionAuth, type EngineDeps } from '../engine/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { parseBody } from './validate.js';

const DecisionBody = z.strictObject({
  decision: z.string().min(1),
  comment: z.string().max(4000).optional(),
});

const STATUSES = ['pending', 'decided', 'expired'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function approvalIdParam(value: unknown): string {
  const id = String(value ?? '');
  if (!UUID.test(id)) throw new NotFoundError(`approval ${id} not found`);
  return id;
}

export function approvalsRouter(deps: EngineDeps, auth: ApiKeyAuthenticator): Router {
  const router = Router();

  router.get('/v1/approvals', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const status = req.query.status === undefined ? undefined : String(req.query.status);
    if (status !== undefined && !STATUSES.includes(status)) {
      throw new ValidationError(`status must be one of ${STATUSES.join(', ')}`, { field: 'status' });
    }
    const limit = req.query.limit === undefined ? 50 : Number(req.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 200) {
      throw new ValidationError('limit must be an integer from 1 to 200', { field: 'limit' });
    }
    const cursor = req.query.cursor === undefined ? undefined : String(req.query.cursor);
    if (cursor !== undefined && Number.isNaN(Date.parse(cursor))) throw new ValidationError('invalid cursor', { field: 'cursor' });
    res.json(
      await listApprovals(deps, principalOf(req).organizationId, {
        limit,
        ...(status ? { status } : {}),
        ...(cursor ? { cursor } : {}),
      }),
    );
  });

  router.get('/v1/approvals/:id', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const approval = await getApproval(deps, approvalIdParam(req.params.id));
    if (!approval || approval.organizationId !== principalOf(req).organizationId) {
      throw new NotFoundError(`approval ${req.params.id} not found`);
    }
    res.json(approvalSummary(approval));
  });

  // Authorized by the decideUrl's signed token, or else by an API key with `approvals:decide`.
  router.post(
    '/v1/approvals/:id/decision',
    async (req, res, next) => {
      if (typeof req.query.token === 'string' && req.query.token !== '') return next();
      return requireApiKey(auth, 'approvals:decide')(req, res, next);
    },
    async (req, res) => {
      const approvalId = approvalIdParam(req.params.id);
      const body = parseBody(DecisionBody, req.body);
      const token = typeof req.query.token === 'string' && req.query.token !== '' ? req.query.token : undefined;
      let auth: DecisionAuth;
      if (token) {
        auth = { via: 'token', token };
      } else {
        const principal = principalOf(req);
        auth = { via: 'api-key', organizationId: principal.organizationId, subject: principal.subject };
      }
      const decided = await decideApproval(deps, {
        approvalId,
        decision: body.decision,
        ...(body.comment === undefined ? {} : { comment: body.comment }),
        auth,
      });
      res.json(approvalSummary(decided));
    },
  );

  return router;
}
