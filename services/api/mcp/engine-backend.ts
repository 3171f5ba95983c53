/**
 * The MCP tools on the engine, as one principal (the API key of the `/mcp` request): the same
 * calls, scopes and rules as the REST routes they mirror.
 */
import { ForbiddenError, ValidationError } from '../../../lib/index.js';
import { findDefinition, getDefinitionVersion, getRunManifest, getRunView, listApprovals, listDefinitions } from '../../store/index.js';
import {
  cancelRun,
  decideApproval,
  startRun,
  type EngineDeps,
} from '../../engine/index.js';
import type { Principal } from '../auth.js';
import type { BatonBackend, RunSnapshot } from './server.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function uuid(id: string, field: string): string {
  if (!UUID.test(id)) throw new ValidationError(`${field} must be a run or approval id (a UUID)`, { field });
  return id;
}

/** The backend of one `/mcp` request's principal. */
export function engineBackend(deps: EngineDeps, principal: Principal): BatonBackend {
  const need = (scope: string) => {
    if (!principal.scopes.includes(scope) && !principal.scopes.includes('admin')) throw new ForbiddenError(`this API key lacks the "${scope}" scope`);
  };
  const org = principal.organizationId;
  return {
    async listDefinitions() {
      need('runs:read');
      return { items: await listDefinitions(deps.database.db, org) };
    },
    async describeDefinition(slug, version) {
      need('runs:read');
      const stored = await findDefinition(deps.database.db, org, slug, version);
      const { source: _source, ...view } = await getDefinitionVersion(deps.database.db, org, slug, stored.version);
      return view;
    },
    async startRun(body) {
      need('runs:write');
      const run = await startRun(deps, {
        organizationId: org,
        createdBy: principal.subject,
        definition: body.definition,
        ...(body.version === undefined ? {} : { version: body.version }),
        input: body.input,
        ...(body.idempotencyKey === undefined ? {} : { idempotencyKey: body.idempotencyKey }),
      });
      return { id: run.id, status: run.status };
    },
    async getRun(id) {
      need('runs:read');
      return (await getRunView(deps, org, uuid(id, 'id'))) as unknown as RunSnapshot;
    },
    async listApprovals(status) {
      need('runs:read');
      return listApprovals(deps, org, { limit: 50, ...(status ? { status } : {}) });
    },
    async decideApproval(id, body) {
      need('approvals:decide');
      const outcome = await decideApproval(deps, {
        approvalId: uuid(id, 'approvalId'),
        decision: body.decision,
        ...(body.input === undefined ? {} : { input: body.input }),
        ...(body.comment === undefined ? {} : { comment: body.comment }),
        auth: { via: 'api-key', organizationId: org, subject: principal.subject, roles: principal.roles },
      });
      return { id: outcome.approval.id, status: outcome.approval.status, decision: outcome.approval.decision, settled: outcome.settled, continues: outcome.continues, required: outcome.required };
    },
    async cancelRun(id, reason) {
      need('runs:write');
      return cancelRun(deps, principal, uuid(id, 'id'), reason);
    },
    async getManifest(id) {
      need('runs:read');
      return getRunManifest(deps, org, uuid(id, 'id'));
    },
  };
}
