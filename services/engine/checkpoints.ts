/**
 * Checkpoints and approvals (SPEC A1–A3).
 *
 * - `openCheckpoint` commits the pending approval (and its token ids) and `checkpoint.requested`
 *   before anyone is notified; the deadline is computed with Postgres' clock.
 * - `decideApproval` is one transaction under the run's lock: the token is spent and the
 *   approval decided by conditional updates, so of two simultaneous decisions exactly one wins,
 *   and a refused decision changes nothing. After the commit it promotes the parked job.
 * - `resolveCheckpoint` runs in the woken checkpoint job and applies the decision (or the
 *   deadline's `onTimeout`, judged by Postgres `now()`).
 */
import { randomUUID } from 'node:crypto';
import { and, eq, isNull, sql } from 'drizzle-orm';
import { ErrorCode as BullErrorCode } from 'bullmq';
import {
  ConflictError,
  ForbiddenError,
  GoneError,
  NotFoundError,
  ValidationError,
} from '../../lib/index.js';
import { approvalTokens, approvals, steps } from '../../db/index.js';
import { evaluateMapping, renderTemplate, type CheckpointStep } from '../../definitions/index.js';
import { stepJobId, type StepJobData } from '../../queues/index.js';
import { loadSteps, scopeOf } from './advance.js';
import { mintDecisionToken, tokenKey, verifyDecisionToken } from './approval-tokens.js';
import { definitionById } from './definitions-store.js';
import type { EngineDeps } from './deps.js';
import { APPROVAL_ABORTED } from './finalize.js';
import { withRun } from './run-scope.js';
import { completeStep, failStep, rerunFrom, type StepRecord } from './steps.js';

export type ApprovalRow = typeof approvals.$inferSelect;

/** Decisions a checkpoint may offer (D7). */
export const SUPPORTED_DECISIONS = ['continue', 'retry', 'abort'] as const;
export type Decision = (typeof SUPPORTED_DECISIONS)[number];

/** State of a checkpoint's approval as seen by its job. */
export interface CheckpointState {
  approval: ApprovalRow;
  /** Deadline passed, by Postgres' clock. */
  expired: boolean;
}

function approverIds(spec: CheckpointStep): string[] {
  if (spec.approvers.length === 0) return ['anyone'];
  return spec.approvers.map((a) => ('role' in a ? `role:${a.role}` : `user:${a.user}`));
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
    if (!approval) {
      const { spec: definition } = await definitionById(tx, run.definitionId);
      const spec = definition.steps.find((s) => s.id === data.stepId);
      if (!spec || spec.kind !== 'checkpoint') throw new NotFoundError(`checkpoint step ${data.stepId} not found`);
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
          jobId: stepJobId(data.runId, data.stepId, data.generation),
          expiresAt: sql`now() + ${`${spec.timeoutMs} milliseconds`}::interval`,
        })
        .returning();
      if (!approval) throw new Error('approval insert returned nothing');
      await tx.insert(approvalTokens).values(
        approverIds(spec).map((approver) => ({
          jti: randomUUID(),
          approvalId: approval!.id,
          approver,
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
    return { approval, expired };
  });
}

/** Public, token-free view of an approval (events, API). */
export function approvalSummary(a: ApprovalRow): Record<string, unknown> {
  return {
    id: a.id,
    runId: a.runId,
    stepId: a.stepId,
    status: a.status,
    prompt: a.prompt,
    show: a.show,
    decisions: a.decisions,
    approvers: a.approvers,
    expiresAt: a.expiresAt.toISOString(),
    createdAt: a.createdAt.toISOString(),
    decision: a.decision,
    comment: a.comment,
    decidedBy: a.decidedBy,
    decidedVia: a.decidedVia,
    decidedAt: a.decidedAt?.toISOString() ?? null,
  };
}

/** Read an approval's current row. */
export async function getApproval(deps: EngineDeps, approvalId: string): Promise<ApprovalRow | undefined> {
  const [row] = await deps.database.db.select().from(approvals).where(eq(approvals.id, approvalId));
  return row;
}

/**
 * The notification payload of an approval, with one signed `decideUrl` per approver.
 * Tokens are re-minted from their stored claims (see approval-tokens.ts).
 */
export async function approvalNotice(deps: EngineDeps, approvalId: string): Promise<Record<string, unknown>> {
  const approval = await getApproval(deps, approvalId);
  if (!approval) throw new NotFoundError(`approval ${approvalId} not found`);
  const tokens = await deps.database.db
    .select()
    .from(approvalTokens)
    .where(eq(approvalTokens.approvalId, approvalId))
    .orderBy(approvalTokens.approver);
  const key = tokenKey(deps.config.auth.webhookSecret);
  const base = `${deps.config.http.publicUrl}/v1/approvals/${approval.id}/decision?token=`;
  const decideUrls = await Promise.all(
    tokens.map(async (t) => ({
      approver: t.approver,
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

/** Who is deciding and how they proved it. */
export type DecisionAuth =
  | { via: 'token'; token: string }
  | { via: 'api-key'; organizationId: string; subject: string };

/** A decision request (`POST /v1/approvals/:id/decision`). */
export interface DecisionRequest {
  approvalId: string;
  decision: string;
  comment?: string;
  auth: DecisionAuth;
}

/**
 * Decide an approval: first decision wins, the rest change nothing.
 * @throws {UnauthorizedError} forged or malformed token.
 * @throws {ForbiddenError} a genuine token for another approval.
 * @throws {NotFoundError} unknown approval (or another organization's).
 * @throws {ValidationError} a decision the checkpoint does not offer (field `decision`).
 * @throws {ConflictError} already decided (details carry the standing decision) or token already used.
 * @throws {GoneError} the deadline has passed.
 */
export async function decideApproval(deps: EngineDeps, request: DecisionRequest): Promise<ApprovalRow> {
  const { auth } = request;
  const claims = auth.via === 'token' ? await verifyDecisionToken(tokenKey(deps.config.auth.webhookSecret), auth.token) : undefined;
  if (claims && claims.approvalId !== request.approvalId) {
    throw new ForbiddenError('this decision link belongs to another approval');
  }
  const found = await getApproval(deps, request.approvalId);
  if (!found || (auth.via === 'api-key' && found.organizationId !== auth.organizationId)) {
    throw new NotFoundError(`approval ${request.approvalId} not found`);
  }

  const decided = await withRun(deps, found.runId, async ({ tx, emit }) => {
    const [current] = await tx.select().from(approvals).where(eq(approvals.id, request.approvalId));
    if (!current) throw new NotFoundError(`approval ${request.approvalId} not found`);
    if (!current.decisions.includes(request.decision)) {
      throw new ValidationError(`decision must be one of ${current.decisions.join(', ')}`, { field: 'decision' });
    }
    let actor = auth.via === 'api-key' ? auth.subject : '';
    if (claims) {
      if (claims.generation !== current.generation) throw new ForbiddenError('this decision link is for an earlier request');
      const spent = await tx
        .update(approvalTokens)
        .set({ usedAt: sql`now()` })
        .where(
          and(
            eq(approvalTokens.jti, claims.jti),
            eq(approvalTokens.approvalId, current.id),
            eq(approvalTokens.approver, claims.approver),
            isNull(approvalTokens.usedAt),
          ),
        )
        .returning({ jti: approvalTokens.jti });
      if (spent.length === 0) {
        const [known] = await tx.select().from(approvalTokens).where(eq(approvalTokens.jti, claims.jti));
        if (!known) throw new ForbiddenError('unknown decision link');
        throw new ConflictError('this decision link was already used', { details: standing(current) });
      }
      actor = claims.approver;
    }
    const [won] = await tx
      .update(approvals)
      .set({
        status: 'decided',
        decision: request.decision,
        comment: request.comment ?? null,
        decidedBy: actor,
        decidedVia: auth.via,
        decidedAt: sql`now()`,
      })
      .where(and(eq(approvals.id, current.id), eq(approvals.status, 'pending'), sql`now() < ${approvals.expiresAt}`))
      .returning();
    if (!won) {
      if (current.status === 'pending' || current.status === 'expired') {
        throw new GoneError('the decision deadline has passed', { details: standing(current) });
      }
      throw new ConflictError(`approval already decided: ${current.decision}`, { details: standing(current) });
    }
    await emit('checkpoint.resolved', won.stepId, {
      approval: approvalSummary(won),
      decision: won.decision,
      decidedBy: actor,
      via: auth.via,
    });
    return won;
  });
  await promoteParked(deps, decided.jobId);
  return decided;
}

function standing(a: ApprovalRow): Record<string, unknown> {
  return { status: a.status, decision: a.decision, decidedBy: a.decidedBy, decidedAt: a.decidedAt?.toISOString() ?? null };
}

/**
 * Wake a parked checkpoint job. If it has not parked yet, the job re-reads Postgres right after
 * parking and promotes itself, so the decision is not lost (research/bullmq-design.md §2.3).
 */
export async function promoteParked(deps: EngineDeps, jobId: string): Promise<void> {
  const job = await deps.queues.get('checkpoints').getJob(jobId);
  try {
    await job?.promote();
  } catch (err) {
    if ((err as { code?: number }).code !== BullErrorCode.JobNotInState) throw err;
  }
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
  const outcome = await withRun(deps, data.runId, async ({ tx, run, emit }) => {
    const [row] = await tx
      .select({ approval: approvals, expired: sql<boolean>`now() >= ${approvals.expiresAt}` })
      .from(approvals)
      .where(
        and(eq(approvals.runId, data.runId), eq(approvals.stepId, data.stepId), eq(approvals.generation, data.generation)),
      );
    if (!row) throw new NotFoundError(`no approval for step ${data.stepId}`);
    const { approval, expired } = row;
    if (approval.status === 'pending' && !expired) return { kind: 'pending' as const };
    if (approval.status === 'pending') {
      const { spec: definition } = await definitionById(tx, run.definitionId);
      const spec = definition.steps.find((s) => s.id === data.stepId);
      const onTimeout = spec?.kind === 'checkpoint' ? spec.onTimeout : 'abort';
      const [expiredRow] = await tx
        .update(approvals)
        .set({ status: 'expired', decision: onTimeout, decidedBy: 'system:timeout', decidedAt: sql`now()` })
        .where(and(eq(approvals.id, approval.id), eq(approvals.status, 'pending')))
        .returning();
      await emit('checkpoint.expired', data.stepId, { approval: approvalSummary(expiredRow ?? approval), onTimeout });
      return { kind: 'decided' as const, approval: expiredRow ?? approval, retryStep: spec?.kind === 'checkpoint' ? spec.retryStep : undefined };
    }
    let retryStep: string | undefined;
    if (approval.decision === 'retry') {
      const { spec: definition } = await definitionById(tx, run.definitionId);
      const spec = definition.steps.find((s) => s.id === data.stepId);
      retryStep = spec?.kind === 'checkpoint' ? spec.retryStep : undefined;
    }
    return { kind: 'decided' as const, approval, retryStep };
  });
  if (outcome.kind === 'pending') return outcome;
  const { approval, retryStep } = outcome;
  const result = {
    decision: approval.decision,
    comment: approval.comment,
    decidedBy: approval.decidedBy,
    decidedVia: approval.decidedVia,
    decidedAt: approval.decidedAt?.toISOString() ?? null,
  };
  if (approval.decision === 'continue') {
    return { kind: 'resolved', ...(await completeStep(deps, data, attempt, result, { decision: 'continue' })) };
  }
  if (approval.decision === 'retry' && retryStep) {
    const reason = `checkpoint ${data.stepId} asked to retry ${retryStep}`;
    return { kind: 'resolved', ...(await rerunFrom(deps, data, attempt, retryStep, result, reason)) };
  }
  const reason = approval.status === 'expired' ? 'the approval deadline passed' : `aborted by ${approval.decidedBy}`;
  const message = approval.comment ? `${reason}: ${approval.comment}` : reason;
  return {
    kind: 'resolved',
    ...(await failStep(deps, data, attempt, { name: 'ApprovalAborted', code: APPROVAL_ABORTED, message }, true)),
  };
}
