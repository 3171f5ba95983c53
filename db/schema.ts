/**
 * Baton's durable record (drizzle schema). Postgres is the source of truth; Redis holds only
 * the work still to do. Every state change of a run appends a `run_events` row in the same
 * transaction.
 */
import { sql } from 'drizzle-orm';
import type { SerializedError } from '../lib/index.js';
import { APPROVAL_STATUSES, ATTEMPT_STATUSES, ITEM_STATUSES, RUN_STATUSES, STEP_STATUSES } from './statuses.js';
import {
  boolean,
  customType,
  date,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

/** `bytea` as a Node `Buffer`. */
const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const ts = (name: string) => timestamp(name, { withTimezone: true });

/** Tenants. Every other row belongs to exactly one organization. */
export const organizations = pgTable('organizations', {
  id: uuid('id').primaryKey().defaultRandom(),
  slug: text('slug').notNull().unique(),
  name: text('name').notNull(),
  createdAt: createdAt(),
});

/**
 * API keys, stored as SHA-256 hashes; `prefix` (first characters) identifies a key in logs. A
 * trigger (migration 0010) NOTIFYs `baton_api_keys` with the hash when a key is revoked, deleted
 * or changes identity, scopes or roles, so every API node's cache forgets it at commit.
 */
export const apiKeys = pgTable('api_keys', {
  id: uuid('id').primaryKey().defaultRandom(),
  organizationId: uuid('organization_id')
    .notNull()
    .references(() => organizations.id),
  name: text('name').notNull(),
  keyHash: text('key_hash').notNull().unique(),
  prefix: text('prefix').notNull(),
  /** Identity the key acts as (e.g. `user:alice`, `service:billing`). */
  subject: text('subject').notNull(),
  scopes: text('scopes').array().notNull(),
  /** Approver roles the key's identity holds (checkpoint `approvers: [{role}]`). */
  roles: text('roles').array().notNull().default(sql`'{}'::text[]`),
  /** Run starts per minute for this key alone (its own bucket; 0: unlimited); null: the organization's `RATE_LIMIT_RUNS_PER_MINUTE`. */
  rateLimitRunsPerMinute: integer('rate_limit_runs_per_minute'),
  createdAt: createdAt(),
  /** When the key stops working; a rotation with a grace period sets it in the future. */
  revokedAt: ts('revoked_at'),
  /** Last successful authentication, approximate (written at most once a minute per key). */
  lastUsedAt: ts('last_used_at'),
});

/** Orchestration definitions, one row per (organization, slug, version). */
export const definitions = pgTable(
  'definitions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    slug: text('slug').notNull(),
    version: integer('version').notNull(),
    name: text('name').notNull(),
    description: text('description'),
    /** The YAML (or JSON) text the definition was parsed from. */
    source: text('source').notNull(),
    /** The parsed, validated definition (see `definitions/schema.ts`). */
    spec: jsonb('spec').notNull(),
    /** SHA-256 of `source`; sync skips unchanged files and refuses a changed file at the same version. */
    checksum: text('checksum').notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('definitions_org_slug_version').on(t.organizationId, t.slug, t.version)],
);

/** Runs. `status`: queued → running → completed | failed | cancelled. */
export const runs = pgTable(
  'runs',
  {
    id: uuid('id').primaryKey(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    definitionId: uuid('definition_id')
      .notNull()
      .references(() => definitions.id),
    definitionSlug: text('definition_slug').notNull(),
    definitionVersion: integer('definition_version').notNull(),
    status: text('status', { enum: RUN_STATUSES }).notNull(),
    input: jsonb('input').notNull(),
    output: jsonb('output'),
    error: jsonb('error').$type<SerializedError>(),
    webhookUrl: text('webhook_url'),
    idempotencyKey: text('idempotency_key'),
    /**
     * HMAC-SHA256 (under `BATON_SECRETS_KEY`) of the canonical JSON of the start request
     * `{definition, version, input, webhookUrl}`, set with an idempotency key: the same key with
     * another request is refused (`IDEMPOTENCY_KEY_REUSED`). Null for child runs and older runs.
     */
    requestFingerprint: text('request_fingerprint'),
    /** Identity that started the run (the API key's subject). */
    createdBy: text('created_by').notNull(),
    /** Last `run_events.seq` used; incremented under the run's row lock. */
    eventSeq: integer('event_seq').notNull().default(0),
    /**
     * Bumped when a finished run is reopened (resume, retry of a step): each opening has its own
     * root job, `<runId>` for the first and `<runId>.r<n>` after (see `rootJobId`).
     */
    rootGeneration: integer('root_generation').notNull().default(1),
    /** Set on a sub-orchestration's child run: the run and step that started it. */
    parentRunId: uuid('parent_run_id'),
    parentStepId: text('parent_step_id'),
    /** Named agent versions the run pinned when it started: `{name: version}`. */
    agentVersions: jsonb('agent_versions').$type<Record<string, number>>().notNull().default({}),
    /**
     * Run-input fields marked `writeOnly: true` or `format: password`, sealed (AES-256-GCM, see
     * `lib/secret-box.ts`) as the JSON `[{path, value}]`; `input` holds `"[redacted]"` there.
     */
    sealedInput: text('sealed_input'),
    /** W3C trace context `{traceparent, tracestate?}` of the span that started the run (tracing on). */
    traceContext: jsonb('trace_context').$type<Record<string, string>>(),
    /**
     * The definition's `concurrency:` group: the `key` expression's value ('' without one); null
     * when the definition sets no limit. Runs of one (organization, definition slug, key) share
     * `concurrencyLimit` slots (`services/engine/concurrency.ts`).
     */
    concurrencyKey: text('concurrency_key'),
    /** The definition's `concurrency.limit` when the run was created. */
    concurrencyLimit: integer('concurrency_limit'),
    createdAt: createdAt(),
    startedAt: ts('started_at'),
    finishedAt: ts('finished_at'),
  },
  (t) => [
    index('runs_parent').on(t.parentRunId).where(sql`${t.parentRunId} is not null`),
    uniqueIndex('runs_org_idempotency_key')
      .on(t.organizationId, t.idempotencyKey)
      .where(sql`${t.idempotencyKey} is not null`),
    index('runs_org_created').on(t.organizationId, t.createdAt),
    index('runs_concurrency_group')
      .on(t.organizationId, t.definitionSlug, t.concurrencyKey, t.status, t.createdAt)
      .where(sql`${t.concurrencyKey} is not null`),
  ],
);

/**
 * Steps of a run. `status`: pending → queued → running → (waiting) → completed | failed |
 * skipped | cancelled. `generation` is bumped when a step is deliberately re-run (a retry
 * decision); it is part of the BullMQ job id `<runId>.<stepId>.<generation>`.
 */
export const steps = pgTable(
  'steps',
  {
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    stepId: text('step_id').notNull(),
    type: text('type').notNull(),
    agent: text('agent'),
    status: text('status', { enum: STEP_STATUSES }).notNull(),
    needs: text('needs').array().notNull(),
    generation: integer('generation').notNull().default(1),
    /** Attempts started so far (retries and crash re-deliveries each start a new one). */
    attempts: integer('attempts').notNull().default(0),
    input: jsonb('input'),
    /** Input for the next attempt instead of the `with:` mapping (a retry decision's modified input). */
    inputOverride: jsonb('input_override'),
    output: jsonb('output'),
    error: jsonb('error').$type<SerializedError>(),
    queuedAt: ts('queued_at'),
    startedAt: ts('started_at'),
    finishedAt: ts('finished_at'),
  },
  (t) => [primaryKey({ columns: [t.runId, t.stepId] })],
);

/**
 * One row per execution of a step. Only the current attempt (`steps.attempts`) of a
 * `running` step may record a result: that fence stops a job that lost its lock, and was
 * re-delivered elsewhere, from recording twice.
 */
export const stepAttempts = pgTable(
  'step_attempts',
  {
    runId: uuid('run_id').notNull(),
    stepId: text('step_id').notNull(),
    attempt: integer('attempt').notNull(),
    generation: integer('generation').notNull(),
    /** running | completed | failed | timed_out | lost (superseded after a crash) | cancelled */
    status: text('status', { enum: ATTEMPT_STATUSES }).notNull(),
    jobId: text('job_id').notNull(),
    /** Hash of (agent, input) for `cache:` steps; a completed attempt with the same key is reused. */
    cacheKey: text('cache_key'),
    /** The output was taken from an earlier attempt with the same cache key. */
    cacheHit: boolean('cache_hit').notNull().default(false),
    input: jsonb('input'),
    output: jsonb('output'),
    error: jsonb('error').$type<SerializedError>(),
    startedAt: ts('started_at').notNull().defaultNow(),
    finishedAt: ts('finished_at'),
  },
  (t) => [primaryKey({ columns: [t.runId, t.stepId, t.attempt] }), index('step_attempts_cache').on(t.cacheKey, t.finishedAt).where(sql`${t.cacheKey} is not null`)],
);

/**
 * Items of a fan-out step (`foreach:`), one row per item of one generation. Each item runs as a
 * child job of the step's job; results are gathered in `idx` order.
 */
export const stepItems = pgTable(
  'step_items',
  {
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    stepId: text('step_id').notNull(),
    generation: integer('generation').notNull(),
    idx: integer('idx').notNull(),
    /** pending → queued → running → completed | failed | cancelled */
    status: text('status', { enum: ITEM_STATUSES }).notNull(),
    item: jsonb('item'),
    input: jsonb('input'),
    output: jsonb('output'),
    error: jsonb('error').$type<SerializedError>(),
    attempts: integer('attempts').notNull().default(0),
    startedAt: ts('started_at'),
    finishedAt: ts('finished_at'),
  },
  (t) => [primaryKey({ columns: [t.runId, t.stepId, t.generation, t.idx] })],
);

/** Checkpoint approvals. `status`: pending → decided | expired. */
export const approvals = pgTable(
  'approvals',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    stepId: text('step_id').notNull(),
    generation: integer('generation').notNull(),
    status: text('status', { enum: APPROVAL_STATUSES }).notNull(),
    decision: text('decision'),
    comment: text('comment'),
    decidedBy: text('decided_by'),
    /** How the decision arrived: `token` (decideUrl) or `api-key`. */
    decidedVia: text('decided_via'),
    prompt: text('prompt').notNull(),
    show: jsonb('show'),
    decisions: text('decisions').array().notNull(),
    approvers: jsonb('approvers').notNull(),
    /** Distinct approvers whose `continue` is needed. */
    required: integer('required').notNull().default(1),
    /** Whether the identity that started the run may decide. */
    selfApproval: boolean('self_approval').notNull().default(true),
    /** JSON Schema of the data an approver may send with `continue` or `retry`. */
    modify: jsonb('modify'),
    /** The data sent with the deciding response (modified input), if any. */
    data: jsonb('data'),
    jobId: text('job_id').notNull(),
    expiresAt: ts('expires_at').notNull(),
    createdAt: createdAt(),
    decidedAt: ts('decided_at'),
  },
  (t) => [
    uniqueIndex('approvals_run_step_generation').on(t.runId, t.stepId, t.generation),
    index('approvals_org_status').on(t.organizationId, t.status),
  ],
);

/**
 * Every accepted response to an approval, one per distinct approver: the audit trail, and the
 * votes a `required: N` quorum counts.
 */
export const approvalResponses = pgTable(
  'approval_responses',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    approvalId: uuid('approval_id')
      .notNull()
      .references(() => approvals.id, { onDelete: 'cascade' }),
    approver: text('approver').notNull(),
    /** `token`, `api-key` or `integration`. */
    via: text('via').notNull(),
    decision: text('decision').notNull(),
    comment: text('comment'),
    data: jsonb('data'),
    /** The responding client's address (`req.ip`, after `trust proxy`) and `User-Agent`, when known. */
    clientIp: text('client_ip'),
    userAgent: text('user_agent'),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('approval_responses_approver').on(t.approvalId, t.approver)],
);

/** Trusted systems that may POST decisions signed per Standard Webhooks with their own secret. */
export const integrations = pgTable(
  'integrations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    name: text('name').notNull(),
    /** `whsec_…` secret shared with the integration (needed in clear to verify HMACs). */
    secret: text('secret').notNull(),
    /** Approver roles the integration may act as. */
    roles: text('roles').array().notNull().default(sql`'{}'::text[]`),
    createdAt: createdAt(),
    revokedAt: ts('revoked_at'),
  },
  (t) => [uniqueIndex('integrations_org_name').on(t.organizationId, t.name)],
);

/** `webhook-id`s already accepted from an integration: a replayed message is refused. */
export const integrationReceipts = pgTable(
  'integration_receipts',
  {
    integrationId: uuid('integration_id')
      .notNull()
      .references(() => integrations.id, { onDelete: 'cascade' }),
    messageId: text('message_id').notNull(),
    receivedAt: ts('received_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.integrationId, t.messageId] })],
);

/** Single-use decision tokens carried by `decideUrl`s. Only the id (`jti`) is stored. */
export const approvalTokens = pgTable('approval_tokens', {
  jti: text('jti').primaryKey(),
  approvalId: uuid('approval_id')
    .notNull()
    .references(() => approvals.id, { onDelete: 'cascade' }),
  /** The identity the link is minted for: `user:…`/`service:…`, `role:…` (a role without members) or `link:<approval id>`. */
  approver: text('approver').notNull(),
  /** The checkpoint role through which a member's link was minted (null for direct approvers). */
  role: text('role'),
  expiresAt: ts('expires_at').notNull(),
  usedAt: ts('used_at'),
  createdAt: createdAt(),
});

/**
 * Organization role membership (`PUT /v1/roles/:role`): the subjects holding `role`. A checkpoint
 * with `approvers: [{role}]` mints one decide link per member.
 */
export const roles = pgTable(
  'roles',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    role: text('role').notNull(),
    members: text('members').array().notNull().default(sql`'{}'::text[]`),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.organizationId, t.role] })],
);

/** Append-only history of a run; `seq` is the per-run sequence (SSE `id:`). */
export const runEvents = pgTable(
  'run_events',
  {
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    type: text('type').notNull(),
    stepId: text('step_id'),
    data: jsonb('data').notNull(),
    /** Whether this event is to be delivered as a webhook (its run has a `webhookUrl`). */
    notify: boolean('notify').notNull().default(true),
    /**
     * When the webhook delivery of this event finished (accepted, or refused for good). The
     * events are the webhook outbox: the reconciler re-enqueues undelivered ones.
     */
    deliveredAt: ts('delivered_at'),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.runId, t.seq] }),
    index('run_events_undelivered').on(t.createdAt).where(sql`${t.notify} and ${t.deliveredAt} is null`),
  ],
);

/** Monthly closing prices (seeded from vega-datasets' `data/stocks.csv`). */
export const marketPrices = pgTable(
  'market_prices',
  {
    symbol: text('symbol').notNull(),
    date: date('date', { mode: 'string' }).notNull(),
    price: doublePrecision('price').notNull(),
  },
  (t) => [primaryKey({ columns: [t.symbol, t.date] })],
);

/**
 * Named agents, one row per (organization, name, version); versions are immutable. Seeded from
 * `agents/catalog/*.yaml` by `release`, or added with `POST /v1/agents`.
 */
export const agents = pgTable(
  'agents',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    name: text('name').notNull(),
    version: integer('version').notNull(),
    type: text('type').notNull(),
    implementation: text('implementation').notNull(),
    description: text('description').notNull(),
    config: jsonb('config').$type<Record<string, unknown>>().notNull(),
    env: text('env').array().notNull(),
    secrets: text('secrets').array().notNull(),
    /** The YAML (or JSON) text the entry was parsed from. */
    source: text('source').notNull(),
    /** SHA-256 of `source`: seeding skips unchanged entries and refuses a changed one at the same version. */
    checksum: text('checksum').notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.organizationId, t.name, t.version] })],
);

/** Organization secrets, sealed with AES-256-GCM under `BATON_SECRETS_KEY` (never stored in clear). */
export const secrets = pgTable(
  'secrets',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    name: text('name').notNull(),
    /** `v1.<iv>.<tag>.<ciphertext>` (base64url parts), bound to organization and name as AAD. */
    sealed: text('sealed').notNull(),
    createdAt: createdAt(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.organizationId, t.name] })],
);

/** Binary results of steps (`ctx.assets.saveBuffer`), e.g. generated images. */
export const assets = pgTable(
  'assets',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    stepId: text('step_id').notNull(),
    attempt: integer('attempt').notNull(),
    name: text('name').notNull(),
    mimeType: text('mime_type').notNull(),
    bytes: integer('bytes').notNull(),
    /** Hex SHA-256 of `data` (also the HTTP `ETag`). */
    sha256: text('sha256').notNull(),
    data: bytea('data').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('assets_run').on(t.runId, t.createdAt)],
);

/** Results of a run meant for people (`ctx.deliverables.create`): reports, image sets, campaigns. */
export const deliverables = pgTable(
  'deliverables',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    stepId: text('step_id').notNull(),
    attempt: integer('attempt').notNull(),
    title: text('title').notNull(),
    kind: text('kind').notNull(),
    content: jsonb('content'),
    assetIds: uuid('asset_ids').array().notNull().default(sql`'{}'::uuid[]`),
    createdAt: createdAt(),
  },
  (t) => [index('deliverables_run').on(t.runId, t.createdAt)],
);

/**
 * Webhook subscriptions of an organization (issue 9): every run event whose type matches one of
 * `events` (`run.completed`, `step.*`, `*`) is POSTed to `url`, signed per Standard Webhooks with
 * the subscription's own `whsec_…` secret.
 */
export const webhookSubscriptions = pgTable(
  'webhook_subscriptions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    url: text('url').notNull(),
    /** Event-type patterns: an exact type, `<prefix>.*`, or `*`. */
    events: text('events').array().notNull(),
    description: text('description'),
    /** The `whsec_…` signing secret, sealed under `BATON_SECRETS_KEY` (`lib/secret-box.ts`). */
    sealedSecret: text('sealed_secret').notNull(),
    enabled: boolean('enabled').notNull().default(true),
    createdAt: createdAt(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('webhook_subscriptions_org').on(t.organizationId)],
);

/**
 * Per-run webhook progress: events up to `fannedSeq` have their deliveries recorded; the lease
 * (`leaseToken` until `leaseUntil`) lets one delivery job at a time work on the run, which is what
 * keeps one run's deliveries in sequence order.
 */
export const webhookCursors = pgTable('webhook_cursors', {
  runId: uuid('run_id')
    .primaryKey()
    .references(() => runs.id, { onDelete: 'cascade' }),
  fannedSeq: integer('fanned_seq').notNull().default(0),
  leaseToken: text('lease_token'),
  leaseUntil: ts('lease_until'),
});

/**
 * The delivery log: one row per (run event, destination). `subscriptionId` null is the run's own
 * `webhookUrl`. `status`: pending → delivered | failed (refused for good, or out of attempts).
 */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    subscriptionId: uuid('subscription_id').references(() => webhookSubscriptions.id, { onDelete: 'cascade' }),
    eventType: text('event_type').notNull(),
    status: text('status').$type<'pending' | 'delivered' | 'failed'>().notNull(),
    attempts: integer('attempts').notNull().default(0),
    /** HTTP status of the last attempt (null: no answer). */
    responseStatus: integer('response_status'),
    /** Duration of the last attempt, in milliseconds. */
    latencyMs: integer('latency_ms'),
    lastError: text('last_error'),
    /** The URL of the last attempt. */
    url: text('url'),
    /** Not before this instant (retry backoff). */
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    createdAt: createdAt(),
    finishedAt: ts('finished_at'),
  },
  (t) => [
    unique('webhook_deliveries_target_seq').on(t.runId, t.subscriptionId, t.seq).nullsNotDistinct(),
    index('webhook_deliveries_subscription').on(t.subscriptionId, t.createdAt),
    index('webhook_deliveries_pending').on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
  ],
);

/**
 * A2A tasks (issue 10): each is one run of a definition served as an A2A agent. `task` is the
 * SDK's `Task` as JSON (`Task.toJSON`, A2A v1.0), as last saved; `state` its `status.state` name.
 * `run_id` is null only between the task's first save and its run's creation.
 */
export const a2aTasks = pgTable(
  'a2a_tasks',
  {
    id: text('id').primaryKey(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    definitionSlug: text('definition_slug').notNull(),
    runId: uuid('run_id').references(() => runs.id, { onDelete: 'cascade' }),
    contextId: text('context_id').notNull(),
    state: text('state').notNull(),
    task: jsonb('task').notNull(),
    createdAt: createdAt(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('a2a_tasks_org_slug_updated').on(t.organizationId, t.definitionSlug, t.updatedAt), uniqueIndex('a2a_tasks_run').on(t.runId)],
);

/** Push-notification configs of A2A tasks (`TaskPushNotificationConfig` as A2A JSON), per task and config id. */
export const a2aPushConfigs = pgTable(
  'a2a_push_configs',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    taskId: text('task_id')
      .notNull()
      .references(() => a2aTasks.id, { onDelete: 'cascade' }),
    id: text('id').notNull(),
    /** The A2A protocol version of the request that created it (`1.0`, `0.3`): the wire format of its pushes. */
    wireVersion: text('wire_version').notNull(),
    config: jsonb('config').notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.taskId, t.id] })],
);
