/**
 * `/v1/roles`: organization role membership (issue 12 item 7). `PUT /v1/roles/:role` (`admin`)
 * replaces the subjects holding a role; a checkpoint with `approvers: [{role}]` then mints one
 * decide link per member, so a `required: N` quorum can be reached through links. Reading needs
 * `runs:read`.
 */
import { Router } from 'express';
import { z } from 'zod';
import { getRole, listRoles, putRoleMembers, type StoreDeps } from '../store/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { parseBody } from './validate.js';
import { documentRoute, ItemsOf } from './openapi.js';

/** A role name, as in `approvers: [{role}]` and an API key's `roles`. */
const RoleName = z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, { error: 'expected a role name such as "finance"' });
/** A subject, as an API key's `subject`. */
const Subject = z.string().regex(/^(user|service):[A-Za-z0-9._@-]{1,120}$/, { error: 'expected "user:<name>" or "service:<name>"' });

const RoleParams = z.object({ role: RoleName });
const PutRoleBody = z.strictObject({ members: z.array(Subject).max(1000, { error: 'at most 1000 members' }) });
const RoleView = z.object({ role: z.string(), members: z.array(z.string()), updatedAt: z.string() });

export function rolesRouter(deps: Pick<StoreDeps, 'database'>, auth: ApiKeyAuthenticator): Router {
  const router = Router();

  documentRoute({ method: 'put', path: '/v1/roles/:role', summary: 'Replace the members of a role', description: 'Subjects such as `user:alice` or `service:x`. A checkpoint with `approvers: [{role}]` opened afterwards mints one decide link per member.', tags: ['admin'], scope: 'admin', params: RoleParams, body: PutRoleBody, responses: { 200: { description: 'The role', schema: RoleView }, 400: { description: 'Invalid role name or member (named field)' } } });
  router.put('/v1/roles/:role', requireApiKey(auth, 'admin'), async (req, res) => {
    const { role } = parseBody(RoleParams, { role: req.params.role });
    const { members } = parseBody(PutRoleBody, req.body);
    res.json(await putRoleMembers(deps, principalOf(req).organizationId, role, members));
  });

  documentRoute({ method: 'get', path: '/v1/roles', summary: 'Roles with their members', tags: ['admin'], scope: 'runs:read', responses: { 200: { description: 'Every role that was set', schema: ItemsOf(RoleView) } } });
  router.get('/v1/roles', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json({ items: await listRoles(deps, principalOf(req).organizationId) });
  });

  documentRoute({ method: 'get', path: '/v1/roles/:role', summary: 'One role with its members', tags: ['admin'], scope: 'runs:read', params: RoleParams, responses: { 200: { description: 'The role', schema: RoleView }, 400: { description: 'Invalid role name' }, 404: { description: 'The role was never set' } } });
  router.get('/v1/roles/:role', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const { role } = parseBody(RoleParams, { role: req.params.role });
    res.json(await getRole(deps, principalOf(req).organizationId, role));
  });

  return router;
}
