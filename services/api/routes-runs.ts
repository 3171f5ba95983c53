/**
 * `/v1/runs`: start runs (or dry-run them), list them, read one, its manifest, its events and its
 * live stream (SSE).
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../../lib/index.js';
import { SLUG_PATTERN } from '../../definitions/index.js';
import { RUN_STATUSES, TERMINAL_RUN_EVENTS, assertRunInput, startRun, type EngineDeps, type RunStatus } from '../engine/index.js';
import {
  dryRun,
  getRunManifest,
  getRunView,
  listEvents,
  listRuns,
  runStatus,
  type ListRunsOptions,
  type RunEventView,
} from '../store/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import type { RunEventHub } from './event-hub.js';
import { CursorParam, INT32_MAX, limitParam, parseBody, parseQuery } from './validate.js';
import { documentRoute, AnyObject, PageOf, UuidParam } from './openapi.js';
import { RunEvent, RunListItem, RunView } from './openapi-schemas.js';
import { RunRateLimiter } from './rate-limit.js';

/** An idempotency key (body `idempotencyKey` or header `Idempotency-Key`): 1–255 characters. */
const IdempotencyKey = z.string({ error: 'expected a string' }).min(1, { error: 'must not be empty' }).max(255, { error: 'at most 255 characters' });

const StartRunBody = z.strictObject({
  definition: z.string().min(1).max(200),
  version: z.number().int().positive().max(INT32_MAX).optional(),
  input: z.unknown().optional(),
  webhookUrl: z.url({ protocol: /^https?$/ }).optional(),
  idempotencyKey: IdempotencyKey.optional(),
});

/** The answer to a started run. */
const RunStarted = z.object({
  id: z.uuid(),
  status: z.string(),
  links: z.object({ self: z.string(), events: z.string(), stream: z.string() }),
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The `:id` path parameter, or 404 when it cannot be a run id. */
export function runIdParam(req: Request): string {
  const id = String(req.params.id ?? '');
  if (!UUID.test(id)) throw new NotFoundError(`run ${id} not found`);
  return id;
}

/** An event sequence number: `after` and `Last-Event-ID` (absent or empty: 0). */
const SEQ_ERROR = `expected an integer from 0 to ${INT32_MAX}`;
const Seq = z.union([z.literal(''), z.coerce.number({ error: SEQ_ERROR }).int({ error: SEQ_ERROR }).nonnegative({ error: SEQ_ERROR }).max(INT32_MAX, { error: SEQ_ERROR })]);

function afterSeq(value: unknown, field: string): number {
  if (value === undefined) return 0;
  const parsed = Seq.safeParse(value);
  if (!parsed.success) throw new ValidationError(`${field} must be an integer from 0 to ${INT32_MAX}`, { field });
  return parsed.data === '' ? 0 : parsed.data;
}

/** `?dryRun=true|1|false|0` (absent: false; empty: true). */
const StartRunQuery = z.object({
  dryRun: z
    .enum(['true', '1', '', 'false', '0'], { error: 'dryRun must be true or false' })
    .optional()
    .meta({ description: 'Validate and plan only; nothing is written or enqueued' }),
});

const ISO_TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?(?:[Zz]|[+-](\d{2})(?::?(\d{2}))?))?$/;

/**
 * An ISO 8601 date (`2024-05-01`, midnight UTC) or date-time with `Z` or an offset
 * (`2024-05-01T12:30:00.123456Z`, `…+02:00`; up to microseconds), checked for real calendar
 * and clock values.
 * @returns the text Postgres compares as `timestamptz` (dates get `T00:00:00Z`), or `undefined` when invalid.
 */
function normalizeIsoTimestamp(value: string): string | undefined {
  const m = ISO_TIMESTAMP.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, sec, offsetH, offsetM] = m;
  const year = Number(y);
  if (year < 1) return undefined; // Postgres has no year 0 (0000-01-01 is out of range)
  const month = Number(mo);
  const day = Number(d);
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // Date.UTC would map years 0–99 to 1900–1999
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined;
  if (h === undefined) return `${y}-${mo}-${d}T00:00:00Z`;
  if (Number(h) > 23 || Number(mi) > 59 || Number(sec ?? 0) > 59) return undefined;
  if (Number(offsetH ?? 0) > 15 || Number(offsetM ?? 0) > 59) return undefined;
  return value;
}

const isoTimestamp = z
  .string({ error: 'must be given once' })
  .refine((v) => normalizeIsoTimestamp(v) !== undefined, {
    error: (issue) => `expected an ISO 8601 date, or date-time with Z or an offset, e.g. 2024-05-01T12:00:00Z (got "${String(issue.input)}")`,
  })
  .transform((v) => normalizeIsoTimestamp(v) ?? v)
  .optional()
  .meta({ description: 'ISO 8601 date, or date-time with Z or an offset (exclusive bound)' });

/** The runs-list query; an unknown or repeated parameter is refused. */
const ListRunsQuery = z.object({
  status: z
    .string({ error: 'must be given once' })
    .refine((v) => v.split(',').every((s) => (RUN_STATUSES as readonly string[]).includes(s.trim())), {
      error: `expected one or more (comma-separated) of ${RUN_STATUSES.join(', ')}`,
    })
    .transform((v) => v.split(',').map((s) => s.trim()) as RunStatus[])
    .optional()
    .meta({ description: `Comma-separated: ${RUN_STATUSES.join(', ')}` }),
  definition: z.string({ error: 'must be given once' }).regex(SLUG_PATTERN, { error: 'expected a definition slug' }).optional(),
  createdAfter: isoTimestamp,
  createdBefore: isoTimestamp,
  limit: limitParam(200, 50),
  cursor: CursorParam,
});

/**
 * The runs-list query (`status`, `definition`, `createdAfter`, `createdBefore`, `limit`, `cursor`).
 * @throws {ValidationError} naming the first invalid parameter.
 */
function listRunsQuery(req: Request): ListRunsOptions {
  const q = parseQuery(ListRunsQuery, req.query);
  return {
    limit: q.limit,
    ...(q.status ? { statuses: q.status } : {}),
    ...(q.definition ? { definition: q.definition } : {}),
    ...(q.createdAfter ? { createdAfter: q.createdAfter } : {}),
    ...(q.createdBefore ? { createdBefore: q.createdBefore } : {}),
    ...(q.cursor ? { cursor: q.cursor } : {}),
  };
}

/** `?after=<seq>` of the events list. */
const EventsQuery = z.object({ after: Seq.optional() });

/** SSE interval of keep-alive comments, in milliseconds. */
const HEARTBEAT_MS = 15_000;
/** Safety re-read interval in case a notification is missed (e.g. during a reconnect), in milliseconds. */
const SAFETY_POLL_MS = 5_000;

function writeEvent(res: Response, e: RunEventView): void {
  res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
}

export function runsRouter(deps: EngineDeps, auth: ApiKeyAuthenticator, hub: RunEventHub): Router {
  const router = Router();
  const limiter = new RunRateLimiter(deps.queues.connection, deps.config.redis.prefix, deps.config.limits.runsPerMinute);
  const links = (id: string) => ({
    self: `/v1/runs/${id}`,
    events: `/v1/runs/${id}/events`,
    stream: `/v1/runs/${id}/stream`,
  });

  documentRoute({ method: 'post', path: '/v1/runs', summary: 'Start a run (or dry-run it with ?dryRun=true)', tags: ['runs'], scope: 'runs:write', body: StartRunBody,
    query: StartRunQuery,
    headers: z.object({ 'idempotency-key': IdempotencyKey.optional(), traceparent: z.string().optional().meta({ description: 'W3C trace context: the run joins the caller\'s trace' }) }),
    responses: { 202: { description: 'Started', schema: RunStarted }, 200: { description: 'The run of the same idempotency key, or the dry-run plan', schema: AnyObject }, 400: { description: 'Invalid body or input (names the field)' }, 404: { description: 'Unknown definition or version' }, 413: { description: 'INPUT_TOO_LARGE: the input is larger than RUN_INPUT_MAX_BYTES' }, 422: { description: 'IDEMPOTENCY_KEY_REUSED: the key started a run of another request' }, 429: { description: '`RATE_LIMITED`: over the run-start limit; `Retry-After` and `RateLimit-*` headers say when to retry' }, 503: { description: 'Redis or Postgres unavailable; nothing was started' } } });
  router.post('/v1/runs', requireApiKey(auth, 'runs:write'), async (req, res) => {
    const body = parseBody(StartRunBody, req.body);
    const headerKey = req.get('idempotency-key');
    const principal = principalOf(req);
    const { dryRun: dryRunText } = parseQuery(StartRunQuery, req.query);
    if (dryRunText !== undefined && ['true', '1', ''].includes(dryRunText)) {
      assertRunInput(deps.config, body.input); // as startRun does
      // Same validation as a real start (400 / 404), but nothing is written or enqueued.
      res.status(200).json(
        await dryRun(deps.database.db, {
          organizationId: principal.organizationId,
          definition: body.definition,
          ...(body.version === undefined ? {} : { version: body.version }),
          input: body.input ?? {},
        }),
      );
      return;
    }
    await limiter.consume(principal, res); // real starts only; dry runs are not counted
    const run = await startRun(deps, {
      organizationId: principal.organizationId,
      createdBy: principal.subject,
      definition: body.definition,
      ...(body.version === undefined ? {} : { version: body.version }),
      input: body.input ?? {},
      ...(body.webhookUrl ? { webhookUrl: body.webhookUrl } : {}),
      ...(body.idempotencyKey ?? headerKey ? { idempotencyKey: body.idempotencyKey ?? headerKey } : {}),
    });
    res.status(run.created ? 202 : 200).json({ id: run.id, status: run.status, links: links(run.id) });
  });

  documentRoute({ method: 'get', path: '/v1/runs', summary: 'List runs, newest first', tags: ['runs'], scope: 'runs:read',
    query: ListRunsQuery,
    responses: { 200: { description: 'A page of runs', schema: PageOf(RunListItem) }, 400: { description: 'Invalid parameter (named)' } } });
  router.get('/v1/runs', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json(await listRuns(deps, principalOf(req).organizationId, listRunsQuery(req)));
  });

  documentRoute({ method: 'get', path: '/v1/runs/:id', summary: 'A run with its steps, approvals, parent and children', tags: ['runs'], scope: 'runs:read', params: z.object({ id: UuidParam }), responses: { 200: { description: 'The run', schema: RunView }, 404: { description: 'No such run' } } });
  router.get('/v1/runs/:id', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json(await getRunView(deps, principalOf(req).organizationId, runIdParam(req)));
  });

  documentRoute({ method: 'get', path: '/v1/runs/:id/manifest', summary: 'Audit and replay record of a run', tags: ['runs'], scope: 'runs:read', params: z.object({ id: UuidParam }), responses: { 200: { description: 'The manifest', schema: AnyObject }, 404: { description: 'No such run' } } });
  router.get('/v1/runs/:id/manifest', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json(await getRunManifest(deps, principalOf(req).organizationId, runIdParam(req)));
  });

  documentRoute({ method: 'get', path: '/v1/runs/:id/events', summary: 'Event history of a run', tags: ['runs'], scope: 'runs:read', params: z.object({ id: UuidParam }), query: EventsQuery, responses: { 200: { description: 'Events after `after`', schema: z.object({ items: z.array(RunEvent), last: z.number().int().nullable() }) }, 404: { description: 'No such run' } } });
  router.get('/v1/runs/:id/events', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const runId = runIdParam(req);
    await runStatus(deps, principalOf(req).organizationId, runId);
    const events = await listEvents(deps, runId, afterSeq(req.query.after, 'after'));
    res.json({ items: events, last: events.at(-1)?.seq ?? null });
  });

  documentRoute({ method: 'get', path: '/v1/runs/:id/stream', summary: 'Live events (Server-Sent Events)', tags: ['runs'], scope: 'runs:read', params: z.object({ id: UuidParam }), headers: z.object({ 'last-event-id': Seq.optional() }), query: EventsQuery, responses: { 200: { description: '`id:` sequence, `event:` type, `data:` JSON; ends after the terminal event', contentType: 'text/event-stream', schema: z.string() }, 404: { description: 'No such run' } } });
  router.get('/v1/runs/:id/stream', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const runId = runIdParam(req);
    await runStatus(deps, principalOf(req).organizationId, runId);
    let last = afterSeq(req.get('last-event-id') ?? req.query.after, 'Last-Event-ID');
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();

    let closed = false;
    let pumping: Promise<void> | undefined;
    let again = false;
    const cleanup: Array<() => void> = [];
    const finish = () => {
      if (closed) return;
      closed = true;
      cleanup.forEach((f) => f());
      res.end();
    };
    // Read every event after `last` and write it; coalesce wake-ups that arrive meanwhile.
    const pump = (): Promise<void> => {
      if (pumping) {
        again = true;
        return pumping;
      }
      pumping = (async () => {
        do {
          again = false;
          const events = await listEvents(deps, runId, last, 500);
          for (const e of events) {
            if (closed) return;
            writeEvent(res, e);
            last = e.seq;
            if (TERMINAL_RUN_EVENTS.has(e.type)) return finish();
          }
          if (events.length === 500) again = true;
        } while (again && !closed);
      })()
        .catch((err: unknown) => {
          deps.logger.error({ err, runId }, 'SSE stream failed');
          finish();
        })
        .finally(() => {
          pumping = undefined;
        });
      return pumping;
    };
    // Subscribe before the first read, so nothing committed in between is missed.
    cleanup.push(hub.subscribe(runId, () => void pump()));
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    const poll = setInterval(() => void pump(), SAFETY_POLL_MS);
    cleanup.push(() => clearInterval(heartbeat), () => clearInterval(poll));
    req.on('close', finish);
    await pump();
  });

  return router;
}
