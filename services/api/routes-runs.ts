/** `/v1/runs`: start runs, read them, their events and their live stream (SSE). */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../../lib/index.js';
import {
  TERMINAL_RUN_EVENTS,
  getRunView,
  listEvents,
  runStatus,
  startRun,
  type EngineDeps,
  type RunEventView,
} from '../engine/index.js';
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

  router.get('/v1/runs/:id', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json(await getRunView(deps, principalOf(req).organizationId, runIdParam(req)));
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
