/**
 * `/v1/approvals`: the inbox, one approval with its history, and decisions — by the signed link
 * of a `decideUrl` (`?token=`), by a Standard-Webhooks-signed request of a trusted integration
 * (`baton-integration: <id>` plus `webhook-*` headers), or by an API key with `approvals:decide`.
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { ForbiddenError, NotFoundError, ValidationError } from '../../lib/index.js';
import { APPROVAL_STATUSES, approvalNotice, decideApproval, type DecisionAuth, type EngineDeps } from '../engine/index.js';
import { approvalResponsesOf, approvalSummary, getApproval, listApprovals, verifyIntegrationMessage } from '../store/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { parseBody, queryString } from './validate.js';

const DecisionBody = z.strictObject({
  decision: z.string().min(1),
  comment: z.string().max(4000).optional(),
  /** Modified data, validated against the checkpoint's `modify` schema. */
  input: z.unknown().optional(),
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const INTEGRATION_HEADER = 'baton-integration';

function approvalIdParam(value: string | string[] | undefined): string {
  const id = typeof value === 'string' ? value : '';
  if (!UUID.test(id)) throw new NotFoundError(`approval ${id} not found`);
  return id;
}

function tokenOf(req: Request): string | undefined {
  return typeof req.query.token === 'string' && req.query.token !== '' ? req.query.token : undefined;
}

export function approvalsRouter(deps: EngineDeps, auth: ApiKeyAuthenticator): Router {
  const router = Router();

  router.get('/v1/approvals', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const statusText = queryString(req, 'status');
    const status = statusText === undefined ? undefined : APPROVAL_STATUSES.find((s) => s === statusText);
    if (statusText !== undefined && status === undefined) {
      throw new ValidationError(`status must be one of ${APPROVAL_STATUSES.join(', ')}`, { field: 'status' });
    }
    const limitText = queryString(req, 'limit');
    const limit = limitText === undefined ? 50 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 200) {
      throw new ValidationError('limit must be an integer from 1 to 200', { field: 'limit' });
    }
    const cursor = queryString(req, 'cursor');
    res.json(
      await listApprovals(deps, principalOf(req).organizationId, {
        limit,
        ...(status ? { status } : {}),
        ...(cursor ? { cursor } : {}),
      }),
    );
  });

  router.get('/v1/approvals/:id', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const approvalId = approvalIdParam(req.params.id);
    const approval = await getApproval(deps, approvalId);
    if (!approval || approval.organizationId !== principalOf(req).organizationId) {
      throw new NotFoundError(`approval ${approvalId} not found`);
    }
    const responses = await approvalResponsesOf(deps, [approval.id]);
    res.json({ ...approvalSummary(approval), responses: responses.get(approval.id) ?? [] });
  });

  /*
   * An approver's own decide links (issue 13): the run's webhook carries only the starter's own
   * links, so every other approver fetches theirs with their own key. The starter of a run whose
   * checkpoint refuses self-approval gets 403.
   */
  router.get('/v1/approvals/:id/links', requireApiKey(auth, 'approvals:decide'), async (req, res) => {
    const principal = principalOf(req);
    const approvalId = approvalIdParam(req.params.id);
    const approval = await getApproval(deps, approvalId);
    if (!approval || approval.organizationId !== principal.organizationId) {
      throw new NotFoundError(`approval ${approvalId} not found`);
    }
    const notice = await approvalNotice(deps, approval.id, { identity: principal.subject, roles: principal.roles });
    const links = notice.decideUrls as unknown[];
    if (links.length === 0) throw new ForbiddenError(`${principal.subject} holds no decide link of this approval`);
    res.json(notice);
  });

  router.post(
    '/v1/approvals/:id/decision',
    async (req, res, next) => {
      if (tokenOf(req) || req.get(INTEGRATION_HEADER)) return next();
      return requireApiKey(auth, 'approvals:decide')(req, res, next);
    },
    async (req, res) => {
      const approvalId = approvalIdParam(req.params.id);
      const token = tokenOf(req);
      const integrationId = req.get(INTEGRATION_HEADER);
      let decisionAuth: DecisionAuth;
      if (token) {
        decisionAuth = { via: 'token', token };
      } else if (integrationId) {
        const verified = await verifyIntegrationMessage(deps, integrationId, req.rawBody ?? Buffer.alloc(0), {
          'webhook-id': req.get('webhook-id'),
          'webhook-timestamp': req.get('webhook-timestamp'),
          'webhook-signature': req.get('webhook-signature'),
        });
        decisionAuth = {
          via: 'integration',
          organizationId: verified.integration.organizationId,
          integrationId: verified.integration.id,
          name: verified.integration.name,
          roles: verified.integration.roles,
          messageId: verified.messageId,
        };
      } else {
        const principal = principalOf(req);
        decisionAuth = { via: 'api-key', organizationId: principal.organizationId, subject: principal.subject, roles: principal.roles };
      }
      const body = parseBody(DecisionBody, req.body);
      const outcome = await decideApproval(deps, {
        approvalId,
        decision: body.decision,
        ...(body.comment === undefined ? {} : { comment: body.comment }),
        ...(body.input === undefined ? {} : { input: body.input }),
        auth: decisionAuth,
      });
      // 200: decided. 202: response recorded, more approvers needed (`required: N`).
      res.status(outcome.settled ? 200 : 202).json({
        ...approvalSummary(outcome.approval),
        continues: outcome.continues,
        required: outcome.required,
      });
    },
  );

  return router;
}
