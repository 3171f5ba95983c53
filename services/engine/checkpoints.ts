/**
 * Checkpoints and approvals (SPEC A1–A3).
 *
 * - `openCheckpoint` commits the pending approval (and its token ids) and `checkpoint.requested`
 *   before anyone is notified; the deadline is computed with Postgres' clock.
 * - `decideApproval` (decisions.ts) records responses and decides, race-free, then promotes.
 * - `remindApproval` emits `checkpoint.reminded` from the delayed reminder jobs.
 * - `resolveCheckpoint` runs in the woken checkpoint job and applies the decision (or the
 *   deadline's `onTimeout`, judged by Postgres `now()`).
 */
import { randomUUID } from 'node:crypto';
import { and, count, eq, isNull, sql } from 'drizzle-orm';
import { NotFoundError } from '../../lib/index.js';
import { apiKeys, approvalTokens, approvals, runs, steps } from '../../db/index.js';
import { DEFAULTS, evaluateMapping, renderTemplate, type CheckpointStep, type CheckpointTimeoutAction } from '../../definitions/index.js';
import { stepJobId, type StepJobData } from '../../queues/index.js';
import { loadSteps, scopeOf } from './advance.js';
import { mintDecisionToken, tokenKey } from './approval-tokens.js';
import { approvalSummary, definitionById, getApproval, roleMembers, type ApprovalRow } from '../store/index.js';
import type { EngineDeps } from './deps.js';
import { APPROVAL_ABORTED } from './finalize.js';
import { withRun, type RunScope, type Tx } from './run-scope.js';
import { completeStepIn, failStepIn, rerunFromIn, type StepRecord, type StepRef } from './steps.js';
import { engineFailure } from './statuses.js';


/** Decisions a checkpoint may offer (D7). */
export const SUPPORTED_DECISIONS = ['continue', 'retry', 'abort'] as const;
export type Decision = (typeof SUPPORTED_DECISIONS)[number];

/** State of a checkpoint's approval as seen by its job. */
export interface CheckpointState {
  approval: ApprovalRow;
  /** Deadline passed, by Postgres' clock. */
  expired: boolean;
  /** Reminders before the deadline, in milliseconds (the checkpoint's `remind:`). */
  remindMs: number[];
}

/** A decide link to mint: the identity it is for, and the checkpoint role it came through. */
interface LinkGrant {
  approver: string;
  role: string | null;
}

/**
 * The decide links of a new approval, one per identity: each `{user}` approver; each member of a
 * `{role}` approver (organization role membership, `PUT /v1/roles/:role`), or one shared
 * `role:<name>` link when the role has no members; and for a checkpoint without approvers one
 * bearer link minted for `link:<approval id>` (whoever holds it; never recorded as `anyone`).
 * Membership is read once, when the checkpoint opens.
 */
async function linkGrants(tx: Tx, organizationId: string, spec: CheckpointStep, approvalId: string): Promise<LinkGrant[]> {
  if (spec.approvers.length === 0) return [{ approver: `link:${approvalId}`, role: null }];
  const members = await roleMembers(tx, organizationId, spec.approvers.flatMap((a) => ('role' in a ? [a.role] : [])));
  const grants = new Map<string, LinkGrant>();
  for (const a of spec.approvers) {
    if (!('role' in a)) {
      grants.set(`user:${a.user}`, { approver: `user:${a.user}`, role: null });
      continue;
    }
    const of = members.get(a.role) ?? [];
    if (of.length === 0) grants.set(`role:${a.role}`, { approver: `role:${a.role}`, role: a.role });
    for (const m of of) if (!grants.has(m)) grants.set(m, { approver: m, role: a.role });
  }
  return [...grants.values()];
}

/**
 * Create the step's approval if it does not exist yet (idempotent for re-delivered jobs), move
 * the step to `waiting`, and emit `checkpoint.requested`.
 */
export async function openCheckpoint(deps: EngineDeps, data: StepJobData, attempt: number): Promise<CheckpointState> {
  return withRun(deps, data.runId, async (scope) => {
    const { tx, run } = scope;
    const where = and(
      eq(approvals.runId, data.runId),
      eq(approvals.stepId, data.stepId),
      eq(approvals.generation, data.generation),
    );
    let [approval] = await tx.select().from(approvals).where(where);
    const { spec: definition } = await definitionById(tx, run.definitionId);
    const spec = definition.steps.find((s) => s.id === data.stepId);
    if (!spec || spec.kind !== 'checkpoint') throw new NotFoundError(`checkpoint step ${data.stepId} not found`);
    if (!approval) {
      const rows = await loadSteps(scope);
      const exprScope = scopeOf(run, rows);
      const prompt = await renderTemplate(spec.prompt, exprScope);
      const show = spec.show === undefined ? null : ((await evaluateMapping(spec.show, exprScope)) ?? null);
      [approval] = await tx
        .insert(approvals)
        .values({
          runId: data.runId,
          organizationId: run.organizationId,
          stepId: data.stepId,
          generation: data.generation,
          status: 'pending',
          prompt,
          show,
          decisions: spec.decisions.filter((d) => (SUPPORTED_DECISIONS as readonly string[]).includes(d)),
          approvers: spec.approvers,
          required: spec.required,
          selfApproval: spec.selfApproval,
          modify: spec.modify ?? null,
          jobId: stepJobId(data.runId, data.stepId, data.generation),
          expiresAt: sql`now() + ${`${spec.timeoutMs} milliseconds`}::interval`,
        })
        .returning();
      if (!approval) throw new Error('approval insert returned nothing');
      await tx.insert(approvalTokens).values(
        (await linkGrants(tx, run.organizationId, spec, approval.id)).map(({ approver, role }) => ({
          jti: randomUUID(),
          approvalId: approval!.id,
          approver,
          role,
          expiresAt: approval!.expiresAt,
          createdAt: sql`date_trunc('second', now())`,
        })),
      );
      await tx
        .update(steps)
        .set({ status: 'waiting' })
        .where(and(eq(steps.runId, data.runId), eq(steps.stepId, data.stepId), eq(steps.attempts, attempt)));
      await scope.emit('checkpoint.requested', data.stepId, { approval: approvalSummary(approval) });
    }
    const [{ expired } = { expired: false }] = await tx
      .select({ expired: sql<boolean>`now() >= ${approvals.expiresAt}` })
      .from(approvals)
      .where(eq(approvals.id, approval.id));
    return { approval, expired, remindMs: spec.remindMs };
  });
}

/**
 * Schedule the approval's reminders as delayed jobs, `remindMs` before its deadline (job id
 * `remind.<approval>.<ms>`, so scheduling again is a no-op). Reminders already due are skipped.
 */
export async function scheduleReminders(deps: EngineDeps, approval: ApprovalRow, remindMs: number[]): Promise<void> {
  const now = Date.now();
  await deps.queues.addAll(
    remindMs.flatMap((beforeMs) => {
      const delayMs = approval.expiresAt.getTime() - beforeMs - now;
      return delayMs > 0 ? [{ kind: 'remind' as const, approvalId: approval.id, runId: approval.runId, beforeMs, delayMs }] : [];
    }),
  );
}

/**
 * Emit `checkpoint.reminded` (event and webhook, with the decide links) if the approval is still
 * pending and before its deadline, by Postgres time; otherwise do nothing.
 * @returns whether a reminder was emitted.
 */
export async function remindApproval(deps: EngineDeps, runId: string, approvalId: string, beforeMs: number): Promise<boolean> {
  return withRun(deps, runId, async ({ tx, emit }) => {
    const [row] = await tx
      .select({ approval: approvals, remainingMs: sql<number>`(extract(epoch from ${approvals.expiresAt} - now()) * 1000)::float8` })
      .from(approvals)
      .where(eq(approvals.id, approvalId));
    if (!row || row.approval.status !== 'pending' || row.remainingMs <= 0) return false;
    await emit('checkpoint.reminded', row.approval.stepId, {
      approval: approvalSummary(row.approval),
      remindedMsBeforeDeadline: beforeMs,
      remainingMs: Math.round(row.remainingMs),
    });
    return true;
  });
}

/** Who a notification is for: an identity and the approver roles it holds. */
export interface LinkAudience {
  identity: string;
  roles: string[];
}

/**
 * Whether `audience` may receive the decide link issued to `approver` (`link:<approval id>` of a
 * checkpoint without approvers — or `anyone`, its name before issue 12 —, `user:…`/`service:…`,
 * `role:…` of a role without members): only its own links, and none at all for the run's starter when the checkpoint
 * refuses self-approval. So a link minted for an approver reaches that approver only.
 */
export function mayReceiveLink(approver: string, audience: LinkAudience, approval: Pick<ApprovalRow, 'selfApproval'>, startedBy: string): boolean {
  if (!approval.selfApproval && audience.identity === startedBy) return false;
  if (approver === 'anyone' || approver.startsWith('link:') || approver === audience.identity) return true;
  return approver.startsWith('role:') && audience.roles.includes(approver.slice('role:'.length));
}

/**
 * The run's starter as a link audience: its identity and the roles its organization's live API
 * keys give that identity.
 */
export async function starterAudience(deps: EngineDeps, runId: string): Promise<LinkAudience & { organizationId: string }> {
  const [run] = await deps.database.db
    .select({ createdBy: runs.createdBy, organizationId: runs.organizationId })
    .from(runs)
    .where(eq(runs.id, runId));
  if (!run) throw new NotFoundError(`run ${runId} not found`);
  const keys = await deps.database.db
    .select({ roles: apiKeys.roles })
    .from(apiKeys)
    .where(and(eq(apiKeys.organizationId, run.organizationId), eq(apiKeys.subject, run.createdBy), isNull(apiKeys.revokedAt)));
  return { identity: run.createdBy, roles: [...new Set(keys.flatMap((k) => k.roles))], organizationId: run.organizationId };
}

/**
 * The notification payload of an approval for `audience`, with one signed `decideUrl` per
 * approver link the audience may receive ({@link mayReceiveLink}) — `{approver, role?, url}`, where
 * `approver` is the identity the link is minted for and `role` the checkpoint role a member's link
 * came through —; `decideUrl` is the first, or null when none. Tokens are re-minted from their stored claims (see approval-tokens.ts).
 */
export async function approvalNotice(deps: EngineDeps, approvalId: string, audience: LinkAudience): Promise<Record<string, unknown>> {
  const approval = await getApproval(deps, approvalId);
  if (!approval) throw new NotFoundError(`approval ${approvalId} not found`);
  const [run] = await deps.database.db.select({ createdBy: runs.createdBy }).from(runs).where(eq(runs.id, approval.runId));
  const tokens = (
    await deps.database.db.select().from(approvalTokens).where(eq(approvalTokens.approvalId, approvalId)).orderBy(approvalTokens.approver)
  ).filter((t) => mayReceiveLink(t.approver, audience, approval, run?.createdBy ?? ''));
  const key = tokenKey(deps.config.auth.webhookSecret);
  const base = `${deps.config.http.publicUrl}/v1/approvals/${approval.id}/decision?token=`;
  const decideUrls = await Promise.all(
    tokens.map(async (t) => ({
      approver: t.approver,
      ...(t.role === null ? {} : { role: t.role }),
      url:
        base +
        (await mintDecisionToken(key, {
          approvalId: approval.id,
          approver: t.approver,
          generation: approval.generation,
          jti: t.jti,
          issuedAtS: Math.floor(t.createdAt.getTime() / 1000),
          expiresAtS: Math.floor(t.expiresAt.getTime() / 1000),
        })),
    })),
  );
  return { ...approvalSummary(approval), decideUrl: decideUrls[0]?.url ?? null, decideUrls };
}

/**
 * Whether a checkpoint step's job has nothing left to do because its step is already finished
 * (`completed` or `skipped`) at the job's generation: one plain read, without the run's lock.
 *
 * Used by the job woken after a decision, which would otherwise take the run's lock just to
 * find that out — while the successor the decision queued is being claimed under that lock.
 * Acknowledging without re-adding live jobs (as `beginStep`'s `finished` branch does) is safe:
 * whoever finished the step added its successors' jobs before promoting this one (a decision,
 * `decideApproval`; an intervention; the reconciler, `ensureStepJobs` first); and if that
 * process died between its commit and its add, the root's repair pass — the root wakes once
 * this job completes — or the periodic reconcile adds them (invariant 1 of ARCHITECTURE.md).
 * A finished step never becomes live again at the same generation (a re-run bumps it).
 */
export async function checkpointAlreadyFinished(deps: EngineDeps, data: StepRef): Promise<boolean> {
  const [row] = await deps.database.db
    .select({ status: steps.status, generation: steps.generation })
    .from(steps)
    .where(and(eq(steps.runId, data.runId), eq(steps.stepId, data.stepId)));
  return row !== undefined && row.generation === data.generation && (row.status === 'completed' || row.status === 'skipped');
}

/**
 * Wake a parked checkpoint job. If it has not parked yet, the job re-reads Postgres right after
 * parking and promotes itself, so the decision is not lost (research/bullmq-design.md §2.3).
 */
export async function promoteParked(deps: EngineDeps, jobId: string): Promise<void> {
  await deps.queues.promote('checkpoints', jobId);
}

/** What the woken checkpoint job should do. */
export type CheckpointResolution =
  | { kind: 'pending' }
  | ({ kind: 'resolved' } & StepRecord);

/**
 * Apply the checkpoint's outcome: the decision, or `onTimeout` when the deadline passed
 * (Postgres time). `continue` completes the step; `retry` re-runs `retryStep` and its
 * descendants (this checkpoint included, which then asks again under a new approval); `abort`
 * fails it with `APPROVAL_ABORTED` (the run ends `cancelled`).
 */
export async function resolveCheckpoint(deps: EngineDeps, data: StepJobData, attempt: number): Promise<CheckpointResolution> {
  return withRun(deps, data.runId, async (scope) => {
    const { tx, run, emit } = scope;
    const [row] = await tx
      .select({ approval: approvals, expired: sql<boolean>`now() >= ${approvals.expiresAt}` })
      .from(approvals)
      .where(
        and(eq(approvals.runId, data.runId), eq(approvals.stepId, data.stepId), eq(approvals.generation, data.generation)),
      );
    if (!row) throw new NotFoundError(`no approval for step ${data.stepId}`);
    const { approval, expired } = row;
    if (approval.status === 'pending' && !expired) return { kind: 'pending' as const };
    const { spec: definition } = await definitionById(tx, run.definitionId);
    const spec = definition.steps.find((s) => s.id === data.stepId);
    if (spec?.kind !== 'checkpoint') throw new NotFoundError(`checkpoint step ${data.stepId} not found`);
    if (approval.status !== 'pending') return { kind: 'resolved' as const, ...(await applyDecision(deps, scope, data, attempt, approval, spec)) };
    const action = await timeoutAction(scope, data, spec);
    const [expiredRow] = await tx
      .update(approvals)
      .set({ status: 'expired', decision: action.decision, decidedBy: 'system:timeout', decidedAt: sql`now()` })
      .where(and(eq(approvals.id, approval.id), eq(approvals.status, 'pending')))
      .returning();
    await emit('checkpoint.expired', data.stepId, { approval: approvalSummary(expiredRow ?? approval), onTimeout: spec.onTimeout, ...action.extra });
    return { kind: 'resolved' as const, ...(await applyDecision(deps, scope, data, attempt, expiredRow ?? approval, spec)) };
  });
}

/**
 * What an expired approval decides: `onTimeout`, except that `onTimeout: retry` retries at most
 * `maxRetries` deadlines (counted as this step's earlier approvals that expired into a retry) and
 * then applies `onRetriesExhausted` (`extra` records it on the `checkpoint.expired` event).
 */
async function timeoutAction(
  scope: RunScope,
  step: StepRef,
  spec: CheckpointStep,
): Promise<{ decision: CheckpointTimeoutAction; extra: Record<string, unknown> }> {
  if (spec.onTimeout !== 'retry') return { decision: spec.onTimeout, extra: {} };
  const maxRetries = spec.maxRetries ?? DEFAULTS.checkpointMaxRetries;
  const [row] = await scope.tx
    .select({ retries: count() })
    .from(approvals)
    .where(and(eq(approvals.runId, step.runId), eq(approvals.stepId, step.stepId), eq(approvals.status, 'expired'), eq(approvals.decision, 'retry')));
  const retries = row?.retries ?? 0;
  if (retries < maxRetries) return { decision: 'retry', extra: { retry: retries + 1, maxRetries } };
  const exhausted = spec.onRetriesExhausted ?? 'abort';
  return { decision: exhausted, extra: { retriesExhausted: true, maxRetries, action: exhausted } };
}

/**
 * Finish a checkpoint step from its settled approval, inside the caller's run scope (the
 * decision's own transaction, or the woken job's after a deadline): `continue` completes the
 * step with the decision as its output; `retry` re-runs `retryStep` and its descendants (this
 * checkpoint included, which then asks again under a new approval); `abort` — or an expired
 * approval whose `onTimeout` is abort — fails it with `APPROVAL_ABORTED` (the run ends
 * `cancelled`). A step no longer waiting at `attempt` is fenced out (`recorded: false`).
 * @param fenced - the caller read the step `waiting` at `attempt` under the run's lock, in this
 *   transaction (a `continue` then skips the same check).
 */
export async function applyDecision(
  deps: EngineDeps,
  scope: RunScope,
  step: StepRef,
  attempt: number,
  approval: ApprovalRow,
  spec: CheckpointStep,
  fenced = false,
): Promise<StepRecord> {
  const result = {
    decision: approval.decision,
    comment: approval.comment,
    decidedBy: approval.decidedBy,
    decidedVia: approval.decidedVia,
    decidedAt: approval.decidedAt?.toISOString() ?? null,
    /** Modified data sent with the decision (null when none): later steps read `steps.<id>.output.data`. */
    data: approval.data ?? null,
  };
  if (approval.decision === 'continue') return completeStepIn(deps, scope, step, attempt, result, { decision: 'continue' }, fenced);
  if (approval.decision === 'retry' && spec.retryStep) {
    const reason = `checkpoint ${step.stepId} asked to retry ${spec.retryStep}`;
    const override = approval.data === null ? undefined : approval.data;
    return rerunFromIn(deps, scope, step, attempt, spec.retryStep, result, reason, override);
  }
  const reason = approval.status === 'expired' ? 'the approval deadline passed' : `aborted by ${approval.decidedBy}`;
  const message = approval.comment ? `${reason}: ${approval.comment}` : reason;
  return failStepIn(deps, scope, step, attempt, engineFailure(APPROVAL_ABORTED, 'ApprovalAborted', message), true);
}
