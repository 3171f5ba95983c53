/**
 * Response shapes of the OpenAPI document (`openapi.ts`). Objects are loose (later fields may be
 * added without breaking clients); the fields listed are always present. `test/openapi.test.ts`
 * checks real answers against these schemas, so they stay true.
 */
import { z } from 'zod';

const Timestamp = z.string().meta({ description: 'ISO 8601 date-time' });
const NullableTimestamp = Timestamp.nullable();

/** A recorded error (`{name, code, message, …}`). */
export const SerializedError = z.looseObject({ name: z.string(), code: z.string(), message: z.string() });

/** An item of `GET /v1/runs`. */
export const RunListItem = z.looseObject({
  id: z.uuid(),
  definition: z.string(),
  version: z.number().int(),
  status: z.string().meta({ description: 'throttled (waiting for a concurrency slot), queued, running, cancelling, completed, failed or cancelled' }),
  createdAt: Timestamp,
  startedAt: NullableTimestamp,
  finishedAt: NullableTimestamp,
  error: SerializedError.nullable(),
});

/** An approval with its responses. */
export const ApprovalView = z.looseObject({
  id: z.uuid(),
  runId: z.uuid(),
  stepId: z.string(),
  status: z.string().meta({ description: 'pending, decided, expired or cancelled' }),
  prompt: z.string(),
  decisions: z.array(z.string()),
  attempt: z.number().int(),
  expiresAt: Timestamp,
  createdAt: Timestamp,
  decision: z.string().nullable(),
});

/** One response to an approval (`GET /v1/approvals/:id`, the run manifest). */
export const ApprovalResponseView = z.object({
  approver: z.string().meta({ description: 'The identity that responded: for a link, the one it was minted for (`user:…`, `role:…` of a role without members, `link:<approval id>` without approvers)' }),
  via: z.string().meta({ description: 'token, api-key or integration' }),
  decision: z.string(),
  comment: z.string().nullable(),
  data: z.unknown().meta({ description: 'The modified data this response sent (`input`)' }),
  clientIp: z.string().nullable().meta({ description: 'The client address (`req.ip`: the peer, or its `X-Forwarded-For` client when the peer is a trusted proxy, `TRUST_PROXY`)' }),
  userAgent: z.string().nullable(),
  at: Timestamp,
});

/** `GET /v1/runs/:id`. */
export const RunView = RunListItem.extend({
  input: z.unknown(),
  output: z.unknown(),
  steps: z.array(
    z.looseObject({
      id: z.string(),
      type: z.string(),
      agent: z.string().nullable(),
      status: z.string(),
      attempts: z.number().int(),
      generation: z.number().int(),
      needs: z.array(z.string()),
      output: z.unknown(),
      error: SerializedError.nullable(),
      queuedAt: NullableTimestamp,
      startedAt: NullableTimestamp,
      finishedAt: NullableTimestamp,
    }),
  ),
  approvals: z.array(ApprovalView),
});

/** One run event. */
export const RunEvent = z.object({ seq: z.number().int(), type: z.string(), stepId: z.string().nullable(), data: z.unknown(), createdAt: Timestamp });

/** An item of `GET /v1/definitions`. */
export const DefinitionListItem = z.looseObject({
  slug: z.string(),
  version: z.number().int(),
  name: z.string(),
  description: z.string().nullable(),
  versions: z.number().int(),
  createdAt: Timestamp,
});

/** An item of `GET /v1/agents`. */
export const AgentListItem = z.looseObject({ name: z.string(), type: z.string(), version: z.number().int(), versions: z.number().int(), implementation: z.string() });

/** An item of `GET /v1/secrets` (never a value). */
export const SecretSummary = z.object({ name: z.string(), createdAt: Timestamp, updatedAt: Timestamp });

/** An item of `GET /v1/runs/:id/assets`. */
export const AssetSummary = z.looseObject({
  id: z.uuid(),
  stepId: z.string(),
  attempt: z.number().int(),
  name: z.string(),
  mimeType: z.string(),
  bytes: z.number().int(),
  sha256: z.string(),
  createdAt: Timestamp,
});

/** An item of `GET /v1/runs/:id/deliverables`. */
export const DeliverableView = z.looseObject({ id: z.uuid(), stepId: z.string(), title: z.string(), kind: z.string(), content: z.unknown(), assetIds: z.array(z.uuid()), createdAt: Timestamp });

/** A webhook subscription (never its secret). */
export const WebhookSubscription = z.object({
  id: z.uuid(),
  url: z.string(),
  events: z.array(z.string()).meta({ description: 'Event patterns: a type (`run.completed`), a family (`step.*`) or `*`' }),
  description: z.string().nullable(),
  enabled: z.boolean(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

/** `POST /v1/webhooks`: the subscription with its signing secret, shown only then. */
export const CreatedWebhookSubscription = WebhookSubscription.extend({
  secret: z.string().meta({ description: 'The `whsec_…` Standard Webhooks signing secret; shown only in this answer' }),
});

/** One delivery of the webhook delivery log. */
export const WebhookDelivery = z.object({
  id: z.uuid(),
  webhookId: z.uuid().nullable(),
  runId: z.uuid(),
  seq: z.number().int().meta({ description: 'The run event sequence number delivered' }),
  event: z.string(),
  status: z.enum(['pending', 'delivered', 'failed']).meta({ description: 'pending (not yet sent, or waiting to retry), delivered, or failed (refused, or out of attempts)' }),
  attempts: z.number().int(),
  responseStatus: z.number().int().nullable(),
  latencyMs: z.number().nullable(),
  lastError: z.string().nullable(),
  url: z.string().nullable(),
  nextAttemptAt: NullableTimestamp,
  createdAt: Timestamp,
  finishedAt: NullableTimestamp,
});

/** An API key as listed (never its hash, never the key). */
export const ApiKeySummary = z.object({
  id: z.uuid(),
  name: z.string(),
  prefix: z.string().meta({ description: "The key's first 8 characters" }),
  subject: z.string(),
  scopes: z.array(z.string()),
  roles: z.array(z.string()),
  rateLimitRunsPerMinute: z.number().int().nullable().meta({ description: "Run starts per minute in the key's own bucket (0: unlimited); null: the organization's limit" }),
  createdAt: Timestamp,
  lastUsedAt: NullableTimestamp.meta({ description: 'Last successful authentication, approximate (recorded at most once a minute)' }),
  revokedAt: NullableTimestamp.meta({ description: 'When the key stopped (or, in a rotation grace period, will stop) working' }),
});

/** A new API key: the summary and the key itself, shown only in this answer. */
export const CreatedApiKey = ApiKeySummary.extend({ key: z.string().meta({ description: 'The key; shown only in this answer' }) });

/** `POST /v1/api-keys/:id/rotate`: the new key and when the replaced one stops working. */
export const RotatedApiKey = CreatedApiKey.extend({
  replaces: z.uuid().meta({ description: 'The id of the replaced key' }),
  replacedKeyRevokedAt: Timestamp.meta({ description: 'When the replaced key stops working (now, or after `graceSeconds`)' }),
});

/** An organization (tenant). */
export const OrganizationView = z.object({ id: z.uuid(), slug: z.string(), name: z.string(), createdAt: Timestamp });

/** `POST /v1/organizations`: the organization and its first admin key, shown only in this answer. */
export const CreatedOrganization = OrganizationView.extend({ apiKey: CreatedApiKey });

/** The console session (`/console/session`). */
export const ConsoleSessionView = z.object({
  subject: z.string(),
  organizationId: z.string(),
  scopes: z.array(z.string()),
  roles: z.array(z.string()),
  csrfToken: z.string().meta({ description: 'Send it back as the `x-csrf-token` header on every state-changing console request' }),
});

/** What a decision link shows: the approval its token is for, the link's approver and whether it was used. */
export const ApprovalForLink = ApprovalView.extend({
  approver: z.string().meta({ description: 'Whom the link was issued to' }),
  linkUsed: z.boolean(),
});

/** A JSON-RPC 2.0 message (request, notification, response or a batch member); the protocol defines `method` and `params`. */
export const JsonRpcMessage = z.looseObject({
  jsonrpc: z.literal('2.0'),
  id: z.union([z.string(), z.number().int(), z.null()]).optional(),
  method: z.string().optional(),
  params: z.unknown().optional(),
  result: z.unknown().optional(),
  error: z.looseObject({ code: z.number().int(), message: z.string(), data: z.unknown().optional() }).optional(),
});

/** An error of the A2A HTTP+JSON binding (google.rpc `Status` as JSON), as the A2A SDK answers it. */
export const A2aRestError = z.looseObject({
  error: z.looseObject({
    code: z.number().int().meta({ description: 'The HTTP status' }),
    status: z.string().meta({ description: 'google.rpc code name, e.g. NOT_FOUND, FAILED_PRECONDITION' }),
    message: z.string(),
    details: z.array(z.unknown()).optional(),
  }),
});
