/**
 * The OpenAPI 3.1 document of the API (`GET /openapi.json`), generated from the zod schemas the
 * routes validate with (zod 4's `z.toJSONSchema`, JSON Schema 2020-12 as OpenAPI 3.1 uses it).
 *
 * Adding a route is one declaration next to it:
 *
 * ```ts
 * documentRoute({ method: 'post', path: '/v1/things', summary: 'Create a thing', tags: ['things'],
 *   scope: 'admin', body: CreateThingBody, responses: { 201: { description: 'created', schema: Thing } } });
 * router.post('/v1/things', requireApiKey(auth, 'admin'), …parseBody(CreateThingBody, req.body)…);
 * ```
 *
 * `test/openapi.test.ts` fails when an express route of the app has no declaration.
 * Errors are `{error: {code, message, field?, details?}}` ({@link ErrorBody}); every route gets
 * the error statuses that can always happen (401/403 with an API key, 500, 503).
 */
import { z } from 'zod';

/** HTTP methods documented. */
export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** One response of a route. */
export interface ResponseDoc {
  description: string;
  /** Body schema (JSON unless `contentType` says otherwise); omitted: no documented shape. */
  schema?: z.ZodType;
  /** Default `application/json`; for an error status, {@link ErrorBody}. */
  contentType?: string;
}

/** How a route authenticates. */
export type RouteAuth =
  /** `Authorization: Bearer <API key>` (the default). */
  | 'apiKey'
  /** No credentials. */
  | 'none'
  /** An API key, or a signed `decideUrl` token, or a trusted integration's signature. */
  | 'apiKeyOrToken'
  /** The platform-admin key (`BATON_ADMIN_API_KEY`) as Bearer; never an organization's key. */
  | 'platformKey';

/** The declaration of one route. */
export interface RouteDoc {
  method: HttpMethod;
  /** The express path, e.g. `/v1/runs/:id` (documented as `/v1/runs/{id}`). */
  path: string;
  summary: string;
  description?: string;
  tags: string[];
  /** Default `apiKey`. */
  auth?: RouteAuth;
  /** API-key scope required (`runs:read`, `runs:write`, `admin`, …). */
  scope?: string;
  /** Path parameters; default: each `:name` a string. */
  params?: z.ZodObject;
  query?: z.ZodObject;
  /** Request headers the route reads (besides `Authorization`). */
  headers?: z.ZodObject;
  /** JSON body, or bodies per content type. */
  body?: z.ZodType | { contentTypes: Record<string, z.ZodType> };
  responses: Record<number, ResponseDoc>;
}

/** The error body of every 4xx and 5xx answer (`services/api/error-handler.ts`). */
export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Stable error code, e.g. VALIDATION_FAILED, NOT_FOUND, CONFLICT' }),
      message: z.string(),
      field: z.string().optional().meta({ description: 'The offending field (dotted path), for a 400' }),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  })
  .meta({ description: 'The error body of every 4xx and 5xx answer' });

const routes = new Map<string, RouteDoc>();

/**
 * Declare a route in the document (idempotent per method and path: the last declaration wins).
 * @returns `doc`, so the path can be reused where the route is mounted.
 */
export function documentRoute(doc: RouteDoc): RouteDoc {
  routes.set(`${doc.method.toUpperCase()} ${doc.path}`, doc);
  return doc;
}

/** Every declared route as `METHOD /express/path`. */
export function documentedRoutes(): string[] {
  return [...routes.keys()].sort();
}

/** Every declared route (the request guard checks query parameters and path parameters against them). */
export function routeDocs(): RouteDoc[] {
  return [...routes.values()];
}

type JsonSchema = Record<string, unknown>;

/** A zod schema as JSON Schema 2020-12 (request side: `input`; response side: `output`). */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const out = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any', reused: 'inline' }) as JsonSchema;
  delete out.$schema;
  return out;
}

/** `/v1/runs/:id` → `/v1/runs/{id}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function parameters(doc: RouteDoc): JsonSchema[] {
  const list: JsonSchema[] = [];
  const pathNames = [...doc.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1] ?? '');
  const paramShape = doc.params?.shape ?? {};
  for (const name of pathNames) {
    const schema = paramShape[name] as z.ZodType | undefined;
    list.push({ name, in: 'path', required: true, schema: schema ? jsonSchema(schema, 'input') : { type: 'string' } });
  }
  for (const [location, object] of [['query', doc.query], ['header', doc.headers]] as const) {
    if (!object) continue;
    for (const [name, field] of Object.entries(object.shape)) {
      const schema = field as z.ZodType;
      const { description, ...rest } = jsonSchema(schema, 'input');
      list.push({
        name,
        in: location,
        required: !schema.safeParse(undefined).success,
        schema: rest,
        ...(typeof description === 'string' ? { description } : {}),
      });
    }
  }
  return list;
}

function requestBody(doc: RouteDoc): JsonSchema | undefined {
  if (!doc.body) return undefined;
  const bodies = 'contentTypes' in doc.body ? doc.body.contentTypes : { 'application/json': doc.body };
  const content = Object.fromEntries(Object.entries(bodies).map(([type, schema]) => [type, { schema: jsonSchema(schema, 'input') }]));
  return { required: true, content };
}

const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });

function responses(doc: RouteDoc): JsonSchema {
  const out: JsonSchema = {};
  for (const [status, r] of Object.entries(doc.responses)) {
    if (Number(status) >= 400 && !r.schema) {
      out[status] = errorResponse(r.description);
      continue;
    }
    const contentType = r.contentType ?? 'application/json';
    out[status] = {
      description: r.description,
      ...(Number(status) === 204 ? {} : { content: { [contentType]: { schema: r.schema ? jsonSchema(r.schema, 'output') : {} } } }),
    };
  }
  if ((doc.auth ?? 'apiKey') !== 'none') {
    out['401'] ??= errorResponse('Missing or invalid API key');
    if (doc.scope) out['403'] ??= errorResponse(`The API key lacks the "${doc.scope}" scope`);
    if (doc.auth === 'platformKey') out['403'] ??= errorResponse("An organization's key, or no BATON_ADMIN_API_KEY configured");
  }
  out['500'] ??= errorResponse('Internal error (logged)');
  out['503'] ??= errorResponse('Postgres or Redis is unavailable; retry after `Retry-After` seconds');
  return out;
}

/** Options of {@link buildOpenApiDocument}. */
export interface OpenApiOptions {
  /** The API's base URL (`BATON_PUBLIC_URL`), listed as the server. */
  serverUrl: string;
  /** The document's `info.version` (Baton's package version). */
  version: string;
}

/** The OpenAPI 3.1 document of every declared route. */
export function buildOpenApiDocument(options: OpenApiOptions): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const doc of [...routes.values()].sort((a, b) => a.path.localeCompare(b.path))) {
    const auth = doc.auth ?? 'apiKey';
    const operation: JsonSchema = {
      operationId: `${doc.method}${openApiPath(doc.path).replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      summary: doc.summary,
      ...(doc.description || doc.scope ? { description: [doc.description, doc.scope ? `Requires the \`${doc.scope}\` scope.` : undefined].filter(Boolean).join('\n\n') } : {}),
      tags: doc.tags,
      security: auth === 'none' ? [] : auth === 'apiKeyOrToken' ? [{ apiKey: [] }, {}] : auth === 'platformKey' ? [{ platformKey: [] }] : [{ apiKey: [] }],
      ...(parameters(doc).length > 0 ? { parameters: parameters(doc) } : {}),
      ...(doc.body ? { requestBody: requestBody(doc) } : {}),
      responses: responses(doc),
    };
    (paths[openApiPath(doc.path)] ??= {})[doc.method] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Baton API',
      version: options.version,
      description: 'Agent-orchestration engine: start runs of versioned definitions, follow them, decide their checkpoints.',
    },
    servers: [{ url: options.serverUrl }],
    paths,
    components: {
      schemas: { Error: jsonSchema(ErrorBody, 'output') },
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: `Authorization: Bearer <key>`' },
        platformKey: { type: 'http', scheme: 'bearer', description: 'The platform-admin key (`BATON_ADMIN_API_KEY`): `Authorization: Bearer <key>`' },
      },
    },
  };
}

/** A JSON object whose fields are described in README (no documented shape yet). */
export const AnyObject = z.looseObject({});
/** `{items: [...]}`, the list envelope. */
export const ItemsOf = (item: z.ZodType = AnyObject) => z.object({ items: z.array(item) });
/** `{items, nextCursor}`, the cursor-paginated list envelope. */
export const PageOf = (item: z.ZodType = AnyObject) => z.object({ items: z.array(item), nextCursor: z.string().nullable() });
/** A UUID path parameter. */
export const UuidParam = z.uuid();
