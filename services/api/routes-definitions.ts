/**
 * `/v1/definitions`: create the next version of a definition (YAML or JSON body), list the
 * organization's definitions, and read a slug's versions.
 */
import express, { Router, type Request } from 'express';
import { NotFoundError, ValidationError } from '../../lib/index.js';
import { SLUG_PATTERN } from '../../definitions/index.js';
import { type EngineDeps } from '../engine/index.js';
import {
  createDefinition,
  definitionVersions,
  getDefinitionVersion,
  listDefinitions,
  type DefinitionBody,
} from '../store/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { documentRoute, AnyObject, ItemsOf } from './openapi.js';
import { DefinitionListItem } from './openapi-schemas.js';
import { z } from 'zod';

/** Content types read as YAML text. */
export const YAML_CONTENT_TYPES = ['application/yaml', 'text/yaml', 'application/x-yaml'];

/** Largest accepted definition body. */
const BODY_LIMIT = '1mb';

function slugParam(req: Request): string {
  const slug = String(req.params.slug ?? '');
  if (!SLUG_PATTERN.test(slug)) throw new NotFoundError(`definition "${slug}" not found`, { field: 'slug' });
  return slug;
}

function versionParam(req: Request): number {
  const text = String(req.params.version ?? '');
  if (!/^[1-9][0-9]{0,8}$/.test(text)) throw new NotFoundError(`version ${text} not found`, { field: 'version' });
  return Number(text);
}

/**
 * The request's definition body by its `Content-Type`.
 * @throws {ValidationError} (field `content-type`) for any other content type.
 */
function definitionBody(req: Request): DefinitionBody {
  if (req.is(YAML_CONTENT_TYPES)) {
    // No body at all leaves `req.body` unset: validate it as an empty document.
    return { format: 'yaml', source: typeof req.body === 'string' ? req.body : '' };
  }
  if (req.is('application/json')) return { format: 'json', value: req.body };
  throw new ValidationError(
    `Content-Type must be ${YAML_CONTENT_TYPES.join(', ')} (YAML text) or application/json (got ${req.get('content-type') ?? 'none'})`,
    { field: 'content-type' },
  );
}

export function definitionsRouter(deps: EngineDeps, auth: ApiKeyAuthenticator): Router {
  const router = Router();

  documentRoute({ method: 'post', path: '/v1/definitions', summary: 'Add the next version of a definition', tags: ['definitions'], scope: 'definitions:write', body: { contentTypes: { 'application/yaml': z.string(), 'text/yaml': z.string(), 'application/x-yaml': z.string(), 'application/json': AnyObject } }, responses: { 201: { description: 'Created', schema: AnyObject }, 400: { description: 'DEFINITION_INVALID with file:line:column positions (also: more than DEFINITION_MAX_STEPS steps, an expression over EXPRESSION_MAX_BYTES, a regex that cannot run in linear time, a step running its own definition)' }, 413: { description: 'DEFINITION_TOO_LARGE: the source is over DEFINITION_MAX_BYTES' }, 409: { description: 'Another version than latest + 1' } } });
  router.post(
    '/v1/definitions',
    requireApiKey(auth, 'definitions:write'),
    express.text({ type: YAML_CONTENT_TYPES, limit: BODY_LIMIT }),
    async (req, res) => {
      const created = await createDefinition(deps, principalOf(req).organizationId, definitionBody(req));
      res
        .status(201)
        .location(`/v1/definitions/${created.slug}/versions/${created.version}`)
        .json({
          slug: created.slug,
          version: created.version,
          name: created.name,
          description: created.description,
          createdAt: created.createdAt,
          checksum: created.checksum,
          steps: created.steps,
        });
    },
  );

  documentRoute({ method: 'get', path: '/v1/definitions', summary: 'Latest version per definition', tags: ['definitions'], scope: 'runs:read', responses: { 200: { description: 'Definitions', schema: ItemsOf(DefinitionListItem) } } });
  router.get('/v1/definitions', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json({ items: await listDefinitions(deps.database.db, principalOf(req).organizationId) });
  });

  documentRoute({ method: 'get', path: '/v1/definitions/:slug', summary: 'Versions of a definition', tags: ['definitions'], scope: 'runs:read', responses: { 200: { description: 'Versions, newest first', schema: AnyObject }, 404: { description: 'No such definition' } } });
  router.get('/v1/definitions/:slug', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const slug = slugParam(req);
    res.json({ slug, versions: await definitionVersions(deps.database.db, principalOf(req).organizationId, slug) });
  });

  documentRoute({ method: 'get', path: '/v1/definitions/:slug/versions/:version', summary: 'One version with its source, input schema and steps', tags: ['definitions'], scope: 'runs:read', params: z.object({ slug: z.string(), version: z.string().regex(/^[1-9][0-9]{0,8}$/) }), responses: { 200: { description: 'The version', schema: AnyObject }, 404: { description: 'No such definition or version' } } });
  router.get('/v1/definitions/:slug/versions/:version', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const slug = slugParam(req);
    const version = versionParam(req);
    res.json(await getDefinitionVersion(deps.database.db, principalOf(req).organizationId, slug, version));
  });

  return router;
}
