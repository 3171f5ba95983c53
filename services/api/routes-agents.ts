/**
 * `/v1/agents`: the organization's named agents (SPEC G1). `GET` lists the latest version of
 * each (with how many versions exist) or every version of one; `POST` (admin) adds the next
 * version of an agent from a catalog entry (YAML as in `agents/catalog/*.yaml`, or the same
 * object as JSON). Runs pin the versions they start with, so a new version affects new runs only.
 */
import express, { Router, type Request } from 'express';
import { isMap, parseDocument } from 'yaml';
import { NotFoundError, ValidationError } from '../../lib/index.js';
import type { AgentSpec } from '../../agents/types.js';
import { addAgentVersion, agentVersions, listAgents } from '../store/index.js';
import type { EngineDeps } from '../engine/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { YAML_CONTENT_TYPES } from './routes-definitions.js';
import { documentRoute, AnyObject, ItemsOf } from './openapi.js';
import { AgentListItem } from './openapi-schemas.js';
import { z } from 'zod';

/**
 * Parses and validates one catalog entry (the agents module's catalog parser, injected by the
 * composition root so that `services/` never loads agent code).
 * @throws {DefinitionError} with `file:line:column` positions.
 */
export type AgentParser = (source: string, file: string) => AgentSpec;

/** Name of agents: `summarizer`, `image-generator-openai`. */
const AGENT_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** Largest accepted entry body. */
const BODY_LIMIT = '256kb';

function nameParam(req: Request): string {
  const name = String(req.params.name ?? '');
  if (!AGENT_NAME.test(name)) throw new NotFoundError(`agent "${name}" not found`, { field: 'name' });
  return name;
}

/** The body as YAML text, and whether it states a version. */
function entrySource(req: Request): { source: string; versionGiven: boolean; set(version: number): string } {
  let text: string;
  if (req.is(YAML_CONTENT_TYPES)) text = typeof req.body === 'string' ? req.body : '';
  else if (req.is('application/json')) text = JSON.stringify(req.body ?? null, null, 2);
  else {
    throw new ValidationError(
      `Content-Type must be ${YAML_CONTENT_TYPES.join(', ')} (YAML text) or application/json (got ${req.get('content-type') ?? 'none'})`,
      { field: 'content-type' },
    );
  }
  const doc = parseDocument(text);
  const versionGiven = doc.errors.length > 0 || !isMap(doc.contents) || doc.contents.has('version');
  return {
    source: text,
    versionGiven,
    set(version) {
      if (versionGiven) return text;
      doc.set('version', version);
      return doc.toString();
    },
  };
}

/** Routes for named agents; `parseAgent` validates entries exactly as the catalog loader does. */
export function agentsRouter(deps: EngineDeps, auth: ApiKeyAuthenticator, parseAgent: AgentParser): Router {
  const router = Router();

  documentRoute({ method: 'get', path: '/v1/agents', summary: "The organization's named agents (latest version each)", tags: ['agents'], scope: 'runs:read', responses: { 200: { description: 'Agents', schema: ItemsOf(AgentListItem) } } });
  router.get('/v1/agents', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json({ items: await listAgents(deps.database.db, principalOf(req).organizationId) });
  });

  documentRoute({ method: 'get', path: '/v1/agents/:name', summary: 'Versions of a named agent', tags: ['agents'], scope: 'runs:read', params: z.object({ name: z.string().regex(AGENT_NAME) }), responses: { 200: { description: 'The agent', schema: AnyObject }, 404: { description: 'No such agent' } } });
  router.get('/v1/agents/:name', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const name = nameParam(req);
    const versions = await agentVersions(deps.database.db, principalOf(req).organizationId, name);
    res.json({ name, latest: versions[0], versions });
  });

  documentRoute({ method: 'post', path: '/v1/agents', summary: 'Add the next version of a named agent', tags: ['agents'], scope: 'admin', body: { contentTypes: { 'application/yaml': z.string(), 'text/yaml': z.string(), 'application/x-yaml': z.string(), 'application/json': AnyObject } }, responses: { 201: { description: 'Created', schema: AnyObject }, 400: { description: 'DEFINITION_INVALID with positions' }, 409: { description: 'Another version than latest + 1, or a changed type' } } });
  router.post('/v1/agents', requireApiKey(auth, 'admin'), express.text({ type: YAML_CONTENT_TYPES, limit: BODY_LIMIT }), async (req, res) => {
    const { organizationId } = principalOf(req);
    const body = entrySource(req);
    // Validate first (with a placeholder version when none is stated), so bad input changes nothing.
    const draft = parseAgent(body.set(1), 'request.yaml');
    const created = await addAgentVersion(deps.database.db, organizationId, draft, body.source, body.versionGiven);
    res.status(201).location(`/v1/agents/${created.name}`).json(created);
  });

  return router;
}
