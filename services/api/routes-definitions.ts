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

  router.get('/v1/definitions', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json({ items: await listDefinitions(deps.database.db, principalOf(req).organizationId) });
  });

  router.get('/v1/definitions/:slug', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const slug = slugParam(req);
    res.json({ slug, versions: await definitionVersions(deps.database.db, principalOf(req).organizationId, slug) });
  });

  router.get('/v1/definitions/:slug/versions/:version', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const slug = slugParam(req);
    const version = versionParam(req);
    res.json(await getDefinitionVersion(deps.database.db, principalOf(req).organizationId, slug, version));
  });

  return router;
}
