/**
 * Approvals opened by an agent while its step runs (issue 10: the `a2a` step, when the remote
 * task enters `TASK_STATE_INPUT_REQUIRED`).
 *
 * The approval is an ordinary `approvals` row — same inbox, same decide API (approver rules,
 * 409/410, tokens for `anyone`), same `checkpoint.requested` / `checkpoint.resolved` /
 * `checkpoint.expired` events — but no checkpoint job parks for it: the agent's own step job
 * stays active (its lock renewed as for any long step) and polls Postgres for the decision.
 *
 * Keying: `(run, step, generation)` is unique per approval, so round `r` of a step generation
 * `g` uses generation `g + r * ROUND_STRIDE` (round 0 is `g` itself). Asking again for the same
 * round returns the same row, so a re-delivered job finds the approval it opened.
 */
import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import { CancelledError } from '../../lib/index.js';
import { approvalTokens, approvals } from '../../db/index.js';
import { stepJobId } from '../../queues/index.js';
import type { AgentApprovalDecision, AgentApprovalRequest } from '../../agents/types.js';
import { approvalSummary, type ApprovalRow } from '../store/index.js';
import type { EngineDeps } from './deps.js';
import { withRun } from './run-scope.js';

/** Generation offset between the approval rounds of one step generation. */
export const ROUND_STRIDE = 1_000_000;
/** How often a waiting agent re-reads its approval, in milliseconds. */
const POLL_MS = 500;

/** The step attempt asking. */
export interface AgentApprovalTarget {
  runId: string;
  stepId: string;
  generation: number;
}

/**
 * Create the round's approval if it does not exist yet and emit `checkpoint.requested`.
 * Anyone allowed to decide in the organization may decide it; any JSON may come with the
 * decision (`modify: {}`).
 */
export async function openAgentApproval(deps: EngineDeps, target: AgentApprovalTarget, request: AgentApprovalRequest): Promise<ApprovalRow> {
  const generation = target.generation + request.round * ROUND_STRIDE;
  return withRun(deps, target.runId, async ({ tx, run, emit }) => {
    const where = and(eq(approvals.runId, target.runId), eq(approvals.stepId, target.stepId), eq(approvals.generation, generation));
    const [existing] = await tx.select().from(approvals).where(where);
    if (existing) return existing;
    const [approval] = await tx
      .insert(approvals)
      .values({
        runId: target.runId,
        organizationId: run.organizationId,
        stepId: target.stepId,
        generation,
        status: 'pending',
        prompt: request.prompt,
        show: request.show ?? null,
        decisions: request.decisions,
        approvers: [],
        required: 1,
        selfApproval: true,
        modify: {},
        jobId: stepJobId(target.runId, target.stepId, target.generation),
        expiresAt: sql`now() + ${`${request.timeoutMs} milliseconds`}::interval`,
      })
      .returning();
    if (!approval) throw new Error('approval insert returned nothing');
    await tx.insert(approvalTokens).values({
      jti: randomUUID(),
      approvalId: approval.id,
      approver: `link:${approval.id}`,
      expiresAt: approval.expiresAt,
      createdAt: sql`date_trunc('second', now())`,
    });
    await emit('checkpoint.requested', target.stepId, { approval: approvalSummary(approval), openedBy: 'agent' });
    return approval;
  });
}

/**
 * Wait until the approval is decided (or expires: then it is marked `expired` with `abort`,
 * and `checkpoint.expired` is emitted).
 * @throws {CancelledError} when the approval was cancelled (the run was cancelled) or `signal` aborts.
 */
export async function awaitAgentApproval(deps: EngineDeps, approval: ApprovalRow, signal: AbortSignal): Promise<AgentApprovalDecision> {
  for (;;) {
    if (signal.aborted) throw new CancelledError(`stopped waiting for approval ${approval.id}: ${String(signal.reason)}`);
    const [row] = await deps.database.db
      .select({ approval: approvals, expired: sql<boolean>`now() >= ${approvals.expiresAt}` })
      .from(approvals)
      .where(eq(approvals.id, approval.id));
    if (!row) throw new CancelledError(`approval ${approval.id} no longer exists`);
    const current = row.approval;
    if (current.status === 'decided') return decisionOf(current);
    if (current.status === 'pending' && row.expired) return decisionOf(await expire(deps, current));
    if (current.status !== 'pending') {
      if (current.status === 'expired') return decisionOf(current);
      throw new CancelledError(`approval ${approval.id} was ${current.status}`);
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, POLL_MS);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/** {@link openAgentApproval} then {@link awaitAgentApproval}: what `ctx.approval` does on workers. */
export async function requestAgentApproval(
  deps: EngineDeps,
  target: AgentApprovalTarget,
  request: AgentApprovalRequest,
  signal: AbortSignal,
): Promise<AgentApprovalDecision> {
  return awaitAgentApproval(deps, await openAgentApproval(deps, target, request), signal);
}

async function expire(deps: EngineDeps, approval: ApprovalRow): Promise<ApprovalRow> {
  return withRun(deps, approval.runId, async ({ tx, emit }) => {
    const [row] = await tx
      .update(approvals)
      .set({ status: 'expired', decision: 'abort', decidedBy: 'system:timeout', decidedAt: sql`now()` })
      .where(and(eq(approvals.id, approval.id), eq(approvals.status, 'pending')))
      .returning();
    if (!row) {
      const [again] = await tx.select().from(approvals).where(eq(approvals.id, approval.id));
      return again ?? approval;
    }
    await emit('checkpoint.expired', row.stepId, { approval: approvalSummary(row), onTimeout: 'abort' });
    return row;
  });
}

function decisionOf(a: ApprovalRow): AgentApprovalDecision {
  const decision = a.decision === 'continue' || a.decision === 'retry' ? a.decision : 'abort';
  return { approvalId: a.id, decision, comment: a.comment, data: a.data ?? null, decidedBy: a.decidedBy };
}
