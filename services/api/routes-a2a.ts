/**
 * `/a2a/{slug}`: every definition as an A2A v1.0 agent (issue 10), through the official SDK's
 * Express transports.
 *
 * - `GET /a2a/{slug}/.well-known/agent-card.json` — the Agent Card (no key needed: the default
 *   organization's definition; with a key, the key's organization's). `supportedInterfaces`:
 *   JSON-RPC at `/a2a/{slug}` (protocol 1.0, and 0.3 through the SDK's compatibility layer) and
 *   HTTP+JSON at `/a2a/{slug}/rest` (1.0).
 * - `POST /a2a/{slug}` — JSON-RPC (`SendMessage`, `SendStreamingMessage`, `GetTask`, `ListTasks`,
 *   `CancelTask`, `SubscribeToTask`; v0.3 `message/send`, `tasks/get`, …).
 * - `/a2a/{slug}/rest/…` — HTTP+JSON (`POST message:send`, `GET tasks/{id}`, …).
 *
 * Calls need the API key as `Authorization: Bearer <key>` (the card's `bearer` security scheme).
 */
import { Router, type Request, type RequestHandler } from 'express';
import { z } from 'zod';
import { A2A_PROTOCOL_VERSION, AGENT_CARD_PATH, type AgentCard } from '@a2a-js/sdk';
import { agentCardHandler, jsonRpcHandler, restHandler } from '@a2a-js/sdk/server/express';
import { NotFoundError, UnauthorizedError, createOutboundHttp } from '../../lib/index.js';
import { DEFAULT_ORGANIZATION_SLUG, organizations } from '../../db/index.js';
import { eq } from 'drizzle-orm';
import { SLUG_PATTERN, type Definition } from '../../definitions/index.js';
import type { EngineDeps } from '../engine/index.js';
import { findDefinition } from '../store/index.js';
import { credentialFrom, type ApiKeyAuthenticator, type Principal } from './auth.js';
import type { RunEventHub } from './event-hub.js';
import { RunRequestHandler } from './a2a/handler.js';
import { OutboundPushSender, PostgresPushNotificationStore } from './a2a/push.js';
import { PostgresTaskStore, PrincipalUser } from './a2a/tasks.js';
import { documentRoute, AnyObject, ErrorBody } from './openapi.js';
import { A2aRestError, JsonRpcMessage } from './openapi-schemas.js';

/** The A2A protocol version the v0.3 compatibility interface declares. */
const LEGACY_PROTOCOL_VERSION = '0.3';

/**
 * The Agent Card of a definition.
 * @param baseUrl - public base URL of the API (`BATON_PUBLIC_URL`).
 */
export function agentCardOf(definition: Pick<Definition, 'slug' | 'version' | 'name' | 'description' | 'steps'>, baseUrl: string): AgentCard {
  const url = `${baseUrl}/a2a/${definition.slug}`;
  return {
    name: definition.name,
    description: definition.description ?? `Baton orchestration ${definition.slug}`,
    supportedInterfaces: [
      { url, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: A2A_PROTOCOL_VERSION },
      { url: `${url}/rest`, protocolBinding: 'HTTP+JSON', tenant: '', protocolVersion: A2A_PROTOCOL_VERSION },
      { url, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: LEGACY_PROTOCOL_VERSION },
    ],
    provider: { organization: 'Baton', url: baseUrl },
    version: String(definition.version),
    capabilities: { streaming: true, pushNotifications: true, extensions: [], extendedAgentCard: false },
    securitySchemes: {
      bearer: { scheme: { $case: 'httpAuthSecurityScheme', value: { description: 'A Baton API key', scheme: 'Bearer', bearerFormat: 'API key' } } },
    },
    securityRequirements: [{ schemes: { bearer: { list: [] } } }],
    defaultInputModes: ['application/json', 'text/plain'],
    defaultOutputModes: ['application/json', 'text/plain'],
    skills: [
      {
        id: definition.slug,
        name: definition.name,
        description: `${definition.description ?? definition.name} Send the run input as a data part; at a checkpoint the task is input-required, answer with {decision, input?, comment?}. Steps: ${definition.steps.map((s) => s.id).join(' → ')}.`,
        tags: ['baton', 'orchestration'],
        examples: [],
        inputModes: ['application/json'],
        outputModes: ['application/json'],
        securityRequirements: [],
      },
    ],
    signatures: [],
  };
}

const SlugParam = z.object({ slug: z.string().regex(SLUG_PATTERN).meta({ description: 'The definition slug' }) });
const VersionHeader = z.object({ 'a2a-version': z.string().optional().meta({ description: 'A2A protocol version: `1.0`, or `0.3` (the default when absent)' }) });
const RestVersionHeader = z.object({ 'a2a-version': z.literal('1.0').meta({ description: 'The HTTP+JSON binding speaks A2A 1.0' }) });
/** The A2A objects (Task, Message, AgentCard, …) as the A2A 1.0 specification defines them. */
const A2aObject = AnyObject.meta({ description: 'An A2A object as the A2A specification defines it' });
const A2A_REST_VERBS =
  'The binding\'s verb routes are under the same base: `POST message:send`, `POST message:stream` (SSE), `POST tasks/{taskId}:cancel`, `GET|POST tasks/{taskId}:subscribe` (SSE) (paths with a literal `:` this document cannot template).';
const restBase = '/a2a/:slug/rest';
/** Answers of the HTTP+JSON binding besides its success: the SDK's A2A errors, and Baton's 404 for an unknown definition. */
const restErrors = (missing?: string) => ({
  400: { description: 'A2A-Version missing or not 1.0, or an invalid request (A2A error)', contentType: 'application/a2a+json', schema: A2aRestError },
  404: missing
    ? { description: `No such definition (Baton error), or ${missing} (A2A error, as \`application/a2a+json\`)`, schema: z.union([ErrorBody, A2aRestError]) }
    : { description: 'No such definition' },
});

/** The `/a2a/{slug}` routes. */
export function a2aRouter(deps: EngineDeps, auth: ApiKeyAuthenticator, hub: RunEventHub): Router {
  const router = Router();
  /** One SDK handler (and its in-memory event buses) per organization, slug and version. */
  const handlers = new Map<string, { card: RequestHandler; rpc: RequestHandler; rest: RequestHandler }>();
  const pushStore = new PostgresPushNotificationStore(deps);
  const push = { store: pushStore, sender: new OutboundPushSender(pushStore, createOutboundHttp({ allow: deps.config.outbound.allow }), deps.logger) };

  async function principalOf(req: Request, required: boolean): Promise<Principal | undefined> {
    const key = credentialFrom(req);
    if (!key) {
      if (required) throw new UnauthorizedError('missing API key: send "Authorization: Bearer <key>"');
      return undefined;
    }
    const principal = await auth.resolve(key);
    if (!principal) throw new UnauthorizedError('invalid API key');
    return principal;
  }

  async function defaultOrganization(): Promise<string> {
    const [org] = await deps.database.db.select({ id: organizations.id }).from(organizations).where(eq(organizations.slug, DEFAULT_ORGANIZATION_SLUG));
    if (!org) throw new NotFoundError('no default organization');
    return org.id;
  }

  documentRoute({ method: 'get', path: `/a2a/:slug/${AGENT_CARD_PATH}`, summary: "A definition's A2A Agent Card", description: 'No key needed (the default organization\'s definition); with an API key, the key\'s organization\'s. `A2A-Version: 1.0` gets the 1.0 card; without it, the v0.3 form (with the 1.0 interfaces embedded). Weak `ETag`, `Cache-Control: public, max-age=3600`.', tags: ['a2a'], auth: 'none', params: SlugParam, headers: VersionHeader, responses: { 200: { description: 'The Agent Card', schema: A2aObject }, 304: { description: 'Not modified (If-None-Match)' }, 401: { description: 'An invalid API key was sent' }, 404: { description: 'No such definition' } } });
  documentRoute({ method: 'post', path: '/a2a/:slug', summary: 'A2A JSON-RPC binding', description: 'JSON-RPC 2.0 over HTTP: with `A2A-Version: 1.0`, `SendMessage`, `SendStreamingMessage` (SSE), `GetTask`, `ListTasks`, `CancelTask`, `SubscribeToTask` (SSE), push-notification config methods; without the header (v0.3), `message/send`, `message/stream`, `tasks/get`, `tasks/cancel`, … . Protocol errors are JSON-RPC error objects.', tags: ['a2a'], params: SlugParam, headers: VersionHeader, body: JsonRpcMessage, responses: { 200: { description: 'The JSON-RPC response, or for a streaming method a `text/event-stream` of JSON-RPC responses', schema: JsonRpcMessage }, 400: { description: 'Malformed JSON body' }, 404: { description: 'No such definition' } } });
  documentRoute({ method: 'get', path: `${restBase}/tasks`, summary: 'A2A HTTP+JSON: list tasks', description: A2A_REST_VERBS, tags: ['a2a'], params: SlugParam, headers: RestVersionHeader, responses: { 200: { description: 'A ListTasksResponse (`application/a2a+json`)', contentType: 'application/a2a+json', schema: A2aObject }, ...restErrors() } });
  documentRoute({ method: 'get', path: `${restBase}/tasks/:taskId`, summary: 'A2A HTTP+JSON: a task', description: A2A_REST_VERBS, tags: ['a2a'], params: SlugParam, headers: RestVersionHeader, responses: { 200: { description: 'The Task (`application/a2a+json`)', contentType: 'application/a2a+json', schema: A2aObject }, ...restErrors('task') } });
  documentRoute({ method: 'post', path: `${restBase}/tasks/:taskId/pushNotificationConfigs`, summary: 'A2A HTTP+JSON: register a push-notification config', tags: ['a2a'], params: SlugParam, headers: RestVersionHeader, body: A2aObject, responses: { 201: { description: 'The TaskPushNotificationConfig', contentType: 'application/a2a+json', schema: A2aObject }, ...restErrors('task') } });
  documentRoute({ method: 'get', path: `${restBase}/tasks/:taskId/pushNotificationConfigs`, summary: "A2A HTTP+JSON: a task's push-notification configs", tags: ['a2a'], params: SlugParam, headers: RestVersionHeader, responses: { 200: { description: 'A ListTaskPushNotificationConfigsResponse', contentType: 'application/a2a+json', schema: A2aObject }, ...restErrors('task') } });
  documentRoute({ method: 'get', path: `${restBase}/tasks/:taskId/pushNotificationConfigs/:configId`, summary: 'A2A HTTP+JSON: one push-notification config', tags: ['a2a'], params: SlugParam, headers: RestVersionHeader, responses: { 200: { description: 'The TaskPushNotificationConfig', contentType: 'application/a2a+json', schema: A2aObject }, ...restErrors('task or config') } });
  documentRoute({ method: 'delete', path: `${restBase}/tasks/:taskId/pushNotificationConfigs/:configId`, summary: 'A2A HTTP+JSON: delete a push-notification config', tags: ['a2a'], params: SlugParam, headers: RestVersionHeader, responses: { 204: { description: 'Deleted' }, ...restErrors('task or config') } });
  router.use('/a2a/:slug', async (req, res, next) => {
    const slug = String(req.params.slug ?? '');
    if (!SLUG_PATTERN.test(slug)) throw new NotFoundError(`no A2A agent ${slug}`);
    const isCard = req.method === 'GET' && req.path === `/${AGENT_CARD_PATH}`;
    const principal = await principalOf(req, !isCard);
    const organizationId = principal?.organizationId ?? (await defaultOrganization());
    const stored = await findDefinition(deps.database.db, organizationId, slug);
    const key = `${organizationId}/${slug}/${stored.version}`;
    let handler = handlers.get(key);
    if (!handler) {
      const card = agentCardOf({ ...stored.spec, slug, version: stored.version }, deps.config.http.publicUrl);
      const requestHandler = new RunRequestHandler(card, deps, slug, new PostgresTaskStore(deps, slug), hub, push);
      const userBuilder = (r: Request) => principalOf(r, true).then((p) => new PrincipalUser(p as Principal));
      handler = {
        card: agentCardHandler({ agentCardProvider: requestHandler, legacyCompat: { enabled: true } }),
        rpc: jsonRpcHandler({ requestHandler, userBuilder, legacyCompat: { enabled: true } }),
        rest: restHandler({ requestHandler, userBuilder }),
      };
      handlers.set(key, handler);
    }
    const h = handler;
    if (isCard) {
      req.url = '/';
      return h.card(req, res, next);
    }
    if (req.path === '/rest' || req.path.startsWith('/rest/')) {
      req.url = req.url.slice('/rest'.length) || '/';
      return h.rest(req, res, next);
    }
    return h.rpc(req, res, next);
  });
  return router;
}
