/**
 * `/v1/runs`: start runs (or dry-run them), list them, read one, its manifest, its events and its
 * live stream (SSE).
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../../lib/index.js';
import { SLUG_PATTERN } from '../../definitions/index.js';
import {
  RUN_STATUSES,
  TERMINAL_RUN_EVENTS,
  getRunManifest,
  getRunView,
  listEvents,
  listRuns,
  runStatus,
  startRun,
  type EngineDeps,
  type ListRunsOptions,
  type RunEventView,
  type RunStatus,
} from '../engine/index.js';
import { dryRun } from '../store/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import type { RunEventHub } from './event-hub.js';
import { parseBody } from './validate.js';

const StartRunBody = z.strictObject({
  definition: z.string().min(1).max(200),
  version: z.number().int().positive().optional(),
  input: z.unknown().optional(),
  webhookUrl: z.url({ protocol: /^https?$/ }).optional(),
  idempotencyKey: z.string().min(1).max(200).optional(),
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The `:id` path parameter, or 404 when it cannot be a run id. */
export function runIdParam(req: Request): string {
  const id = String(req.params.id ?? '');
  if (!UUID.test(id)) throw new NotFoundError(`run ${id} not found`);
  return id;
}

function afterSeq(value: unknown, field: string): number {
  if (value === undefined || value === '') return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new ValidationError(`${field} must be a non-negative integer`, { field });
  return n;
}

/** `?dryRun=true|1|false|0` (absent: false). */
function dryRunFlag(value: unknown): boolean {
  if (value === undefined) return false;
  if (value === 'true' || value === '1' || value === '') return true;
  if (value === 'false' || value === '0') return false;
  throw new ValidationError('dryRun must be true or false', { field: 'dryRun' });
}

/** One optional query string parameter (a repeated parameter is refused). */
function queryString(req: Request, field: string): string | undefined {
  const value = req.query[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new ValidationError(`${field} must be given once`, { field });
  return value;
}

const ISO_TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?(?:[Zz]|[+-](\d{2})(?::?(\d{2}))?))?$/;

/**
 * An ISO 8601 date (`2024-05-01`, midnight UTC) or date-time with `Z` or an offset
 * (`2024-05-01T12:30:00.123456Z`, `…+02:00`; up to microseconds), checked for real calendar
 * and clock values.
 * @returns the text Postgres compares as `timestamptz` (dates get `T00:00:00Z`).
 * @throws {ValidationError} naming `field`.
 */
function isoTimestampParam(value: string, field: string): string {
  const m = ISO_TIMESTAMP.exec(value);
  const invalid = () =>
    new ValidationError(`${field} must be an ISO 8601 date, or date-time with Z or an offset, e.g. 2024-05-01T12:00:00Z (got "${value}")`, {
      field,
    });
  if (!m) throw invalid();
  const [, y, mo, d, h, mi, sec, offsetH, offsetM] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // Date.UTC would map years 0–99 to 1900–1999
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) throw invalid();
  if (h === undefined) return `${y}-${mo}-${d}T00:00:00Z`;
  if (Number(h) > 23 || Number(mi) > 59 || Number(sec ?? 0) > 59) throw invalid();
  if (Number(offsetH ?? 0) > 15 || Number(offsetM ?? 0) > 59) throw invalid();
  return value;
}

/**
 * The runs-list query (`status`, `definition`, `createdAfter`, `createdBefore`, `limit`, `cursor`).
 * @throws {ValidationError} naming the first invalid parameter.
 */
function listRunsQuery(req: Request): ListRunsOptions {
  const options: ListRunsOptions = {};
  const status = queryString(req, 'status');
  if (status !== undefined) {
    const statuses = status.split(',').map((s) => s.trim());
    const unknown = statuses.filter((s) => !(RUN_STATUSES as readonly string[]).includes(s));
    if (unknown.length > 0) {
      throw new ValidationError(`status must be one or more (comma-separated) of ${RUN_STATUSES.join(', ')}`, { field: 'status' });
    }
    options.statuses = statuses as RunStatus[];
  }
  const definition = queryString(req, 'definition');
  if (definition !== undefined) {
    if (!SLUG_PATTERN.test(definition)) throw new ValidationError('definition must be a definition slug', { field: 'definition' });
    options.definition = definition;
  }
  for (const field of ['createdAfter', 'createdBefore'] as const) {
    const value = queryString(req, field);
    if (value !== undefined) options[field] = isoTimestampParam(value, field);
  }
  const limitText = queryString(req, 'limit');
  const limit = limitText === undefined ? 50 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 200) {
    throw new ValidationError('limit must be an integer from 1 to 200', { field: 'limit' });
  }
  options.limit = limit;
  const cursor = queryString(req, 'cursor');
  if (cursor !== undefined && cursor !== '') options.cursor = cursor;
  return options;
}

/** SSE interval of keep-alive comments, in milliseconds. */
const HEARTBEAT_MS = 15_000;
/** Safety re-read interval in case a notification is missed (e.g. during a reconnect), in milliseconds. */
const SAFETY_POLL_MS = 5_000;

function writeEvent(res: Response, e: RunEventView): void {
  res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
}

export function runsRouter(deps: EngineDeps, auth: ApiKeyAuthenticator, hub: RunEventHub): Router {
  const router = Router();
  const links = (id: string) => ({
    self: `/v1/runs/${id}`,
    events: `/v1/runs/${id}/events`,
    stream: `/v1/runs/${id}/stream`,
  });

  router.post('/v1/runs', requireApiKey(auth, 'runs:write'), async (req, res) => {
    const body = parseBody(StartRunBody, req.body);
    const headerKey = req.get('idempotency-key');
    const principal = principalOf(req);
    if (dryRunFlag(req.query.dryRun)) {
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

  router.get('/v1/runs', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json(await listRuns(deps, principalOf(req).organizationId, listRunsQuery(req)));
  });

  router.get('/v1/runs/:id', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json(await getRunView(deps, principalOf(req).organizationId, runIdParam(req)));
  });

  router.get('/v1/runs/:id/manifest', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json(await getRunManifest(deps, principalOf(req).organizationId, runIdParam(req)));
  });

  router.get('/v1/runs/:id/events', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const runId = runIdParam(req);
    await runStatus(deps, principalOf(req).organizationId, runId);
    const events = await listEvents(deps, runId, afterSeq(req.query.after, 'after'));
    res.json({ items: events, last: events.at(-1)?.seq ?? null });
  });

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
