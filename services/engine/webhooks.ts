/**
 * Outgoing webhooks (issue 9 item 4, issue 8 item 5): the run's own `webhookUrl` and the
 * organization's subscriptions, signed per Standard Webhooks (https://www.standardwebhooks.com:
 * `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`, with the
 * `standardwebhooks` package) — `BATON_WEBHOOK_SECRET` for `webhookUrl`, the subscription's own
 * `whsec_…` secret for a subscription.
 *
 * The protocol, per run:
 * - After a run transaction commits, the engine calls {@link enqueueWebhooks} with the events it
 *   emitted: one delivery job per run per batch (`wh.<runId>.<newest seq>`).
 * - A job takes the run's lease (`webhook_cursors`, a conditional upsert), records a
 *   `webhook_deliveries` row per (event, destination) for every event after `fanned_seq`
 *   ("fan-out"), then sends each destination's pending deliveries in `seq` order, stopping at the
 *   first one that must wait for a retry. So one run's deliveries to one destination arrive in
 *   sequence order, whichever worker runs which job; a failing destination holds back only itself.
 * - A job that finds the lease taken leaves: the holder re-checks for due work after releasing
 *   (release, then re-check — an event committed before the other job looked is seen by that
 *   re-check), and a delayed job at the lease's expiry covers a holder that died.
 * - A failed attempt is retried with exponential backoff (1 s · 2^(n−1), equal jitter, ≤ 1 h) by
 *   a delayed job `wh.<runId>.t<due ms>`; after {@link MAX_ATTEMPTS}, or at once for a refusal
 *   (4xx other than 408/429, a URL the outbound policy denies), it is closed as `failed` and the
 *   next event goes out.
 * - The reconciler's outbox sweep ({@link sweepWebhookOutbox}) re-enqueues runs whose events were
 *   never fanned out or whose deliveries are overdue (a lost enqueue, a lost Redis).
 */
import { randomUUID } from 'node:crypto';
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { Webhook } from 'standardwebhooks';
import { ConflictError, NotFoundError, OutboundDeniedError, ValidationError, type OutboundHttp } from '../../lib/index.js';
import { runEvents, runs, webhookCursors, webhookDeliveries, webhookSubscriptions, type Database } from '../../db/index.js';
import { stepBackoffMs, webhookJobId } from '../../queues/index.js';
import {
  deliveryView,
  hasEnabledSubscription,
  matchesEventPatterns,
  subscriptionTargets,
  type SubscriptionTarget,
  type WebhookDeliveryView,
} from '../store/index.js';
import { approvalNotice, starterAudience } from './checkpoints.js';
import type { EngineDeps } from './deps.js';

/** Attempts per delivery before it is closed as failed. */
export const MAX_ATTEMPTS = 10;
/** Backoff base and cap between attempts, in milliseconds. */
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 3_600_000;
/** Per-attempt timeout, in milliseconds. */
const DELIVERY_TIMEOUT_MS = 10_000;
/** How long a delivery job holds a run's lease without renewing it, in milliseconds. */
const LEASE_MS = 60_000;
/** How long a process trusts "this organization has (no) subscriptions", in milliseconds. */
const SUBSCRIPTION_CACHE_MS = 2000;
/** Runs whose organization and webhookUrl a process remembers (they never change). */
const RUN_CACHE_SIZE = 10_000;
/** Events fanned out and deliveries read per round. */
const BATCH = 500;

interface DestinationCache {
  runs: Map<string, { organizationId: string; webhookUrl: string | null }>;
  orgs: Map<string, { has: boolean; untilMs: number }>;
}

/** Per-database caches (one per process in production; tests may hold several). */
const caches = new WeakMap<Database, DestinationCache>();

function cacheOf(database: Database): DestinationCache {
  let cache = caches.get(database);
  if (!cache) {
    cache = { runs: new Map(), orgs: new Map() };
    caches.set(database, cache);
  }
  return cache;
}

/**
 * Forget this process's cached "has subscriptions" answer for an organization (called after a
 * subscription changes here; other processes see the change within 2 s).
 */
export function forgetSubscriptionCache(deps: Pick<EngineDeps, 'database'>, organizationId: string): void {
  cacheOf(deps.database).orgs.delete(organizationId);
}

/**
 * Tell this process's cache where run `runId`'s events go, from a run row the caller has
 * anyway (the start of the run, a claim), so `enqueueWebhooks` needs no query of its own.
 * Both fields are immutable for a run's life.
 */
export function primeRunDestination(deps: Pick<EngineDeps, 'database'>, runId: string, run: { organizationId: string; webhookUrl: string | null }): void {
  const cache = cacheOf(deps.database);
  if (cache.runs.has(runId)) return;
  if (cache.runs.size >= RUN_CACHE_SIZE) cache.runs.delete(cache.runs.keys().next().value ?? '');
  cache.runs.set(runId, { organizationId: run.organizationId, webhookUrl: run.webhookUrl });
}

/**
 * Whether events of run `runId` go anywhere: it has a `webhookUrl`, or its organization an
 * enabled subscription. Cached, so the engine's hot path pays one query per run per process at
 * most (and one per organization every 2 s).
 */
async function hasDestinations(deps: EngineDeps, runId: string): Promise<boolean> {
  const cache = cacheOf(deps.database);
  let run = cache.runs.get(runId);
  if (!run) {
    const [row] = await deps.database.db
      .select({ organizationId: runs.organizationId, webhookUrl: runs.webhookUrl })
      .from(runs)
      .where(eq(runs.id, runId));
    if (!row) return false;
    run = row;
    if (cache.runs.size >= RUN_CACHE_SIZE) cache.runs.delete(cache.runs.keys().next().value ?? '');
    cache.runs.set(runId, run);
  }
  if (run.webhookUrl) return true;
  const hit = cache.orgs.get(run.organizationId);
  if (hit && hit.untilMs > Date.now()) return hit.has;
  const has = await hasEnabledSubscription(deps.database.db, run.organizationId);
  cache.orgs.set(run.organizationId, { has, untilMs: Date.now() + SUBSCRIPTION_CACHE_MS });
  return has;
}

/**
 * THE entry point of the engine (after a run transaction commits): announce committed events
 * `seqs` of run `runId` to the API processes (their SSE streams wake), and hand them to
 * delivery — one job per run per batch, only when the run has a destination. A failure here is
 * logged, not thrown: the state change is committed and must not be reported as failed; the
 * reconciler's outbox sweep delivers the events later, and streams read them at their next poll.
 */
export async function enqueueWebhooks(deps: EngineDeps, runId: string, seqs: number[]): Promise<void> {
  if (seqs.length === 0) return;
  deps.queues.announceRunEvents(runId);
  try {
    if (!(await hasDestinations(deps, runId))) return;
    await deps.queues.addWebhookDeliveries(runId, seqs);
  } catch (err) {
    deps.logger.error({ err, runId, seqs }, 'could not enqueue webhook deliveries');
  }
}

/** What one delivery job did. */
export interface DeliveryReport {
  delivered: number;
  failed: number;
  /** Attempts that failed and will be retried. */
  retrying: number;
  /** Another job held the run's lease. */
  busy: boolean;
}

/** Take the run's lease; `fannedSeq` when taken, else when the holder's lease ends. */
async function claimLease(deps: EngineDeps, runId: string, token: string): Promise<{ fannedSeq: number } | { busyUntil: Date }> {
  const { db } = deps.database;
  const [claimed] = await db
    .insert(webhookCursors)
    .values({ runId, leaseToken: token, leaseUntil: sql`now() + ${`${LEASE_MS} milliseconds`}::interval` })
    .onConflictDoUpdate({
      target: webhookCursors.runId,
      set: { leaseToken: token, leaseUntil: sql`now() + ${`${LEASE_MS} milliseconds`}::interval` },
      setWhere: sql`${webhookCursors.leaseUntil} is null or ${webhookCursors.leaseUntil} < now()`,
    })
    .returning({ fannedSeq: webhookCursors.fannedSeq });
  if (claimed) return claimed;
  const [held] = await db.select({ leaseUntil: webhookCursors.leaseUntil }).from(webhookCursors).where(eq(webhookCursors.runId, runId));
  return { busyUntil: held?.leaseUntil ?? new Date() };
}

async function renewLease(deps: EngineDeps, runId: string, token: string): Promise<void> {
  await deps.database.db
    .update(webhookCursors)
    .set({ leaseUntil: sql`now() + ${`${LEASE_MS} milliseconds`}::interval` })
    .where(and(eq(webhookCursors.runId, runId), eq(webhookCursors.leaseToken, token)));
}

async function releaseLease(deps: EngineDeps, runId: string, token: string): Promise<void> {
  await deps.database.db
    .update(webhookCursors)
    .set({ leaseToken: null, leaseUntil: null })
    .where(and(eq(webhookCursors.runId, runId), eq(webhookCursors.leaseToken, token)));
}

/**
 * The next attempt time of each destination's first pending delivery of a run (only those
 * matter: the ones behind wait for them).
 */
const headsOf = (runId: string) => sql`
  select distinct on (subscription_id) next_attempt_at from webhook_deliveries
  where run_id = ${runId} and status = 'pending' order by subscription_id, seq`;

/** Whether the run has events not fanned out yet, or a destination whose next delivery is due. */
async function hasDueWork(deps: EngineDeps, runId: string): Promise<boolean> {
  const rows = await deps.database.db.execute<{ due: boolean }>(sql`
    select (select event_seq from runs where id = ${runId}) > coalesce((select fanned_seq from webhook_cursors where run_id = ${runId}), 0)
        or exists (select 1 from (${headsOf(runId)}) h where h.next_attempt_at <= now()) as due`);
  return rows[0]?.due === true;
}

/** Record a delivery row per (event, destination) for the run's events after `fannedSeq`. */
async function fanOut(deps: EngineDeps, runId: string, token: string, fannedSeq: number, targets: () => Promise<SubscriptionTarget[]>): Promise<void> {
  const { db } = deps.database;
  const [run] = await db.select({ webhookUrl: runs.webhookUrl }).from(runs).where(eq(runs.id, runId));
  if (!run) return;
  let cursor = fannedSeq;
  for (;;) {
    const events = await db
      .select({ seq: runEvents.seq, type: runEvents.type, createdAt: runEvents.createdAt })
      .from(runEvents)
      .where(and(eq(runEvents.runId, runId), sql`${runEvents.seq} > ${cursor}`))
      .orderBy(asc(runEvents.seq))
      .limit(BATCH);
    const last = events.at(-1);
    if (!last) return;
    const subscriptions = (await targets()).filter((s) => s.enabled);
    const rows = events.flatMap((e) => [
      ...(run.webhookUrl ? [{ runId, seq: e.seq, subscriptionId: null, eventType: e.type, status: 'pending' as const }] : []),
      ...subscriptions
        .filter((s) => s.createdAt <= e.createdAt && matchesEventPatterns(s.events, e.type))
        .map((s) => ({ runId, seq: e.seq, subscriptionId: s.id, eventType: e.type, status: 'pending' as const })),
    ]);
    await db.transaction(async (tx) => {
      if (rows.length > 0) await tx.insert(webhookDeliveries).values(rows).onConflictDoNothing();
      await tx
        .update(webhookCursors)
        .set({ fannedSeq: last.seq })
        .where(and(eq(webhookCursors.runId, runId), eq(webhookCursors.leaseToken, token)));
    });
    cursor = last.seq;
    if (events.length < BATCH) return;
  }
}

/** A signed webhook message, ready to POST. */
export interface WebhookMessage {
  url: string;
  /** Raw JSON body `{type, timestamp, data}`; sign and send these exact bytes. */
  body: string;
  headers: Record<string, string>;
}

/**
 * The body of run event `seq`: `{type, timestamp, data: {runId, seq, stepId, …event data}}`. For
 * `checkpoint.requested` and `checkpoint.reminded`, `data.approval` carries the `decideUrl`(s) the
 * run's starter may hold — its own approver links, none when the checkpoint refuses
 * self-approval — with freshly minted (deterministic) tokens, which never touch storage. Other
 * approvers fetch their links with their own key (`GET /v1/approvals/:id/links`).
 */
async function eventBody(deps: EngineDeps, runId: string, event: { seq: number; type: string; stepId: string | null; data: unknown; createdAt: Date }): Promise<string> {
  const data: Record<string, unknown> = { runId, seq: event.seq, stepId: event.stepId, ...(event.data as Record<string, unknown>) };
  if (event.type === 'checkpoint.requested' || event.type === 'checkpoint.reminded') {
    const approval = data.approval as { id?: string } | undefined;
    if (approval?.id) data.approval = await approvalNotice(deps, approval.id, await starterAudience(deps, runId));
  }
  return JSON.stringify({ type: event.type, timestamp: event.createdAt.toISOString(), data });
}

/** Sign `body` as message `msg_<runId>_<seq>` with `secret` (the same id on every retry). */
function signed(url: string, secret: string, runId: string, seq: number, body: string): WebhookMessage {
  const id = `msg_${runId}_${seq}`;
  const sentAt = new Date();
  return {
    url,
    body,
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
      'webhook-signature': new Webhook(secret).sign(id, sentAt, body),
    },
  };
}

/** The outcome of one attempt. */
interface Attempt {
  ok: boolean;
  /** Never worth retrying. */
  permanent: boolean;
  responseStatus: number | null;
  latencyMs: number;
  error: string | null;
}

async function attempt(http: OutboundHttp, message: WebhookMessage): Promise<Attempt> {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  try {
    const response = await http({
      method: 'POST',
      url: message.url,
      headers: message.headers,
      body: message.body,
      timeoutMs: DELIVERY_TIMEOUT_MS,
      responseType: 'text',
      maxBodyBytes: 64 * 1024,
      maxRedirects: 0,
    });
    const ok = response.status >= 200 && response.status < 300;
    const permanent = response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429;
    return { ok, permanent, responseStatus: response.status, latencyMs: latency(), error: ok ? null : `endpoint answered ${response.status}` };
  } catch (err) {
    // A destination the outbound policy refuses, or a malformed URL, never succeeds.
    const permanent = err instanceof OutboundDeniedError || err instanceof ValidationError;
    return { ok: false, permanent, responseStatus: null, latencyMs: latency(), error: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Send every due delivery of the run, each destination in `seq` order, stopping a destination
 * at its first delivery that must wait.
 */
async function deliverDue(
  deps: EngineDeps,
  http: OutboundHttp,
  runId: string,
  token: string,
  targets: () => Promise<SubscriptionTarget[]>,
  report: DeliveryReport,
): Promise<void> {
  const { db } = deps.database;
  // Renew the lease once a third of it has passed (sending one delivery takes ≤ 10 s).
  let renewedAt = Date.now();
  const lease = {
    async renew() {
      if (Date.now() - renewedAt < LEASE_MS / 3) return;
      renewedAt = Date.now();
      await renewLease(deps, runId, token);
    },
  };
  const pending = await db
    .select({
      id: webhookDeliveries.id,
      seq: webhookDeliveries.seq,
      subscriptionId: webhookDeliveries.subscriptionId,
      attempts: webhookDeliveries.attempts,
      due: sql<boolean>`${webhookDeliveries.nextAttemptAt} <= now()`,
      type: runEvents.type,
      stepId: runEvents.stepId,
      data: runEvents.data,
      createdAt: runEvents.createdAt,
      webhookUrl: runs.webhookUrl,
    })
    .from(webhookDeliveries)
    .innerJoin(runEvents, and(eq(runEvents.runId, webhookDeliveries.runId), eq(runEvents.seq, webhookDeliveries.seq)))
    .innerJoin(runs, eq(runs.id, webhookDeliveries.runId))
    .where(and(eq(webhookDeliveries.runId, runId), eq(webhookDeliveries.status, 'pending')))
    .orderBy(asc(webhookDeliveries.seq))
    .limit(BATCH);
  if (pending.length === 0) return;
  const byTarget = new Map<string, typeof pending>();
  for (const p of pending) {
    const key = p.subscriptionId ?? '';
    byTarget.set(key, [...(byTarget.get(key) ?? []), p]);
  }
  const subscriptions = new Map((await targets()).map((s) => [s.id, s]));
  const bodies = new Map<number, string>();
  const runFinished: number[] = [];
  for (const [key, list] of byTarget) {
    for (const d of list) {
      if (!d.due) break;
      const subscription = key === '' ? undefined : subscriptions.get(key);
      const destination = key === '' ? { url: d.webhookUrl, secret: deps.config.auth.webhookSecret } : subscription?.enabled ? subscription : undefined;
      if (!destination?.url) {
        await closeDelivery(deps, d.id, 'failed', { responseStatus: null, latencyMs: null, error: 'subscription disabled', url: null });
        report.failed += 1;
        continue;
      }
      let body = bodies.get(d.seq);
      if (body === undefined) {
        body = await eventBody(deps, runId, d);
        bodies.set(d.seq, body);
      }
      await lease.renew();
      const result = await attempt(http, signed(destination.url, destination.secret, runId, d.seq, body));
      const attempts = d.attempts + 1;
      const outcome = { responseStatus: result.responseStatus, latencyMs: result.latencyMs, error: result.error, url: destination.url };
      if (result.ok || result.permanent || attempts >= MAX_ATTEMPTS) {
        await closeDelivery(deps, d.id, result.ok ? 'delivered' : 'failed', outcome, attempts);
        if (result.ok) report.delivered += 1;
        else report.failed += 1;
        if (key === '') runFinished.push(d.seq);
        continue;
      }
      const delayMs = stepBackoffMs(attempts, BACKOFF_BASE_MS, BACKOFF_MAX_MS);
      await db
        .update(webhookDeliveries)
        .set({
          attempts,
          responseStatus: outcome.responseStatus,
          latencyMs: outcome.latencyMs,
          lastError: outcome.error,
          url: outcome.url,
          nextAttemptAt: sql`now() + ${`${delayMs} milliseconds`}::interval`,
        })
        .where(eq(webhookDeliveries.id, d.id));
      report.retrying += 1;
      break;
    }
  }
  // The run's own webhook: the events are its outbox (`run_events.delivered_at`).
  if (runFinished.length > 0) {
    await db
      .update(runEvents)
      .set({ deliveredAt: sql`now()` })
      .where(and(eq(runEvents.runId, runId), inArray(runEvents.seq, runFinished)));
  }
}

async function closeDelivery(
  deps: EngineDeps,
  id: string,
  status: 'delivered' | 'failed',
  outcome: { responseStatus: number | null; latencyMs: number | null; error: string | null; url: string | null },
  attempts?: number,
): Promise<void> {
  await deps.database.db
    .update(webhookDeliveries)
    .set({
      status,
      ...(attempts === undefined ? {} : { attempts }),
      responseStatus: outcome.responseStatus,
      latencyMs: outcome.latencyMs,
      lastError: outcome.error,
      url: outcome.url,
      finishedAt: sql`now()`,
    })
    .where(eq(webhookDeliveries.id, id));
}

/** Make sure a delayed job exists for the run's earliest retry still in the future. */
async function scheduleRetry(deps: EngineDeps, runId: string): Promise<void> {
  const rows = await deps.database.db.execute<{ at_ms: string | null; in_ms: string | null }>(sql`
    select (extract(epoch from min(h.next_attempt_at)) * 1000)::bigint as at_ms,
           (extract(epoch from min(h.next_attempt_at) - now()) * 1000)::bigint as in_ms
    from (${headsOf(runId)}) h`);
  const row = rows[0];
  if (!row?.at_ms || !row.in_ms) return;
  const inMs = Number(row.in_ms);
  await deps.queues.addWebhookJob(runId, 0, webhookJobId(runId, `t${row.at_ms}`), Math.max(0, inMs));
}

/**
 * The work of one delivery job: fan out the run's new events and send what is due, in order,
 * while holding the run's lease; then schedule the next retry.
 * @param http - outgoing HTTP under the outbound policy.
 * @throws infrastructure errors (Postgres, Redis) only; endpoint failures are recorded.
 */
export async function deliverRunWebhooks(deps: EngineDeps, http: OutboundHttp, runId: string): Promise<DeliveryReport> {
  const report: DeliveryReport = { delivered: 0, failed: 0, retrying: 0, busy: false };
  const token = randomUUID();
  let organizationId: string | undefined;
  let cached: SubscriptionTarget[] | undefined;
  const targets = async (): Promise<SubscriptionTarget[]> => {
    if (cached) return cached;
    if (!organizationId) {
      const [run] = await deps.database.db.select({ organizationId: runs.organizationId }).from(runs).where(eq(runs.id, runId));
      if (!run) return [];
      organizationId = run.organizationId;
    }
    cached = await subscriptionTargets(deps.database.db, deps.config.secrets.key, organizationId);
    return cached;
  };
  for (;;) {
    const lease = await claimLease(deps, runId, token);
    if ('busyUntil' in lease) {
      // The holder re-checks after releasing; this delayed job covers a holder that died.
      report.busy = true;
      const at = Math.ceil(lease.busyUntil.getTime() / 10_000) * 10_000;
      await deps.queues.addWebhookJob(runId, 0, webhookJobId(runId, `l${at}`), Math.max(0, at - Date.now()));
      return report;
    }
    try {
      await fanOut(deps, runId, token, lease.fannedSeq, targets);
      await deliverDue(deps, http, runId, token, targets, report);
    } finally {
      await releaseLease(deps, runId, token);
    }
    cached = undefined;
    if (!(await hasDueWork(deps, runId))) break;
  }
  await scheduleRetry(deps, runId);
  return report;
}

/**
 * The webhook outbox sweep, called by the reconciler: re-enqueue runs whose events were never
 * fanned out (the enqueue after the commit failed) or that have pending deliveries (Redis may
 * have lost the job, or the delayed job of a retry). Only work older than `graceMs` is swept, and
 * only of runs unfinished or finished within a day. A job for a run that is fine does nothing
 * but re-add its retry's delayed job, a no-op when it exists (same id).
 * @returns how many events (not yet fanned out, or with a pending delivery) the re-enqueued
 *   jobs cover.
 */
export async function sweepWebhookOutbox(deps: EngineDeps, graceMs = 30_000, limit = 1000): Promise<number> {
  const grace = `${graceMs} milliseconds`;
  const rows = await deps.database.db.execute<{ run_id: string; events: string }>(sql`
    select r.id as run_id, (r.event_seq - coalesce(c.fanned_seq, 0))::int as events
    from runs r left join webhook_cursors c on c.run_id = r.id
    where r.event_seq > coalesce(c.fanned_seq, 0)
      and (r.finished_at is null or r.finished_at > now() - interval '1 day')
      and (r.webhook_url is not null
           or exists (select 1 from webhook_subscriptions s where s.organization_id = r.organization_id and s.enabled))
      and (select e.created_at from run_events e where e.run_id = r.id and e.seq = coalesce(c.fanned_seq, 0) + 1) < now() - ${grace}::interval
    union all
    select d.run_id, count(*)::int as events
    from webhook_deliveries d
    where d.status = 'pending'
    group by d.run_id
    having min(d.created_at) < now() - ${grace}::interval
    limit ${limit}`);
  const sweep = Date.now();
  let covered = 0;
  for (const row of rows) {
    await deps.queues.addWebhookJob(row.run_id, 0, webhookJobId(row.run_id, `s${sweep}`));
    covered += Number(row.events);
  }
  return covered;
}

/**
 * Send a finished delivery again (`POST /v1/webhook-deliveries/:id/redeliver`): it becomes
 * pending with a fresh attempt budget and goes out first among its destination's pending
 * deliveries of that run.
 * @throws {NotFoundError} when the delivery is not one of the organization's subscriptions'.
 * @throws {ConflictError} when it is still pending.
 */
export async function redeliverWebhook(deps: EngineDeps, organizationId: string, deliveryId: string): Promise<WebhookDeliveryView> {
  const { db } = deps.database;
  const [found] = await db
    .select({ delivery: webhookDeliveries })
    .from(webhookDeliveries)
    .innerJoin(webhookSubscriptions, eq(webhookSubscriptions.id, webhookDeliveries.subscriptionId))
    .where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookSubscriptions.organizationId, organizationId)));
  if (!found) throw new NotFoundError(`webhook delivery ${deliveryId} not found`);
  const [row] = await db
    .update(webhookDeliveries)
    .set({ status: 'pending', attempts: 0, nextAttemptAt: sql`now()`, finishedAt: null })
    .where(and(eq(webhookDeliveries.id, deliveryId), sql`${webhookDeliveries.status} <> 'pending'`))
    .returning();
  if (!row) throw new ConflictError(`webhook delivery ${deliveryId} is still pending`, { details: deliveryView(found.delivery) as unknown as Record<string, unknown> });
  await deps.queues.addWebhookJob(row.runId, 0, webhookJobId(row.runId, `r${row.id}.${Date.now()}`));
  return deliveryView(row);
}
