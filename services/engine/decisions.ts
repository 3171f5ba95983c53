/**
 * Deciding approvals (SPEC A2–A4, issue 4): who may decide, quorum, self-approval, modified data.
 *
 * A response is one transaction under the run's lock: it spends the token (or records the
 * integration message id), inserts the approver's response (one per distinct approver), and —
 * if the response settles the approval — decides it with a conditional update. Responses to
 * one approval are therefore serialised: of twenty simultaneous decisions exactly one wins and
 * the others get 409 with the standing decision; a refused response changes nothing (the
 * transaction rolls back, token and message id included). After the commit the parked
 * checkpoint job is promoted.
 */
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import { ConflictError, ForbiddenError, GoneError, NotFoundError, ValidationError } from '../../lib/index.js';
import { approvalResponses, approvalTokens, approvals, integrationReceipts, runs, steps } from '../../db/index.js';
import { validateAgainstSchema } from '../../definitions/index.js';
import { tokenKey, verifyDecisionToken } from './approval-tokens.js';
import { applyDecision, promoteParked } from './checkpoints.js';
import { approvalSummary, definitionById, getApprovalWithRun, memberRoles, type ApprovalRow } from '../store/index.js';
import { decideContinue } from './hot-path.js';
import type { StepRecord } from './steps.js';
import type { EngineDeps } from './deps.js';
import { withRun, type RunScope, type Tx } from './run-scope.js';

/** Who is responding and how they proved it. */
export type DecisionAuth =
  /** The signed `?token=` of a `decideUrl`. */
  | { via: 'token'; token: string }
  /** An API key with `approvals:decide`; `subject` is its identity (e.g. `user:alice`). */
  | { via: 'api-key'; organizationId: string; subject: string; roles: string[] }
  /** A trusted integration whose Standard Webhooks signature the API layer verified. */
  | { via: 'integration'; organizationId: string; integrationId: string; name: string; roles: string[]; messageId: string };

/** A response to an approval (`POST /v1/approvals/:id/decision`). */
export interface DecisionRequest {
  approvalId: string;
  decision: string;
  comment?: string;
  /** Modified data (with `continue` or `retry`), validated against the checkpoint's `modify`. */
  input?: unknown;
  auth: DecisionAuth;
  /** The responding client as the API saw it (recorded on the response). */
  client?: DecisionClient;
}

/** Where a response came from: the client address (`req.ip`) and `User-Agent`, when known. */
export interface DecisionClient {
  ip?: string;
  userAgent?: string;
}

/** Result of an accepted response. */
export interface DecisionOutcome {
  approval: ApprovalRow;
  /** False when the response was recorded but more approvers are needed (`required: N`). */
  settled: boolean;
  /** Distinct `continue` responses so far, and how many are needed. */
  continues: number;
  required: number;
}

type Approver = { role: string } | { user: string };

/**
 * Whether `identity` (with `roles`) is one of the checkpoint's approvers. No approvers listed
 * means anyone allowed to decide in the organization.
 */
function isApprover(approvers: Approver[], identity: string, roles: string[]): boolean {
  if (approvers.length === 0) return true;
  return approvers.some((a) => ('role' in a ? roles.includes(a.role) : identity === `user:${a.user}`));
}

/** The responding identity, and for a link the token to spend (its id and the approver it was minted for). */
interface Identified {
  identity: string;
  token?: { jti: string; approver: string };
}

/**
 * Resolve the responding identity, or refuse. A link decides as the identity it was minted for
 * (a link minted as `anyone` before issue 12 decides as `link:<approval id>`); an API key as its
 * subject, with the roles of the key and of the organization's role membership
 * (`keyMemberRoles`: the subject's roles in the key's organization, read beside the approval).
 */
async function identify(deps: EngineDeps, approval: ApprovalRow, auth: DecisionAuth, keyMemberRoles: readonly string[]): Promise<Identified> {
  const approvers = approval.approvers as Approver[];
  if (auth.via === 'token') {
    const claims = await verifyDecisionToken(tokenKey(deps.config.auth.webhookSecret), auth.token);
    if (claims.approvalId !== approval.id) throw new ForbiddenError('this decision link belongs to another approval');
    if (claims.generation !== approval.generation) throw new ForbiddenError('this decision link is for an earlier request');
    const identity = claims.approver === 'anyone' ? `link:${approval.id}` : claims.approver;
    return { identity, token: { jti: claims.jti, approver: claims.approver } };
  }
  if (auth.organizationId !== approval.organizationId) throw new NotFoundError(`approval ${approval.id} not found`);
  const identity = auth.via === 'api-key' ? auth.subject : `integration:${auth.name}`;
  const roles = auth.via === 'api-key' ? [...auth.roles, ...keyMemberRoles] : auth.roles;
  if (!isApprover(approvers, identity, roles)) {
    throw new ForbiddenError(`${identity} is not an approver of this checkpoint`);
  }
  return { identity };
}

function standing(a: ApprovalRow): Record<string, unknown> {
  return { status: a.status, decision: a.decision, decidedBy: a.decidedBy, decidedAt: a.decidedAt?.toISOString() ?? null };
}

async function spendToken(tx: Tx, approval: ApprovalRow, { jti, approver }: { jti: string; approver: string }): Promise<void> {
  const spent = await tx
    .update(approvalTokens)
    .set({ usedAt: sql`now()` })
    .where(
      and(
        eq(approvalTokens.jti, jti),
        eq(approvalTokens.approvalId, approval.id),
        eq(approvalTokens.approver, approver),
        isNull(approvalTokens.usedAt),
      ),
    )
    .returning({ jti: approvalTokens.jti });
  if (spent.length > 0) return;
  const [known] = await tx.select().from(approvalTokens).where(eq(approvalTokens.jti, jti));
  if (!known) throw new ForbiddenError('unknown decision link');
  throw new ConflictError('this decision link was already used', { details: standing(approval) });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The `continue` responses of an approval, in the order they were accepted (their modified data). */
async function continueResponses(tx: Tx, approvalId: string): Promise<Array<{ data: unknown }>> {
  return tx
    .select({ data: approvalResponses.data })
    .from(approvalResponses)
    .where(and(eq(approvalResponses.approvalId, approvalId), eq(approvalResponses.decision, 'continue')))
    .orderBy(asc(approvalResponses.createdAt), asc(approvalResponses.id));
}

/**
 * The modified data of a `continue` quorum: every `continue` response's `input` (`rows`, from
 * {@link continueResponses}), in the order the responses were accepted, merged shallowly — a
 * later response's top-level field replaces an earlier one's, fields it leaves out are kept (a
 * non-object input replaces the whole value) — and validated against the checkpoint's `modify` schema.
 * @returns the merged data, or null when no response modified anything.
 * @throws {ValidationError} when the merge does not match `modify` (field `input.…`).
 */
function mergedModifications(rows: ReadonlyArray<{ data: unknown }>, approval: ApprovalRow): unknown {
  let merged: unknown = null;
  for (const { data } of rows) {
    if (data === null) continue;
    merged = isPlainObject(merged) && isPlainObject(data) ? { ...merged, ...data } : data;
  }
  if (merged !== null && approval.modify) validateAgainstSchema(approval.modify as Record<string, unknown>, merged, 'input');
  return merged;
}

/**
 * Whether `input` (the modified data of a response, if any) is acceptable as it stands: none,
 * or valid against the checkpoint's `modify`. Anything else is left to the general path, which
 * refuses it with the field named (after the checks that come first there).
 */
function acceptsData(approval: ApprovalRow, input: unknown): boolean {
  if (input === undefined) return true;
  if (!approval.modify) return false;
  try {
    validateAgainstSchema(approval.modify as Record<string, unknown>, input, 'input');
    return true;
  } catch {
    return false;
  }
}

/**
 * Finish the waiting checkpoint step of a settled approval (see `applyDecision`).
 * @returns the step record, or `undefined` when the step no longer waits for this approval.
 */
async function finishCheckpoint(deps: EngineDeps, scope: RunScope, approval: ApprovalRow): Promise<StepRecord | undefined> {
  const [step] = await scope.tx
    .select({ attempts: steps.attempts })
    .from(steps)
    .where(and(eq(steps.runId, approval.runId), eq(steps.stepId, approval.stepId), eq(steps.generation, approval.generation), eq(steps.status, 'waiting')));
  if (!step) return undefined;
  const { spec: definition } = await definitionById(scope.tx, scope.run.definitionId);
  const spec = definition.steps.find((s) => s.id === approval.stepId);
  if (spec?.kind !== 'checkpoint') return undefined;
  const ref = { runId: approval.runId, stepId: approval.stepId, generation: approval.generation };
  return applyDecision(deps, scope, ref, step.attempts, approval, spec, true); // read `waiting` just above, under the lock
}

/**
 * Respond to an approval. `abort` and `retry` settle it at once; `continue` settles it when
 * `required` distinct approvers have continued, with the continues' modified data merged
 * ({@link mergedModifications}) as the approval's `data` (the step's `output.data`). Each
 * response records its identity (for a link, the one it was minted for), via, client address and
 * user agent.
 * @throws {UnauthorizedError} forged or malformed token.
 * @throws {ForbiddenError} a token for another approval or attempt; not an approver; self-approval refused.
 * @throws {NotFoundError} unknown approval (or another organization's).
 * @throws {ValidationError} a decision not offered (field `decision`), or data not matching `modify` (field `input.…`).
 * @throws {ConflictError} already decided (details carry the standing decision), token already
 *   used, approver already responded, or integration message replayed.
 * @throws {GoneError} the deadline has passed (Postgres time).
 */
export async function decideApproval(deps: EngineDeps, request: DecisionRequest): Promise<DecisionOutcome> {
  const { auth } = request;
  // Both reads at once (one round trip's wait): the key's member roles in its own organization
  // are used only if the approval turns out to be of that organization (`identify`).
  // Redis is checked meanwhile (while it is down, nothing changes: 503), after the reads' own errors.
  const available = deps.queues.ensureAvailable();
  void available.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  const [read, keyMemberRoles] = await Promise.all([
    getApprovalWithRun(deps, request.approvalId),
    auth.via === 'api-key' ? memberRoles(deps, auth.organizationId, auth.subject) : Promise.resolve([]),
  ]);
  if (!read) throw new NotFoundError(`approval ${request.approvalId} not found`);
  const found = read.approval;
  const { identity, token } = await identify(deps, found, auth, keyMemberRoles);
  await available;

  if (auth.via !== 'integration' && request.decision === 'continue' && found.required === 1 && acceptsData(found, request.input)) {
    const fast = await decideContinue(deps, {
      approval: found,
      run: read.run,
      identity,
      via: auth.via,
      comment: request.comment ?? null,
      data: request.input ?? null,
      client: request.client,
      token,
    });
    if (fast) {
      await promoteParked(deps, fast.approval.jobId);
      return { approval: fast.approval, settled: true, continues: 1, required: 1 };
    }
  }
  const outcome = await withRun(deps, found.runId, async (scope): Promise<DecisionOutcome & { record?: StepRecord }> => {
    const { tx, emit } = scope;
    const [row] = await tx
      .select({ approval: approvals, expired: sql<boolean>`now() >= ${approvals.expiresAt}`, createdBy: runs.createdBy })
      .from(approvals)
      .innerJoin(runs, eq(runs.id, approvals.runId))
      .where(eq(approvals.id, request.approvalId));
    if (!row) throw new NotFoundError(`approval ${request.approvalId} not found`);
    const { approval, expired, createdBy } = row;
    if (approval.status === 'expired' || (approval.status === 'pending' && expired)) {
      throw new GoneError('the decision deadline has passed', { details: standing(approval) });
    }
    if (approval.status !== 'pending') {
      throw new ConflictError(`approval already decided: ${approval.decision}`, { details: standing(approval) });
    }
    if (!approval.decisions.includes(request.decision)) {
      throw new ValidationError(`decision must be one of ${approval.decisions.join(', ')}`, { field: 'decision' });
    }
    if (request.input !== undefined) {
      if (request.decision === 'abort') throw new ValidationError('abort carries no data', { field: 'input' });
      if (!approval.modify) throw new ValidationError('this checkpoint accepts no modified data', { field: 'input' });
      validateAgainstSchema(approval.modify as Record<string, unknown>, request.input, 'input');
    }
    if (!approval.selfApproval && identity === createdBy) {
      throw new ForbiddenError(`self-approval is not allowed: ${identity} started this run`);
    }
    if (token) await spendToken(tx, approval, token);
    if (request.auth.via === 'integration') {
      const fresh = await tx
        .insert(integrationReceipts)
        .values({ integrationId: request.auth.integrationId, messageId: request.auth.messageId })
        .onConflictDoNothing()
        .returning({ id: integrationReceipts.messageId });
      if (fresh.length === 0) throw new ConflictError(`message ${request.auth.messageId} was already received (replay)`);
    }
    const inserted = await tx
      .insert(approvalResponses)
      .values({
        approvalId: approval.id,
        approver: identity,
        via: request.auth.via,
        decision: request.decision,
        comment: request.comment ?? null,
        data: request.input ?? null,
        clientIp: request.client?.ip ?? null,
        userAgent: request.client?.userAgent ?? null,
        // The wall clock after the run lock, not the transaction start: orders responses as decided.
        createdAt: sql`clock_timestamp()`,
      })
      .onConflictDoNothing()
      .returning({ id: approvalResponses.id });
    if (inserted.length === 0) throw new ConflictError(`${identity} has already responded to this approval`);

    // One read gives both the count of distinct continues and, when they settle it, their data.
    const continued = await continueResponses(tx, approval.id);
    const continues = continued.length;
    const settles = request.decision !== 'continue' || continues >= approval.required;
    if (!settles) {
      await emit('checkpoint.responded', approval.stepId, {
        approvalId: approval.id,
        approver: identity,
        via: request.auth.via,
        decision: request.decision,
        continues,
        required: approval.required,
      });
      return { approval, settled: false, continues, required: approval.required };
    }
    const data = request.decision === 'continue' ? mergedModifications(continued, approval) : (request.input ?? null);
    const [won] = await tx
      .update(approvals)
      .set({
        status: 'decided',
        decision: request.decision,
        comment: request.comment ?? null,
        decidedBy: identity,
        decidedVia: request.auth.via,
        data,
        decidedAt: sql`now()`,
      })
      .where(and(eq(approvals.id, approval.id), eq(approvals.status, 'pending'), sql`now() < ${approvals.expiresAt}`))
      .returning();
    if (!won) throw new GoneError('the decision deadline has passed', { details: standing(approval) });
    await emit('checkpoint.resolved', won.stepId, {
      approval: approvalSummary(won),
      decision: won.decision,
      decidedBy: identity,
      via: request.auth.via,
    });
    // The decision finishes its checkpoint step here, in its own transaction: the parked job is
    // then only promoted, to find its step finished and acknowledge.
    const record = await finishCheckpoint(deps, scope, won);
    return { approval: won, settled: true, continues, required: won.required, ...(record ? { record } : {}) };
  });
  // withRun has added the successors' jobs (as children of the root, which the parked
  // checkpoint job keeps from completing); now wake that job to acknowledge.
  if (outcome.settled) await promoteParked(deps, outcome.approval.jobId);
  return { approval: outcome.approval, settled: outcome.settled, continues: outcome.continues, required: outcome.approval.required };
}
