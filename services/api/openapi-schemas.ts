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
  status: z.string(),
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
