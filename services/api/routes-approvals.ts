/**
 * `/v1/approvals`: the inbox, one approval with its history, and decisions — by the signed link
 * of a `decideUrl` (`?token=`), by a Standard-Webhooks-signed request of a trusted integration
 * (`baton-integration: <id>` plus `webhook-*` headers), or by an API key with `approvals:decide`.
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { ForbiddenError, NotFoundError } from '../../lib/index.js';
import { APPROVAL_STATUSES, approvalNotice, decideApproval, type DecisionAuth, type EngineDeps } from '../engine/index.js';
import { approvalResponsesOf, approvalSummary, getApproval, listApprovals, verifyIntegrationMessage } from '../store/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { CursorParam, limitParam, parseBody, parseQuery } from './validate.js';
import { documentRoute, AnyObject, PageOf, UuidParam } from './openapi.js';
import { ApprovalResponseView, ApprovalView } from './openapi-schemas.js';

const DecisionBody = z.strictObject({
  decision: z.string().min(1),
  comment: z.string().max(4000).optional(),
  /** Modified data, validated against the checkpoint's `modify` schema. */
  input: z.unknown().optional(),
});

/** The inbox query; an unknown parameter is refused. */
const ListApprovalsQuery = z.object({
  status: z.enum(APPROVAL_STATUSES, { error: `expected one of ${APPROVAL_STATUSES.join(', ')}` }).optional(),
  limit: limitParam(200, 50),
  cursor: CursorParam,
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

  documentRoute({ method: 'get', path: '/v1/approvals', summary: 'The approvals inbox, newest first', tags: ['approvals'], scope: 'runs:read', query: ListApprovalsQuery, responses: { 200: { description: 'A page of approvals', schema: PageOf(ApprovalView) }, 400: { description: 'Invalid parameter (named)' } } });
  router.get('/v1/approvals', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const { status, limit, cursor } = parseQuery(ListApprovalsQuery, req.query);
    res.json(
      await listApprovals(deps, principalOf(req).organizationId, {
        limit,
        ...(status ? { status } : {}),
        ...(cursor ? { cursor } : {}),
      }),
    );
  });

  documentRoute({ method: 'get', path: '/v1/approvals/:id', summary: 'One approval with every response', tags: ['approvals'], scope: 'runs:read', params: z.object({ id: UuidParam }), responses: { 200: { description: 'The approval', schema: ApprovalView.extend({ responses: z.array(ApprovalResponseView) }) }, 404: { description: 'No such approval' } } });
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
  documentRoute({ method: 'get', path: '/v1/approvals/:id/links', summary: "The caller's own decideUrls", tags: ['approvals'], scope: 'approvals:decide', params: z.object({ id: UuidParam }), responses: { 200: { description: 'Links', schema: AnyObject }, 404: { description: 'No such approval' } } });
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

  documentRoute({ method: 'post', path: '/v1/approvals/:id/decision', summary: 'Decide a checkpoint', description: 'By an API key with `approvals:decide`, by the signed `?token=` of a decideUrl, or by a trusted integration (`baton-integration` plus Standard Webhooks headers).', tags: ['approvals'], auth: 'apiKeyOrToken', params: z.object({ id: UuidParam }), query: z.object({ token: z.string().optional().meta({ description: 'The token of a decideUrl' }) }), body: DecisionBody, responses: { 200: { description: 'Decided', schema: AnyObject }, 202: { description: 'Recorded; more approvers are needed', schema: AnyObject }, 400: { description: 'Invalid decision or modified input (named)' }, 404: { description: 'No such approval' }, 409: { description: 'Already decided' }, 410: { description: 'Expired or the link was used' } } });
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
        client: { ...(req.ip ? { ip: req.ip } : {}), ...(req.get('user-agent') ? { userAgent: req.get('user-agent') } : {}) },
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
