/**
 * The approval read model: the public, token-free view of an approval and the responses recorded
 * against it (SPEC A1–A3). Listing and run views (`queries.ts`) and the approvals API use it;
 * opening, deciding and resolving approvals is the engine's (`services/engine/checkpoints.ts`,
 * `decisions.ts`).
 */
import { asc, eq, inArray } from 'drizzle-orm';
import { approvalResponses, approvals, runs } from '../../db/index.js';
import type { StoreDeps } from './deps.js';

/** One row of `approvals`, as stored. */
export type ApprovalRow = typeof approvals.$inferSelect;

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
    required: a.required,
    selfApproval: a.selfApproval,
    modify: a.modify,
    attempt: a.generation,
    expiresAt: a.expiresAt.toISOString(),
    createdAt: a.createdAt.toISOString(),
    decision: a.decision,
    comment: a.comment,
    decidedBy: a.decidedBy,
    decidedVia: a.decidedVia,
    data: a.data,
    decidedAt: a.decidedAt?.toISOString() ?? null,
  };
}

/**
 * Every response to the given approvals, oldest first: `{approver, via, decision, comment, data,
 * clientIp, userAgent, at}` — `approver` is the identity that decided (for a link, the one it was
 * minted for), `clientIp`/`userAgent` the responding client (null when unknown).
 */
export async function approvalResponsesOf(deps: Pick<StoreDeps, 'database'>, approvalIds: string[]): Promise<Map<string, Array<Record<string, unknown>>>> {
  const byApproval = new Map<string, Array<Record<string, unknown>>>(approvalIds.map((id) => [id, []]));
  if (approvalIds.length === 0) return byApproval;
  const rows = await deps.database.db
    .select()
    .from(approvalResponses)
    .where(inArray(approvalResponses.approvalId, approvalIds))
    .orderBy(asc(approvalResponses.createdAt));
  for (const r of rows) {
    byApproval.get(r.approvalId)?.push({
      approver: r.approver,
      via: r.via,
      decision: r.decision,
      comment: r.comment,
      data: r.data,
      clientIp: r.clientIp,
      userAgent: r.userAgent,
      at: r.createdAt.toISOString(),
    });
  }
  return byApproval;
}

/** Read an approval's current row. */
export async function getApproval(deps: Pick<StoreDeps, 'database'>, approvalId: string): Promise<ApprovalRow | undefined> {
  const [row] = await deps.database.db.select().from(approvals).where(eq(approvals.id, approvalId));
  return row;
}

/** An approval and what a decision needs of its run (definition version, webhook destination). */
export interface ApprovalWithRun {
  approval: ApprovalRow;
  run: { organizationId: string; definitionId: string; webhookUrl: string | null };
}

/** An approval with its run's definition and `webhookUrl`, in one read (no lock). */
export async function getApprovalWithRun(deps: Pick<StoreDeps, 'database'>, approvalId: string): Promise<ApprovalWithRun | undefined> {
  const [row] = await deps.database.db
    .select({ approval: approvals, organizationId: runs.organizationId, definitionId: runs.definitionId, webhookUrl: runs.webhookUrl })
    .from(approvals)
    .innerJoin(runs, eq(runs.id, approvals.runId))
    .where(eq(approvals.id, approvalId));
  return row && { approval: row.approval, run: { organizationId: row.organizationId, definitionId: row.definitionId, webhookUrl: row.webhookUrl } };
}

